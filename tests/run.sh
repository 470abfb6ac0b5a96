#!/usr/bin/env bash
# The whole test suite (`make test`): unit tests, then the end-to-end tests run
# with the real binary as an unprivileged user and as root. Ends with one line
# "N passed, N failed, N skipped" counted from every run's xunit report.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$0" "$@"; fi

bash scripts/deps.sh --test
export NO_COLOR=1
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift build --build-tests >/dev/null   # fail here if the build failed
source tests/suite.sh
stage_setup
# The real agents (pinned; fetched once into a cache outside the clone).
bash tests/agents/install.sh "$user" || echo "run.sh: the real agents did not install (RealAgentNetworkTests fail)" >&2
cleanup() {
    [ -n "${world_up:-}" ] && bash tests/world/world.sh down >/dev/null 2>&1 || true
    stage_cleanup
}
trap cleanup EXIT
# The fuzz targets, a bounded number of inputs each (make fuzz runs them longer);
# a crash fails the run, and each target counts in the closing line. Before the
# world lock: they need no world.
bash fuzz/run.sh --runs "${FUZZ_RUNS:-30000}" --reports "$stage" || true
for t in hello dns events nflog; do reports+=("$stage/fuzz-$t/report.xml"); done
# The test world is shared by every checkout on this machine (tests/dev.sh --world);
# APW_HOST_NS/APW_SRV_NS/APW_STATE/APW_LOCK name a private one instead (world.sh).
exec 9>"${APW_LOCK:-/tmp/agentpen-world.lock}"
flock 9

# The netlink tests re-run their inner halves inside fresh namespaces; those
# halves are not run (nor reported) at the top level.
# Every unit test target (Tests/Agentpen*Tests), so a new one cannot be left out.
units=$(cd Tests && ls -d Agentpen*Tests | paste -sd'|')
run_suite unit "$units" no 'NetlinkInsideNamespace|NetlinkPastaHost|NetlinkPastaNamespace'
run_suite e2e-user 'EndToEndTests' yes 'NetworkTests'
run_suite e2e-root 'EndToEndTests' no 'NetworkTests'

# --- The network suite, inside the test world (tests/world/README.md) ----------
# world.sh up is idempotent; the cleanup trap takes the world down again. If it
# fails to come up, the suite still runs and fails (under CI=true it never skips).
world_up=1
bash tests/world/world.sh up 9>&- || echo "run.sh: the test world did not come up" >&2
world=${APW_STATE:-/run/apw} run_suite network-user 'NetworkTests' yes
world=${APW_STATE:-/run/apw} run_suite network-root 'NetworkTests' no
bash tests/world/world.sh down >/dev/null 2>&1 || true
world_up=

python3 tests/summary.py "${reports[@]}"
