#!/usr/bin/env bash
# The whole test suite (`make test`): unit tests, then the end-to-end tests run
# with the real binary as an unprivileged user and as root. Ends with one line
# "N passed, N failed, N skipped" counted from every run's xunit report.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$0" "$@"; fi

bash scripts/deps.sh
export NO_COLOR=1
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift build --build-tests >/dev/null   # fail here if the build failed
bin=.build/debug
bundle=$bin/agentpenPackageTests.xctest

stage=$(mktemp -d /var/tmp/agentpen-test.XXXXXX)
cleanup() {
    [ -n "${world_up:-}" ] && bash tests/world/world.sh down >/dev/null 2>&1 || true
    chmod -R u+rwX "$stage" 2>/dev/null || true
    rm -rf "$stage"
}
trap cleanup EXIT
chmod 0755 "$stage"
cp "$bin/agentpen" "$bundle" "$stage/"
chmod 0755 "$stage/agentpen" "$stage/$(basename "$bundle")"

user=agentpen-test
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
uid=$(id -u "$user"); gid=$(id -g "$user")

reports=()
run_suite() {  # name, filter, as-user(yes/no), [skip regex]
    local name=$1 filter=$2 as_user=$3 skip=${4:-}
    local dir="$stage/$name"
    mkdir -p "$dir/work"
    local report="$dir/report.xml"
    local -a cmd=(env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 NO_COLOR=1
                  CI="${CI:-}" AGENTPEN_BIN="$stage/agentpen" AGENTPEN_TEST_DIR="$dir/work" TMPDIR=/tmp
                  AGENTPEN_WORLD="${world:-}"
                  "$stage/$(basename "$bundle")" --testing-library swift-testing --filter "$filter"
                  ${skip:+--skip "$skip"} --xunit-output "$report")
    if [ "$as_user" = yes ]; then
        chown -R "$uid:$gid" "$dir"
        cmd=(setpriv --reuid="$uid" --regid="$gid" --init-groups -- env HOME="/home/$user" USER="$user" "${cmd[@]}")
    else
        cmd=(env HOME=/root USER=root "${cmd[@]}")
    fi
    # world=DIR run_suite …: inside the test world's host namespace (tests/world).
    if [ -n "${world:-}" ]; then cmd=(ip netns exec apw-host "${cmd[@]}"); fi
    echo "== $name"
    "${cmd[@]}" || true
    reports+=("$report")
}

# The netlink tests re-run their inner halves inside fresh namespaces; those
# halves are not run (nor reported) at the top level.
run_suite unit 'AgentpenPolicyTests|AgentpenProxyTests|AgentpenKernelTests' no 'NetlinkInsideNamespace|NetlinkPastaHost|NetlinkPastaNamespace'
run_suite e2e-user 'EndToEndTests' yes 'NetworkTests'
run_suite e2e-root 'EndToEndTests' no 'NetworkTests'

# --- The network suite, inside the test world (tests/world/README.md) ----------
# world.sh up is idempotent; the cleanup trap takes the world down again. If it
# fails to come up, the suite still runs and fails (under CI=true it never skips).
world_up=1
bash tests/world/world.sh up || echo "run.sh: the test world did not come up" >&2
world=/run/apw run_suite network-user 'NetworkTests' yes
world=/run/apw run_suite network-root 'NetworkTests' no
bash tests/world/world.sh down >/dev/null 2>&1 || true
world_up=

python3 tests/summary.py "${reports[@]}"
