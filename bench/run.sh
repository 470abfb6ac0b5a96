#!/bin/bash
# agentpen benchmark: `make bench` (as root). Brings the test world up, runs every case
# as an unprivileged user inside netns apw-host (baseline directly, then under agentpen),
# prints a table and writes bench/results.md; brings the world down again.
#   AGENTPEN=path/to/agentpen   (default .build/release/agentpen)
#   BENCH_CASES=startup,bulk,connsetup,eventcost,concurrency,cpu,hops,gitssh,audit,syscalls   (default: all)
#   BENCH_QUICK=1               fewer runs (plumbing check)
#   BENCH_PAIRS=N               (direct, inside) pairs per bulk/hops figure (default 7; 5 or more)
#   BENCH_EVENTCOST_PAIRS=N     (with events, without) pairs in the eventcost case (default 5)
#   BENCH_CURL_OPTS="..."       extra curl options for the bulk, cpu and hops downloads
#   BENCH_OUT=bench/results.md
# The test world is shared: everything runs under /tmp/agentpen-world.lock (as
# tests/dev.sh and tests/run.sh take it), which no daemon started here inherits.
#   APW_HOST_NS, APW_SRV_NS, APW_STATE, APW_LOCK: a private world instead (as
#   tests/dev.sh --world; tests/world/world.sh).
# Two binaries compared (old, new, interleaved rounds; medians and spreads):
#   bench/compare.sh OLD_AGENTPEN NEW_AGENTPEN   (its header lists its settings)
# Exit status non-zero if any case FAILED.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source tests/world/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root (it builds network namespaces)" >&2; exit 1; }
for t in hyperfine curl bwrap pasta nginx openssl /usr/bin/python3 setpriv unshare nsenter; do
    command -v "$t" >/dev/null || { echo "bench/run.sh: missing $t" >&2; exit 1; }
done

AGENTPEN=${AGENTPEN:-.build/release/agentpen}
case "$AGENTPEN" in /*) ;; *) AGENTPEN="$ROOT/$AGENTPEN" ;; esac
OUT=${BENCH_OUT:-$ROOT/bench/results.md}
CASES=${BENCH_CASES:-startup,bulk,connsetup,eventcost,concurrency,cpu,hops,gitssh,audit,syscalls}
PROJ=$APW_STATE/bench-proj

exec 9>"${APW_LOCK:-/tmp/agentpen-world.lock}"
if ! flock -n 9; then
    echo "bench/run.sh: waiting for the test world lock (/tmp/agentpen-world.lock; a test run holds it)" >&2
    flock -w 3600 9 || { echo "bench/run.sh: the world lock was not free within an hour" >&2; exit 1; }
fi
was_up=0
tests/world/world.sh status >/dev/null 2>&1 && was_up=1
cleanup() {
    local rc=$?
    # world.sh down ends whatever still runs inside the world's namespaces, by PID
    if [ $was_up = 0 ] && [ -z "${BENCH_KEEP_WORLD:-}" ]; then tests/world/world.sh down >/dev/null 9>&- || true
    else rm -rf "$PROJ"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tests/world/world.sh up 9>&-
apw_ensure_user
# bench.test is served once nginx has (re)loaded a config with it (bounded)
for i in $(seq 1 100); do
    apw_as_root curl -s -o /dev/null --max-time 2 --cacert "$APW_STATE/ca.pem" https://bench.test/hello 9>&- && break
    [ $i = 100 ] && { echo "bench/run.sh: https://bench.test/ does not answer in the test world" >&2; exit 1; }
    sleep 0.1
done

# The project dir the sandbox gets (-C): the CA, the client scripts; owned by the user.
rm -rf "$PROJ"; mkdir -p "$PROJ"
cp "$APW_STATE/ca.pem" bench/tlsload.py bench/relay.py bench/hops.sh bench/auditcost.py "$PROJ/"
chown -R "$APW_USER": "$PROJ"; chmod 0755 "$PROJ"

# The agentpen binary must be executable by the bench user; copy it if its path is not.
AP_DESC="$AGENTPEN"
if [ ! -e "$AGENTPEN" ]; then
    echo "bench/run.sh: warning: $AGENTPEN does not exist; agentpen rows will be FAILED" >&2
elif ! apw_as_user test -x "$AGENTPEN"; then
    mkdir -p "$APW_STATE/bench-bin"; cp "$AGENTPEN" "$APW_STATE/bench-bin/agentpen"
    chmod 0755 "$APW_STATE/bench-bin" "$APW_STATE/bench-bin/agentpen"
    AP_DESC="$AGENTPEN (copied to $APW_STATE/bench-bin for the bench user)"
    AGENTPEN=$APW_STATE/bench-bin/agentpen
fi
if [ -e "$AGENTPEN" ]; then
    AP_DESC="$AP_DESC, sha256 $(sha256sum "$AGENTPEN" | cut -c1-12), $( (cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || echo '?')"
fi

ARGS=()
if [ -n "${BENCH_QUICK:-}" ]; then
    ARGS+=(--startup-runs 10 --bulk-pairs 5 --conn-n 200 --eventcost-pairs 2 --conc-m 200 --hold 2 --cpu-gib-quarters 1 --audit-runs 5)
fi
[ -n "${BENCH_PAIRS:-}" ] && ARGS+=(--bulk-pairs "$BENCH_PAIRS")
[ -n "${BENCH_EVENTCOST_PAIRS:-}" ] && ARGS+=(--eventcost-pairs "$BENCH_EVENTCOST_PAIRS")
for o in ${BENCH_CURL_OPTS:-}; do ARGS+=("--curl-opt=$o"); done
set +e
/usr/bin/python3 bench/bench.py --agentpen "$AGENTPEN" --agentpen-desc "$AP_DESC" --proj "$PROJ" \
    --user "$APW_USER" --out "$OUT" --cases "$CASES" "${ARGS[@]}" 9>&-
rc=$?
set -e
exit $rc
