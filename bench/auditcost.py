#!/usr/bin/python3
"""Start-up and end-of-run cost of agentpen on one project (run as the bench user).

The confined command is `date +%s%N`: the time it prints splits each run into
start-up (agentpen started -> command ran) and end (command ran -> agentpen
exited, which includes the persistence audit). Prints one JSON line with the
per-run figures in ms.
    auditcost.py AGENTPEN PROJECT RUNS
"""
import json, subprocess, sys, time

agentpen, project, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
start, end = [], []
for i in range(runs + 3):                  # the first three warm the cache
    t0 = time.time_ns()
    p = subprocess.run([agentpen, "-C", project, "--", "/bin/date", "+%s%N"], capture_output=True, text=True)
    t1 = time.time_ns()
    if p.returncode != 0:
        print(json.dumps({"error": p.stderr.strip()[-300:] or "exit %d" % p.returncode}))
        sys.exit(1)
    tc = int(p.stdout.strip().splitlines()[-1])
    if i >= 3:
        start.append((tc - t0) / 1e6)
        end.append((t1 - tc) / 1e6)
print(json.dumps({"start_ms": start, "end_ms": end}))
