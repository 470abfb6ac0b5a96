#!/bin/bash
# The scripted model servers of the real-agent tests (models.py), added to the test
# world by world.sh up (one line there): 198.18.0.20 in apw-srv answers TLS on 443
# under the real API host names below, with a certificate from the world's CA.
# Log: $STATE/models.log (JSON lines, world-readable). world.sh down ends it with
# everything else in the namespaces. Usage (as root, world up): models.sh up
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${APW_STATE:-/run/apw}
ADDR=198.18.0.20
# Every host an agent preset names, and the ones they were seen to ask for.
NAMES=(api.anthropic.com console.anthropic.com statsig.anthropic.com claude.ai platform.claude.com
       mcp-proxy.anthropic.com downloads.claude.ai statsig.com http-intake.logs.us5.datadoghq.com
       storage.googleapis.com api.openai.com auth.openai.com chatgpt.com ab.chatgpt.com api.github.com
       openrouter.ai generativelanguage.googleapis.com pypi.org raw.githubusercontent.com
       us.i.posthog.com app.posthog.com api.mixpanel.com custom-endpoint.test)
die() { echo "models.sh: $*" >&2; exit 1; }
[ "${1:-}" = up ] || die "usage: $0 up"
[ -s "$STATE/pki/ca.key" ] || die "the world is not up (no $STATE/pki/ca.key)"

ip -n ${APW_SRV_NS:-apw-srv} addr replace $ADDR/32 dev apw-s0
grep -q "^$ADDR	" /etc/netns/${APW_HOST_NS:-apw-host}/hosts || printf '%s\t%s\n' $ADDR "${NAMES[*]}" >> /etc/netns/${APW_HOST_NS:-apw-host}/hosts

d="$STATE/pki"
if [ ! -s "$STATE/models.pem" ]; then
    san=$(printf 'DNS:%s,' "${NAMES[@]}"); san=${san%,}
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/models.key" 2>/dev/null
    openssl req -new -key "$d/models.key" -subj "/CN=api.anthropic.com" -out "$d/models.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$san" > "$d/models.ext"
    openssl x509 -req -in "$d/models.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 30 -sha256 \
        -extfile "$d/models.ext" -out "$STATE/models.pem" 2>/dev/null
    chmod 0644 "$STATE/models.pem"
fi

pidf="$STATE/models.pid"
# A running server is kept unless models.py changed since it started (then it is replaced).
sum=$(sha256sum "$HERE/models.py" | cut -d' ' -f1)
if [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null && grep -q models.py "/proc/$(cat "$pidf")/cmdline"; then
    [ "$(cat "$STATE/models.sum" 2>/dev/null)" = "$sum" ] && exit 0
    p=$(cat "$pidf"); kill "$p"
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$pidf"
echo "$sum" > "$STATE/models.sum"
touch "$STATE/models.log"; chmod 0644 "$STATE/models.log"
ip netns exec ${APW_SRV_NS:-apw-srv} setsid /usr/bin/python3 "$HERE/models.py" --addr $ADDR --cert "$STATE/models.pem" \
    --key "$d/models.key" --log "$STATE/models.log" --pidfile "$pidf" </dev/null >>"$STATE/models.stderr" 2>&1 9>&- &
for _ in $(seq 1 50); do
    if [ -s "$pidf" ] && ip netns exec ${APW_HOST_NS:-apw-host} curl -s -o /dev/null --max-time 1 --cacert "$STATE/ca.pem" \
        https://api.anthropic.com/apw-ready; then exit 0; fi
    sleep 0.1
done
die "the model server did not start; see $STATE/models.stderr"
