#!/usr/bin/env bash
# libFuzzer targets for the code that parses hostile bytes (fuzz/README.md):
#   hello   the proxy's ClientHello reassembly and parse   (AgentpenPolicy)
#   dns     the in-namespace DNS responder's parse/reply   (AgentpenPolicy)
#   events  the event-line decoder and the sanitizer       (AgentpenEvents)
#   nflog   the firewall's NFLOG records of refused flows   (AgentpenPolicy)
# Each is the real source files compiled with `swiftc -sanitize=fuzzer,address`
# and one entry point from fuzz/Targets, seeded from fuzz/corpus/NAME.
#
#   bash fuzz/run.sh                     make fuzz: each target FUZZ_TIME seconds (default 60)
#   bash fuzz/run.sh --runs N --reports DIR [NAME...]
#                                        make test: N inputs each; an xunit report per
#                                        target in DIR/fuzz-NAME/report.xml
# A crash (or leak, or hang) fails the run with one line naming the saved input
# and the command that reproduces it. New inputs go to .build/fuzz/NAME/corpus,
# never into the seed corpus; copy a regression input there by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
runs= reports=
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --reports) reports=$2; shift 2 ;;
        *) break ;;
    esac
done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hello dns events nflog)
time=${FUZZ_TIME:-60}
swiftc=${SWIFTC:-swiftc}

P=Sources/AgentpenPolicy E=Sources/AgentpenEvents
sources() {
    case $1 in
        hello)  echo "$P/ByteCursor.swift $P/ClientHello.swift $P/HostPattern.swift $P/AddressPolicy.swift" ;;
        dns)    echo "$P/ByteCursor.swift $P/DNSMessage.swift $P/HostPattern.swift $P/AddressPolicy.swift $P/UnlistedNames.swift" ;;
        events) echo "$E"/*.swift ;;   # the whole module: it has no generated sources
        nflog)  echo "$P/Refusals.swift $P/NetlinkFraming.swift $P/NftCounterDump.swift $P/ByteCursor.swift $P/DNSMessage.swift $P/HostPattern.swift $P/AddressPolicy.swift $P/UnlistedNames.swift" ;;
        *) echo "fuzz: unknown target $1" >&2; return 1 ;;
    esac
}
# Inputs up to this size: the hello bound on the wire is 16 KiB.
maxlen() { case $1 in hello) echo 17000 ;; dns) echo 1500 ;; *) echo 4096 ;; esac; }

xml() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' <<<"$1" | tr -d '\000-\010\013\014\016-\037'; }
report() {  # name, failure message or empty
    [ -n "$reports" ] || return 0
    local dir="$reports/fuzz-$1"
    mkdir -p "$dir"
    {
        echo '<?xml version="1.0" encoding="UTF-8"?>'
        echo "<testsuites><testsuite name=\"fuzz\" tests=\"1\" failures=\"$([ -n "$2" ] && echo 1 || echo 0)\">"
        echo "<testcase classname=\"fuzz\" name=\"$1\">"
        [ -z "$2" ] || echo "<failure message=\"$(xml "$2")\"/>"
        echo "</testcase></testsuite></testsuites>"
    } > "$dir/report.xml"
}

# The libFuzzer runtime ships with the swift.org toolchain (lib/clang/*/lib/linux);
# Debian's clang packages would not match its clang version.
toolchain_ok() {
    local lib
    lib=$(dirname "$(readlink -f "$(command -v "$swiftc")")")/../lib/clang
    compgen -G "$lib/*/lib/linux/libclang_rt.fuzzer-$(uname -m).a" >/dev/null \
        && compgen -G "$lib/*/lib/linux/libclang_rt.asan-$(uname -m).a" >/dev/null
}

failed=0
for t in "${targets[@]}"; do
    work=$PWD/.build/fuzz/$t
    bin=$work/fuzzer
    mkdir -p "$work/corpus"
    src=$(sources "$t")
    if ! toolchain_ok; then
        msg="the Swift toolchain at $(command -v "$swiftc" || echo "(no swiftc)") has no libFuzzer/ASan runtime (libclang_rt.fuzzer, libclang_rt.asan); install the swift.org toolchain"
        echo "fuzz $t: FAILED: $msg"
        report "$t" "$msg"; failed=1; continue
    fi
    # Rebuilt only when a source is newer than the binary.
    if [ ! -x "$bin" ] || [ -n "$(find $src "fuzz/Targets/$t.swift" -newer "$bin" 2>/dev/null)" ]; then
        # shellcheck disable=SC2086
        if ! "$swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -module-name "Fuzz_$t" \
                $src "fuzz/Targets/$t.swift" -o "$bin" > "$work/build.log" 2>&1; then
            grep -v "Cannot export local symbol" "$work/build.log" | head -20
            msg="the fuzz target did not build (see $work/build.log)"
            echo "fuzz $t: FAILED: $msg"
            report "$t" "$msg"; failed=1; continue
        fi
    fi
    if [ -n "$runs" ]; then mode=(-runs="$runs"); else mode=(-max_total_time="$time"); fi
    rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
    set +e
    "$bin" -artifact_prefix="$work/" -max_len="$(maxlen "$t")" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 "${mode[@]}" "$work/corpus" "fuzz/corpus/$t" > "$work/log" 2>&1
    rc=$?
    set -e
    artifact=$(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null | head -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    if [ $rc -ne 0 ] || [ -n "$artifact" ]; then
        why=$(grep -m1 -E "ERROR: (AddressSanitizer|libFuzzer)|Fatal error|deadly signal" "$work/log" || echo "exit status $rc")
        msg="$why; input saved at ${artifact:-(none)}; reproduce: $bin ${artifact:-} (log: $work/log)"
        echo "fuzz $t: CRASHED: $msg"
        report "$t" "$msg"; failed=1
    else
        echo "fuzz $t: ${execs:-?} inputs, no crash"
        report "$t" ""
    fi
done
exit $failed
