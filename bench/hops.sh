#!/bin/bash
# Hop benchmark (runs as the unprivileged user inside apw-host; no agentpen needed).
# Measures the two ways from an unprivileged netns to a host-side relay on loopback:
#   tap    : ns connects to the gateway address; pasta (default map-gw) relays it
#            through its tap device to host 127.0.0.1:RELAY
#   splice : pasta -T 443:RELAY; ns connects to its own 127.0.0.1:443 and pasta
#            splices that socket to host 127.0.0.1:RELAY
#   relay  : no namespace, client -> relay directly (the relay's own ceiling)
# Every run of a path follows a direct run (client -> bench.test, no relay): the pair
# gives one ratio, so drift and other load hit both alike.
# Prints "hop=direct for=<path> run=<i> speed=… size=… rc=…", then
# "hop=<path> run=<i> speed=<bytes/s> size=<bytes> rc=<rc>".
# Usage: hops.sh WORKDIR CA RUNS [CURL-OPTION...]   (HTTP/1.1 to https://bench.test/big)
set -u
W=$1; CA=$2; RUNS=${3:-5}; shift 3
RP=47443
URL=https://bench.test/big
C=(curl -sS --http1.1 --max-time 60 --cacert "$CA" "$@" -o /dev/null -w %{speed_download},%{size_download})
/usr/bin/python3 "$W/relay.py" $RP 198.18.0.13 443 --max-seconds 300 >/dev/null 2>&1 &
rpid=$!; echo $rpid > "$W/relay.pid"
cleanup() {
    for f in "$W"/hop-*.pid "$W/relay.pid"; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
}
trap cleanup EXIT
# the relay is listening once a connection to it succeeds (bounded)
for _ in $(seq 1 100); do
    /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' $RP \
        2>/dev/null && break
    sleep 0.05
done
report() { local r; r=$("${@:3}" 2>&1); local rc=$?; echo "hop=$1 run=$2 speed=${r%%,*} size=${r##*,} rc=$rc"; }
direct() { local r; r=$("${C[@]}" "$URL" 2>&1); local rc=$?; echo "hop=direct for=$1 run=$2 speed=${r%%,*} size=${r##*,} rc=$rc"; }

# both namespaces and their pastas first, then the paths round by round (a run of
# placement or load luck then hits every path alike, not one path's block of runs)
declare -A target spid
for mode in tap splice; do
    unshare -Urn sleep 300 </dev/null >/dev/null 2>&1 & spid[$mode]=$!; echo ${spid[$mode]} > "$W/hop-ns-$mode.pid"
    # unshare has made the namespaces and written the uid map once it has exec'd sleep (bounded)
    for _ in $(seq 1 100); do
        [ "$(cat /proc/${spid[$mode]}/comm 2>/dev/null)" = sleep ] && break
        sleep 0.02
    done
    if [ $mode = tap ]; then
        pasta --quiet -t none -u none -T none -U none --config-net -P "$W/hop-pasta-$mode.pid" ${spid[$mode]} >/dev/null 2>&1
        target[$mode]=198.18.0.1:$RP   # the gateway address, mapped by pasta to host loopback
    else
        pasta --quiet -t none -u none -T 443:$RP -U none --no-map-gw --config-net -P "$W/hop-pasta-$mode.pid" ${spid[$mode]} >/dev/null 2>&1
        target[$mode]=127.0.0.1:443
    fi
done
for i in $(seq 1 "$RUNS"); do
    direct relay $i
    report relay $i "${C[@]}" --connect-to bench.test:443:127.0.0.1:$RP $URL
    for mode in tap splice; do
        direct $mode $i
        report $mode $i nsenter -t ${spid[$mode]} -U -n --preserve-credentials "${C[@]}" \
            --connect-to bench.test:443:${target[$mode]} $URL
    done
done
for mode in tap splice; do
    ppid=$(cat "$W/hop-pasta-$mode.pid" 2>/dev/null)
    [ -n "$ppid" ] && kill "$ppid" 2>/dev/null; kill ${spid[$mode]} 2>/dev/null; wait ${spid[$mode]} 2>/dev/null
    for _ in $(seq 1 40); do [ -n "$ppid" ] && kill -0 "$ppid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$W/hop-pasta-$mode.pid" "$W/hop-ns-$mode.pid"
done
