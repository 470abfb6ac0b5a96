#!/bin/bash
# Do two agentpen binaries perform alike? (issue 8: "make bench agrees within the
# spread of 5 interleaved runs")
#   bench/compare.sh OLD_AGENTPEN NEW_AGENTPEN        (as root, like bench/run.sh)
# Runs bench/run.sh ROUNDS times with each binary, interleaved (old, new, old,
# new, ...), so that whatever else loads the machine falls on both alike; then
# prints, per measured figure, each binary's median and min–max over its rounds
# and whether each median lies inside the other's spread (min–max), and writes
# that table to BENCH_COMPARE_OUT.
#   BENCH_ROUNDS=5                         rounds per binary (default 5)
#   BENCH_CASES=startup,bulk,connsetup,concurrency,cpu,audit   cases both binaries support
#                                          (default shown; see bench/run.sh)
#   BENCH_HOPS=splice                      the hop(s) measured, the same for both: a
#                                          binary's default hop may differ (before
#                                          the direct hop existed the default was splice)
#   BENCH_COMPARE_OUT=bench/results-compare.md
#   BENCH_COMPARE_DIR=DIR                  keep each round's bench/run.sh report here
#                                          (default: a new directory under /tmp)
#   BENCH_COMPARE_REPORT_ONLY=1            no rounds: only the table, from the reports
#                                          already in BENCH_COMPARE_DIR
# Everything else bench/run.sh reads (BENCH_QUICK, BENCH_PAIRS, APW_* for a
# private test world) is passed on. The world is brought up once and kept for
# all rounds; it is taken down at the end if it was not up before.
# Exit status: 2 usage, 1 if a round failed, else 0 (also when figures differ:
# read the table).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ $# -ne 2 ]; then
    echo "usage: bench/compare.sh OLD_AGENTPEN NEW_AGENTPEN" >&2
    exit 2
fi
[ "$(id -u)" = 0 ] || { echo "bench/compare.sh: run as root (bench/run.sh builds network namespaces)" >&2; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2")
for b in "$OLD" "$NEW"; do
    [ -x "$b" ] || { echo "bench/compare.sh: $b is not an executable agentpen" >&2; exit 2; }
done
ROUNDS=${BENCH_ROUNDS:-5}
case "$ROUNDS" in ''|*[!0-9]*|0) echo "bench/compare.sh: BENCH_ROUNDS=$ROUNDS is not a positive number" >&2; exit 2 ;; esac
export BENCH_CASES=${BENCH_CASES:-startup,bulk,connsetup,concurrency,cpu,audit}
export BENCH_HOPS=${BENCH_HOPS:-splice}
export BENCH_DEFAULT_HOP=${BENCH_DEFAULT_HOP:-${BENCH_HOPS%%,*}}
export BENCH_CONC_HOP=${BENCH_CONC_HOP:-${BENCH_HOPS%%,*}}
OUT=${BENCH_COMPARE_OUT:-$ROOT/bench/results-compare.md}
DIR=${BENCH_COMPARE_DIR:-$(mktemp -d /tmp/agentpen-compare.XXXXXX)}
mkdir -p "$DIR"

failed=0
if [ -z "${BENCH_COMPARE_REPORT_ONLY:-}" ]; then
was_up=0
tests/world/world.sh status >/dev/null 2>&1 && was_up=1
cleanup() {
    local rc=$?
    if [ $was_up = 0 ]; then
        # Under the world lock, as bench/run.sh and the tests take it.
        ( flock 9; tests/world/world.sh down >/dev/null 9>&- ) 9>"${APW_LOCK:-/tmp/agentpen-world.lock}" || true
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in $(seq 1 "$ROUNDS"); do
    for which in old new; do
        bin=$OLD; [ $which = new ] && bin=$NEW
        echo "bench/compare.sh: round $i/$ROUNDS, $which ($bin)" >&2
        if ! BENCH_KEEP_WORLD=1 AGENTPEN=$bin BENCH_OUT="$DIR/$which-$i.md" bash bench/run.sh \
                >"$DIR/$which-$i.log" 2>&1; then
            echo "bench/compare.sh: round $i, $which: bench/run.sh failed (see $DIR/$which-$i.log)" >&2
            failed=1
        fi
    done
done
fi

/usr/bin/python3 - "$DIR" "$ROUNDS" "$OUT" "$OLD" "$NEW" <<'PY'
import os, re, statistics, sys

d, rounds, out, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
NUM = re.compile(r"^\+?(-?[0-9]+(?:\.[0-9]+)?)\s*(.*)$")

def figures(path):
    """metric -> (value, unit) from one bench report: the agentpen column, or
    the ratio column where a row has no agentpen figure."""
    got = {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return got
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[0] in ("case", "---") or cells[0].startswith("-"):
            continue
        case, metric, base, agent, ratio = cells[:5]
        # The same figure against two baselines ("(vs true)", "(vs bare bwrap)"): once.
        metric = re.sub(r" \(vs [^)]*\)$", "", metric)
        # How many pairs or runs a round got (a failed one is left out) is not the figure.
        metric = re.sub(r" \(FEWER THAN [0-9]+\)", "", metric)
        metric = re.sub(r"\b[0-9]+ (pairs|direct runs)\b", r"N \1", metric)
        if (case, metric) in got:
            continue
        # The agentpen figure; and the ratio or added time against the baseline
        # measured in the same round (not for startup, where that baseline is `true`).
        m = NUM.match(agent)
        if m:
            got[(case, metric)] = (float(m.group(1)), m.group(2).split(" ")[0])
        m = NUM.match(ratio)
        if m and case != "startup":
            unit = m.group(2).split(" ")[0]
            got[(case, metric + " [ratio/added]")] = (float(m.group(1)), unit if unit in ("ms", "s") else "")
    return got

runs = {w: [figures(os.path.join(d, "%s-%d.md" % (w, i))) for i in range(1, rounds + 1)] for w in ("old", "new")}
keys = []
for w in ("old", "new"):
    for r in runs[w]:
        for k in r:
            if k not in keys:
                keys.append(k)

def fmt(v):
    return ("%.3g" % v) if abs(v) < 100 else ("%.0f" % v)

rows, disagree = [], []
for k in keys:
    o = [r[k][0] for r in runs["old"] if k in r]
    n = [r[k][0] for r in runs["new"] if k in r]
    unit = next(r[k][1] for w in ("old", "new") for r in runs[w] if k in r)
    if not o or not n:
        rows.append((k, "-", "-", "-", "-", "missing (old %d, new %d rounds)" % (len(o), len(n))))
        disagree.append(k)
        continue
    mo, mn = statistics.median(o), statistics.median(n)
    new_in_old = min(o) <= mn <= max(o)
    old_in_new = min(n) <= mo <= max(n)
    verdict = "agree" if new_in_old and old_in_new else ("partly" if new_in_old or old_in_new else "DIFFER")
    if verdict != "agree":
        disagree.append(k)
    u = (" " + unit) if unit else ""
    rows.append((k, "%s%s (%s to %s, %d)" % (fmt(mo), u, fmt(min(o)), fmt(max(o)), len(o)),
                 "%s%s (%s to %s, %d)" % (fmt(mn), u, fmt(min(n)), fmt(max(n)), len(n)),
                 "yes" if new_in_old else "no", "yes" if old_in_new else "no", verdict))

head = ["case", "metric", "old: median (min to max, rounds)", "new: median (min to max, rounds)",
        "new median in old spread", "old median in new spread", "verdict"]
table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
for (case, metric), a, b, x, y, v in rows:
    table.append("| %s | %s | %s | %s | %s | %s | %s |" % (case, metric, a, b, x, y, v))
text = "\n".join(table)
print(text)
with open(out, "w", encoding="utf-8") as f:
    f.write("# agentpen: old and new binary, %d interleaved bench rounds each\n\n" % rounds)
    f.write("Generated by `bench/compare.sh OLD NEW` (bench/run.sh run old, new, old, new, …).\n\n")
    f.write("- old: %s\n- new: %s\n" % (old, new))
    f.write("- cases: %s; hop(s): %s\n" % (os.environ.get("BENCH_CASES", ""), os.environ.get("BENCH_HOPS", "")))
    f.write("- each round's report: %s\n\n" % d)
    f.write("A figure agrees when each binary's median lies inside the other's min–max over its rounds.\n\n")
    f.write(text + "\n")
    if disagree:
        f.write("\nNot agreeing: %s\n" % "; ".join("%s / %s" % k for k in disagree))
print("\nwritten to %s; %d of %d figures agree" % (out, len(rows) - len(disagree), len(rows)), file=sys.stderr)
PY
exit $failed
