#!/bin/bash
# Quick self-check of the test world (as root, world must be up: world.sh up).
# Exits non-zero if any check fails.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"
S=$APW_STATE
[ "$(id -u)" = 0 ] || { echo "check.sh: must run as root" >&2; exit 1; }
"$HERE/world.sh" status >/dev/null || { echo "check.sh: world not up (run world.sh up)" >&2; exit 1; }
apw_ensure_user

fails=0
pass() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s  (%s)\n' "$1" "$2"; fails=$((fails+1)); }
expect() {  # name expected-substring command...
    local name=$1 want=$2 out; shift 2
    if out=$("$@" 2>&1) && grep -qF -- "$want" <<<"$out"; then pass "$name"
    else fail "$name" "$(head -c 300 <<<"$out" | tr '\n' ' ')"; fi
}
C="curl -sS --max-time 5 --cacert $S/ca.pem"

# 1. servers, as root in apw-host
expect "root: https://allowed.test/hello"        "hello from allowed.test"      apw_as_root $C https://allowed.test/hello
expect "root: https://a.wild.test/hello"         "hello from a.wild.test"       apw_as_root $C https://a.wild.test/hello
expect "root: https://v6only.test/hello (v6)"    "hello from v6only.test"       apw_as_root $C https://v6only.test/hello
expect "root: https://private-denied.test/hello" "hello from private-denied.test" apw_as_root $C https://private-denied.test/hello
expect "root: https://other.test:8443/hello"     "hello from other.test"        apw_as_root $C https://other.test:8443/hello
expect "root: http://allowed.test/hello (:80)"   "hello from allowed.test"      apw_as_root $C http://allowed.test/hello
expect "root: https://bench.test/hello (bench server)" "hello from bench.test" apw_as_root $C https://bench.test/hello
expect "root: /big is 256 MiB" "268435456" apw_as_root $C -o /dev/null -w '%{size_download}\n' https://allowed.test/big
P="http://apw-proxy:s3cr%3Aet%40pa%25ss@198.18.0.1:3128"
expect "root: CONNECT proxy with credentials"    "hello from allowed.test"      apw_as_root $C --proxy "$P" https://allowed.test/hello
expect "root: CONNECT proxy refuses bad ones"    "http_connect=407" apw_as_root sh -c \
    "curl -s --max-time 5 -o /dev/null -w 'http_connect=%{http_connect}\n' --proxy http://apw-proxy:wrong@198.18.0.1:3128 https://allowed.test/hello; true"
expect "CONNECT proxy log"                  "target=allowed.test:443 auth=ok status=200" cat "$S/proxy.log"
if grep -qF 's3cr' "$S/proxy.log"; then fail "CONNECT proxy log holds no credentials" "found"; else pass "CONNECT proxy log holds no credentials"; fi
expect "access log has SNI" "allowed.test allowed.test 198.18.0.2 \"GET /hello HTTP/" cat "$S/nginx-access.log"

# 2. as the unprivileged user in apw-host
expect "user: id"                          "uid=$(id -u "$APW_USER")"   apw_as_user id
expect "user: https://allowed.test/hello"  "hello from allowed.test"    apw_as_user $C https://allowed.test/hello
expect "user: reads ca.pem"                "BEGIN CERTIFICATE"          apw_as_user cat "$S/ca.pem"
expect "user: pasta runs"                  "pasta"                      apw_as_user pasta --version
expect "user: /dev/net/tun rw"             "tun-ok"  apw_as_user sh -c 'test -r /dev/net/tun && test -w /dev/net/tun && echo tun-ok'

# 3. unprivileged pasta attached to a fresh unprivileged namespace in apw-host
W=$S/check; rm -rf "$W"; mkdir -p "$W"; chown "$APW_USER": "$W"
cat > "$W/pasta-check.sh" <<'SH'
# runs as the unprivileged user inside apw-host; $1 = work dir, $2 = CA
set -u
W=$1; CA=$2; rc=0
PY=/usr/bin/python3
q() { grep -v 'Failed to send' || true; }
in_ns() { nsenter -t "$1" -U -n --preserve-credentials "${@:2}"; }
tcp_probe() {  # ns-pid host port -> prints "connected" or the error
    in_ns "$1" $PY -c 'import socket,sys
s=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected", s.recv(16).decode())
except Exception as e: print("refused:", e)' "$2" "$3"
}
# a host-side listener on apw-host loopback (stands for "the user's local database")
$PY -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("127.0.0.1",47001)); s.listen(8)
s.settimeout(30); end=time.time()+30
while time.time()<end:
    try: c,_=s.accept()
    except OSError: break
    c.sendall(b"LOOPBACK"); c.close()' & lpid=$!
echo $lpid > "$W/listener.pid"

for mode in off gw splice; do
    unshare -Urn sleep 30 </dev/null >/dev/null 2>&1 & spid=$!; echo $spid > "$W/ns-$mode.pid"; sleep 0.2
    case $mode in
      off)    extra="-t none -u none -T none -U none --no-map-gw" ;;
      gw)     extra="-t none -u none -T none -U none" ;;
      splice) extra="-t none -u none -T 4443:47001 -U none --no-map-gw" ;;
    esac
    t0=$(date +%s%N)
    pasta --quiet $extra --config-net -P "$W/pasta-$mode.pid" $spid 2>&1 | q
    prc=${PIPESTATUS[0]}
    t1=$(date +%s%N)
    echo "pasta[$mode] args: --quiet $extra --config-net -P PIDFILE <pid>  rc=$prc  start=$(( (t1-t0)/1000000 ))ms"
    [ "$prc" = 0 ] || rc=1
    echo "pasta[$mode] https via tap: $(in_ns $spid curl -sS --max-time 5 --cacert $CA https://allowed.test/hello 2>&1)"
    echo "pasta[$mode] https v6 via tap: $(in_ns $spid curl -sS --max-time 5 --cacert $CA https://v6only.test/hello 2>&1)"
    echo "pasta[$mode] gateway 198.18.0.1:47001 -> $(tcp_probe $spid 198.18.0.1 47001)"
    echo "pasta[$mode] ns loopback 127.0.0.1:4443 -> $(tcp_probe $spid 127.0.0.1 4443)"
    kill "$(cat "$W/pasta-$mode.pid")" 2>/dev/null; kill $spid 2>/dev/null
    wait $spid 2>/dev/null
done
kill $lpid 2>/dev/null; wait $lpid 2>/dev/null
exit $rc
SH
chmod 0644 "$W/pasta-check.sh"
out=$(apw_as_user timeout 60 bash "$W/pasta-check.sh" "$W" "$S/ca.pem" 2>&1) && prc=0 || prc=$?
sed 's/^/      /' <<<"$out"
[ $prc = 0 ] && pass "user: pasta attaches to an unprivileged netns" || fail "user: pasta attach" "rc=$prc"
grep -q 'pasta\[off\] https via tap: hello from allowed.test' <<<"$out" && pass "pasta tap path reaches the world (v4)" || fail "pasta tap path v4" "see above"
grep -q 'pasta\[gw\] gateway 198.18.0.1:47001 -> connected LOOPBACK' <<<"$out" && pass "pasta default: gateway maps to host loopback (the trap)" || fail "pasta gateway map" "see above"
grep -q 'pasta\[off\] gateway 198.18.0.1:47001 -> refused' <<<"$out" && pass "pasta --no-map-gw: gateway does not reach host loopback" || fail "pasta --no-map-gw" "see above"
grep -q 'pasta\[splice\] ns loopback 127.0.0.1:4443 -> connected LOOPBACK' <<<"$out" && pass "pasta -T 4443:47001 splices ns loopback to host loopback" || fail "pasta -T splice" "see above"
for f in "$W"/pasta-*.pid "$W"/ns-*.pid "$W"/listener.pid; do   # leftovers, by PID
    [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
done
rm -rf "$W"

# 4. arrivals are logged
n0=$(wc -l < "$S/arrivals.log")
expect "bait :8080 answers"  "arrival logged" apw_as_user curl -sS --max-time 5 http://198.18.0.10:8080/
apw_as_user ping -c1 -W2 198.18.0.10 >/dev/null 2>&1 || true
apw_as_user ping -6 -c1 -W2 fd0c::10 >/dev/null 2>&1 || true
apw_as_user /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b"leak?",("198.18.0.10",9999))'
apw_as_user /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6,socket.SOCK_DGRAM).sendto(b"dns?",("fd0c::1",53))'
sleep 0.5
new=$(tail -n +$((n0+1)) "$S/arrivals.log")
chk() { grep -qE -- "$2" <<<"$new" && pass "arrivals: $1" || fail "arrivals: $1" "no line matching $2"; }
chk "tcp :8080 SYN"         'ev=arrive proto=tcp src=198.18.0.2 sport=[0-9]+ dst=198.18.0.10 dport=8080 flags=S$'
chk "tcp :8080 accepted"    'ev=accept proto=tcp src=198.18.0.2 .* dport=8080 .*GET /'
chk "ping v4"               'ev=arrive proto=icmp src=198.18.0.2 dst=198.18.0.10 type=8'
chk "ping v6"               'ev=arrive proto=icmp6 src=fd0c::2 dst=fd0c::10 type=128'
chk "udp :9999 datagram"    'ev=arrive proto=udp src=198.18.0.2 sport=[0-9]+ dst=198.18.0.10 dport=9999'
chk "udp :9999 received"    "ev=recv proto=udp src=198.18.0.2 .*dport=9999 bytes=5 data=b'leak\?'"
chk "udp6 :53 received"     "ev=recv proto=udp src=fd0c::2 .*dport=53 bytes=4"
[ "$(stat -c %a "$S/arrivals.log")" = 644 ] && pass "arrivals.log world-readable" || fail "arrivals.log mode" "$(stat -c %a "$S/arrivals.log")"

echo
if [ $fails = 0 ]; then echo "check: all ok"; else echo "check: $fails FAILED"; exit 1; fi
