# Shared by tests/run.sh (make test) and tests/dev.sh: stage the built binary and
# test bundle where an unprivileged user can run them, and run one filtered suite
# as that user or as root. Source it from the repository root, as root.
bin=.build/debug
bundle=$bin/agentpenPackageTests.xctest
user=agentpen-test
reports=()

stage_setup() {
    stage=$(mktemp -d /var/tmp/agentpen-test.XXXXXX)
    chmod 0755 "$stage"
    cp "$bin/agentpen" "$bundle" "$stage/"
    chmod 0755 "$stage/agentpen" "$stage/$(basename "$bundle")"
    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
    uid=$(id -u "$user"); gid=$(id -g "$user")
}

stage_cleanup() {
    [ -n "${stage:-}" ] || return 0
    # A tmux server a test started daemonizes; if the test died before its own
    # kill-server (killed, timed out), end it here by its socket in our stage.
    local sock
    while IFS= read -r sock; do
        [ -n "$sock" ] && timeout 3 tmux -S "$sock" kill-server >/dev/null 2>&1 || true
    done < <(find "$stage" -type s -name '*.sock' 2>/dev/null || true)
    chmod -R u+rwX "$stage" 2>/dev/null || true
    rm -rf "$stage"
}

run_suite() {  # name, filter, as-user(yes/no), [skip regex]
    local name=$1 filter=$2 as_user=$3 skip=${4:-}
    local dir="$stage/$name"
    mkdir -p "$dir/work" "$dir/tmp"
    local report="$dir/report.xml"
    # Each suite gets its own TMPDIR, so no test sees another suite's files.
    local -a cmd=(env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 NO_COLOR=1
                  CI="${CI:-}" AGENTPEN_BIN="$stage/agentpen" AGENTPEN_TEST_DIR="$dir/work" TMPDIR="$dir/tmp"
                  AGENTPEN_WORLD="${world:-}" AGENTPEN_AGENT_CACHE="${AGENTPEN_AGENT_CACHE:-}"
                  "$stage/$(basename "$bundle")" --testing-library swift-testing --filter "$filter"
                  ${skip:+--skip "$skip"} --xunit-output "$report")
    if [ "$as_user" = yes ]; then
        chown -R "$uid:$gid" "$dir"
        cmd=(setpriv --reuid="$uid" --regid="$gid" --init-groups -- env HOME="/home/$user" USER="$user" "${cmd[@]}")
    else
        cmd=(env HOME=/root USER=root "${cmd[@]}")
    fi
    # world=DIR run_suite …: inside the test world's host namespace (tests/world).
    if [ -n "${world:-}" ]; then cmd=(ip netns exec "${APW_HOST_NS:-apw-host}" "${cmd[@]}"); fi
    echo "== $name"
    # Not the world lock (fd 9 of run.sh/dev.sh): a daemon a test leaves behind (a
    # tmux server) would hold it after this script has ended, and block every other run.
    "${cmd[@]}" 9>&- || true
    reports+=("$report")
}
