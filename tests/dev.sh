#!/usr/bin/env bash
# Developer loop: build, then run only the test cases matching FILTER, the way
# make test runs them (as the unprivileged test user, then as root).
#   bash tests/dev.sh FILTER            end-to-end or unit tests, user and root
#   bash tests/dev.sh --world FILTER    inside the test world (NetworkTests)
# The test world is shared by every checkout on this machine, so --world runs
# hold /tmp/agentpen-world.lock (and so should a concurrent make test).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$0" "$@"; fi
use_world=
if [ "${1:-}" = --world ]; then use_world=1; shift; fi
filter=${1:?usage: tests/dev.sh [--world] FILTER}
export NO_COLOR=1
swift build --build-tests 2>&1 | grep -E 'error|warning: var|Compiling|Build' | grep -v '^\[' || true
swift build --build-tests >/dev/null
source tests/suite.sh
stage_setup
trap stage_cleanup EXIT
if [ -n "$use_world" ]; then
    # APW_HOST_NS/APW_SRV_NS/APW_STATE/APW_LOCK: a private world of one's own (world.sh).
    exec 9>"${APW_LOCK:-/tmp/agentpen-world.lock}"
    flock 9
    # The world's daemons must not inherit the lock, or it stays held after we exit.
    bash tests/world/world.sh up >/dev/null 9>&-
    bash tests/agents/install.sh "$user" || echo "dev.sh: the real agents did not install" >&2   # RealAgentNetworkTests; cached
    world=${APW_STATE:-/run/apw}
fi
# NetworkTests need the world; outside it they are left out, as make test does.
skip=; [ -z "$use_world" ] && skip=NetworkTests
run_suite dev-user "$filter" yes "$skip"
run_suite dev-root "$filter" no "$skip"
python3 tests/summary.py "${reports[@]}"
