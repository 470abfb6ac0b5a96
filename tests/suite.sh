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
    reflink_setup
}

# Small XFS and btrfs filesystems (reflink-capable) on loop images in the stage,
# for the tests of the paranoid profile's reflinked copy (ReflinkTests;
# AGENTPEN_REFLINK_XFS, AGENTPEN_REFLINK_BTRFS). Without mkfs.xfs / mkfs.btrfs
# (scripts/deps.sh --test installs xfsprogs and btrfs-progs) or loop devices a
# variable stays empty and that case skips, or fails under CI=true.
reflink_xfs=
reflink_btrfs=
reflink_mount() {  # fs: echoes the mount point, or nothing
    local fs=$1 img="$stage/reflink-$1.img" dir="$stage/reflink-$1"
    command -v "mkfs.$fs" >/dev/null || { echo "suite.sh: no mkfs.$fs: ReflinkTests($fs) skip (fail under CI)" >&2; return 0; }
    truncate -s 512M "$img"
    mkdir -p "$dir"
    local -a opts=(-q); [ "$fs" = xfs ] && opts+=(-m reflink=1)
    if "mkfs.$fs" "${opts[@]}" "$img" >/dev/null && mount -o loop "$img" "$dir"; then
        chmod 1777 "$dir"
        echo "$dir"
    else
        echo "suite.sh: cannot mount a $fs loop image: ReflinkTests($fs) skip (fail under CI)" >&2
    fi
}
reflink_setup() {
    reflink_xfs=$(reflink_mount xfs)
    reflink_btrfs=$(reflink_mount btrfs)
}

stage_cleanup() {
    [ -n "${stage:-}" ] || return 0
    # The XFS loop mount first: the removal below must not run inside it, nor leave it attached.
    local m
    for m in "${reflink_xfs:-}" "${reflink_btrfs:-}"; do
        if [ -n "$m" ] && mountpoint -q "$m"; then umount "$m" || umount -l "$m" || true; fi
    done
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
                  AGENTPEN_WORLD="${world:-}" AGENTPEN_REFLINK_XFS="${reflink_xfs:-}" AGENTPEN_REFLINK_BTRFS="${reflink_btrfs:-}" AGENTPEN_AGENT_CACHE="${AGENTPEN_AGENT_CACHE:-}"
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
