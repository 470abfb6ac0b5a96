#!/usr/bin/python3
"""agentpen benchmark driver (run by bench/run.sh as root, with the test world up).

Every measured command runs as the unprivileged bench user inside netns apw-host:
the baseline directly, the agentpen side under `agentpen --allow-private ... --`.
Prints a table (baseline, agentpen, ratio, target, met?) and writes results.md.
Exit status: 0 if every case ran (targets missed are reported, not fatal); 1 if any
case FAILED (agentpen or a baseline could not run).
"""
import argparse, datetime, json, os, platform, pwd, shlex, statistics, subprocess
import re, shutil, sys, threading, time

GiB = 1 << 30
BIG = 256 << 20
# AGENTPEN_HOP values, each measured; DEFAULT_HOP is agentpen's default (marked in the table).
# direct: sockets made inside the namespace, served by agentpen (no pasta); splice: pasta's
# loopback splice; gateway: pasta's tap and the in-namespace forwarder (--hop pasta).
HOPS = tuple(os.environ.get("BENCH_HOPS", "direct,splice,gateway").split(","))
DEFAULT_HOP = os.environ.get("BENCH_DEFAULT_HOP", "direct")
HOST_NS = os.environ.get("APW_HOST_NS", "apw-host")   # a private world's host namespace (tests/world)
CONC_HOP = os.environ.get("BENCH_CONC_HOP", "direct")   # the concurrency case's hop
# Bulk downloads go to bench.test, the world's server tuned not to be the limit (no access
# log, sendfile; tests/world/world.sh make_bench_server), with each HTTP version.
BENCH_HOST = "bench.test"
PROTOS = {"http1.1": "--http1.1", "http2": "--http2"}
PROTO_LABEL = {"http1.1": "HTTP/1.1", "http2": "HTTP/2"}
PROTOS_HEADLINE = "http1.1"
WORKLOAD = {"curl", "python3", "hyperfine", "tlsload.py", "true", "bash", "sh", "sleep"}
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Bench:
    def __init__(self, a):
        self.a = a
        pw = pwd.getpwnam(a.user)
        self.uid, self.home = pw.pw_uid, pw.pw_dir
        self.proj = a.proj
        self.rows = []        # table rows
        self.notes = []
        self.failed = []
        self.suspect = []     # rows whose baseline did not hold (see pair_row)
        self.host_netns = self._netns_of_apw_host()

    # ---- running things as the bench user inside apw-host -----------------------
    def _netns_of_apw_host(self):
        out = subprocess.run(["ip", "netns", "exec", HOST_NS, "readlink", "/proc/self/ns/net"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return out

    def user_cmd(self, argv, env=()):
        return (["ip", "netns", "exec", HOST_NS, "setpriv", "--reuid=%s" % self.a.user,
                 "--regid=%s" % self.a.user, "--clear-groups", "--inh-caps=-all", "--",
                 "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=%s" % self.home,
                 "USER=%s" % self.a.user, "LOGNAME=%s" % self.a.user, "LANG=C.UTF-8"]
                + list(env) + list(argv))

    def ap(self, argv, allow=("allowed.test",), hop=None, env=None):
        """agentpen --allow-private NAME... -- argv; with `hop`, run through
        `env AGENTPEN_HOP=hop` (the variable agentpen reads to choose the namespace → proxy hop);
        `env`: more variables for agentpen (the eventcost case's switch)."""
        cmd = [self.a.agentpen]
        extra = (["AGENTPEN_HOP=" + hop] if hop else []) + ["%s=%s" % kv for kv in sorted((env or {}).items())]
        if extra:
            cmd = ["env"] + extra + cmd
        for name in (allow or ()):
            cmd += ["--allow-private", name]
        return cmd + ["-C", self.proj, "--"] + list(argv)

    def run(self, argv, timeout, **kw):
        """Run as the bench user; returns (rc, stdout, stderr); rc 124 on timeout."""
        try:
            p = subprocess.run(self.user_cmd(argv), cwd=self.proj, capture_output=True,
                               text=True, timeout=timeout, **kw)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return 124, "", "timed out after %ss" % timeout

    # ---- rows ----------------------------------------------------------------
    def row(self, case, metric, base, agent, ratio, target, met, note=""):
        self.rows.append(dict(case=case, metric=metric, base=base, agent=agent, ratio=ratio,
                              target=target, met=met, note=note))

    def fail(self, case, metric, base, target, err):
        err = " ".join(str(err).split())[-300:]
        self.failed.append("%s/%s: %s" % (case, metric, err))
        self.row(case, metric, base, "FAILED", "-", target, "FAILED", err)

    # ---- cases -----------------------------------------------------------------
    def agentpen_smoke(self, argv, allow=("allowed.test",), timeout=60, hop=None):
        rc, out, err = self.run(self.ap(argv, allow, hop=hop), timeout)
        return rc == 0, (err.strip() or out.strip() or "exit %d" % rc) if rc else ""

    def hyperfine(self, name, argv, runs):
        jf = os.path.join(self.proj, "hf-%s.json" % name)
        cmd = ["hyperfine", "-N", "--style", "none", "--warmup", "3", "--runs", str(runs),
               "--export-json", jf, " ".join(shlex.quote(x) for x in argv)]
        rc, out, err = self.run(cmd, timeout=runs * 5 + 60)
        if rc != 0:
            raise RuntimeError("hyperfine: " + (err.strip() or out.strip())[-300:])
        with open(jf) as f:
            t = json.load(f)["results"][0]["times"]
        t = sorted(x * 1000.0 for x in t)
        return {"p50": pct(t, 50), "p95": pct(t, 95), "mean": statistics.mean(t), "n": len(t)}

    def case_startup(self):
        runs = self.a.startup_runs
        try:
            base = self.hyperfine("true", ["true"], runs)
            bw = self.hyperfine("bwrap", ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                                          "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                          "--tmpfs", "/tmp", "--", "true"], runs)
        except Exception as e:
            self.fail("startup", "baseline", "-", "-", e)
            return
        self.notes.append("startup: `true` p50 %.2f ms; bare bwrap (all namespaces) p50 %.1f ms, p95 %.1f ms"
                          % (base["p50"], bw["p50"], bw["p95"]))
        # The physical costs a networked start is made of, each alone in the same run:
        # the binary's own start (a networked run execs it three times: agentpen, the
        # namespace helper, the exec helper in the sandbox), the kernel's user and
        # network namespace, and nft loading agentpen's ruleset there (the helper runs
        # nft twice more: the read-back and, at the end, the counters).
        self.startup_parts = {}
        try:
            rules = self.ruleset_file()
            nft = shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin:/bin") or "nft"
            for key, label, argv in (
                    ("binary", "agentpen --version (the binary's start)", [self.a.agentpen, "--version"]),
                    ("netns", "unshare -Urn true (user + network namespace)", ["unshare", "-Urn", "true"]),
                    ("nft", "unshare -Urn nft -f RULESET (the same + one nft load)", ["unshare", "-Urn", nft, "-f", rules]),
                    ("nftlist", "unshare -Urn nft list ruleset (the same + one nft read)", ["unshare", "-Urn", nft, "list", "ruleset"])):
                r = self.hyperfine("part-" + key, argv, runs)
                self.startup_parts[key] = r
                self.row("startup", "part: %s p50" % label, "-", "%.1f ms" % r["p50"], "-", "info", "-")
        except Exception as e:
            self.notes.append("startup parts not measured: %s" % e)
        cases = [("agentpen -- true", (), None)]
        for h in HOPS:
            cases.append(("agentpen --allow-private allowed.test -- true, hop %s%s"
                          % (h, " [default]" if h == DEFAULT_HOP else ""), ("allowed.test",), h))
        for label, allow, hop in cases:
            ok, err = self.agentpen_smoke(["true"], allow, hop=hop)
            if not ok:
                self.fail("startup", label + " p50", "%.1f ms" % base["p50"], "≤ 150 ms", err)
                continue
            try:
                ag = self.hyperfine("agentpen%d%s" % (len(allow), hop or ""), self.ap(["true"], allow, hop=hop), runs)
            except Exception as e:
                self.fail("startup", label + " p50", "%.1f ms" % base["p50"], "≤ 150 ms", e)
                continue
            for q, tgt in (("p50", 150.0), ("p95", 300.0)):
                self.row("startup", "%s %s (vs true)" % (label, q), "%.1f ms" % base[q], "%.1f ms" % ag[q],
                         "%.0fx" % (ag[q] / base[q]), "≤ %.0f ms" % tgt, yes(ag[q] <= tgt))
                self.row("startup", "%s %s (vs bare bwrap)" % (label, q), "%.1f ms" % bw[q], "%.1f ms" % ag[q],
                         "%.1fx" % (ag[q] / bw[q]), "-", "-")
            if hop in (None, DEFAULT_HOP):
                self.startup_stages("networked" if allow else "no network", allow, hop, min(runs, 20))

    STAGE_EVENTS = "sched:sched_process_exec,sched:sched_process_exit,sched:sched_process_fork"

    def startup_stages(self, label, allow, hop, runs):
        """Where one start-up's time goes: `runs` runs of `agentpen ... -- true` one after
        the other under perf's scheduler tracepoints (exec, exit, fork: a few events per
        process, nothing that slows the runs), each run's process tree followed from its
        agentpen exec, and the boundaries between its processes. Rows: p50 (min) per stage."""
        perf = shutil.which("perf")
        if not perf:
            self.notes.append("startup stages not measured: no perf")
            return
        data = os.path.join(self.proj, "stages.perf")
        one = " ".join(shlex.quote(x) for x in self.user_cmd(self.ap(["true"], allow, hop=hop)))
        # The /bin/true after the loop: the loop's shell forks once more after the last run
        # is reaped, which marks that run's end (see startup_stages_from_perf).
        loop = "for i in $(seq %d); do %s >/dev/null 2>&1 || exit 1; done; /bin/true; /bin/true" % (runs, one)
        p = subprocess.run([perf, "record", "-q", "-a", "-o", data, "-e", self.STAGE_EVENTS, "--", "bash", "-c", loop],
                           capture_output=True, text=True, timeout=runs * 10 + 60)
        if p.returncode != 0:
            self.notes.append("startup stages (%s) not measured: perf record: %s" % (label, (p.stderr or p.stdout)[-200:]))
            return
        q = subprocess.run([perf, "script", "-i", data, "-F", "pid,tid,time,event,trace"],
                           capture_output=True, text=True, timeout=120)
        os.unlink(data)
        stages = startup_stages_from_perf(q.stdout, self.a.agentpen)
        if not stages:
            self.notes.append("startup stages (%s): no run found in perf's record" % label)
            return
        for name, vals in stages:
            self.row("startup", "stage (%s): %s, p50 (min) of %d" % (label, name, len(vals)), "-",
                     "%.1f ms (%.1f)" % (statistics.median(vals), min(vals)), "-", "info", "-")

    def ruleset_file(self):
        """agentpen's ruleset for the direct hop as --dry-run shows it (the catch-all
        port filled in), written into the project for nft -f."""
        rc, out, err = self.run([self.a.agentpen, "--dry-run", "--allow-private", "allowed.test", "-C", self.proj, "--", "true"],
                                timeout=60)
        lines, on = [], False
        for l in (out + err).splitlines():
            if "nft ruleset inside" in l:
                on = True
                continue
            if on and not l.startswith("    "):
                break
            if on:
                lines.append(l[4:].replace("\\t", "\t").replace(":CATCH", ":40000"))
        if rc != 0 or not lines:
            raise RuntimeError("no ruleset in agentpen --dry-run: " + (err or out)[-200:])
        path = os.path.join(self.proj, "ruleset.nft")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o644)
        return path

    def curl_big(self, inside, urls=1, hop=None, proto="http1.1"):
        """curl /big from bench.test (the world's bench-tuned server) `urls` times in one
        process, with the HTTP version `proto` (a key of PROTOS)."""
        # 256 MiB takes < 3 s at the slowest rate seen here; a stalled transfer costs 40 s, not 120
        c = ["curl", "-sS", PROTOS[proto], "--max-time", "40", "--cacert", "ca.pem"] + self.a.curl_opt
        for _ in range(urls):
            c += ["-o", "/dev/null", "https://%s/big" % BENCH_HOST]
        c += ["-w", "%{speed_download},%{size_download},%{http_code}\\n"]
        argv = self.ap(c, hop=hop, allow=(BENCH_HOST,)) if inside else c
        return self.run(argv, timeout=150 * urls)

    def case_bulk(self):
        """Per HTTP version and hop: `pairs` pairs of (direct, inside) runs back to back,
        interleaved round by round (every hop and version once per round, the hop order
        alternating), so drift and other load hit both halves of a pair alike. The figure
        is the median of the per-pair ratios inside/direct, with their spread."""
        pairs = self.a.bulk_pairs
        keys = [(p, h) for p in PROTOS for h in HOPS]
        res = {k: {"d": [], "x": [], "err": None} for k in keys}
        seq = {p: [] for p in PROTOS}     # direct runs in time order, per version (noise)
        for p in PROTOS:                  # warm-up: page cache, nginx workers, agentpen binary
            self.curl_big(False, proto=p)
        self.curl_big(True, hop=HOPS[0])
        for i in range(pairs):
            for p in PROTOS:
                for h in (HOPS if i % 2 == 0 else HOPS[::-1]):
                    r = res[(p, h)]
                    if r["err"]:
                        continue
                    rc, out, e = self.curl_big(False, proto=p)
                    d = parse_speed(out)
                    if rc or d is None:
                        r["err"] = "direct curl failed: %s" % (e.strip() or out.strip() or "exit %d" % rc)
                        continue
                    rc, out, e = self.curl_big(True, hop=h, proto=p)
                    x = parse_speed(out)
                    if rc or x is None:
                        # agentpen's download failed (seen: an HTTP/2 stream through the splice
                        # hop stalled ~1 MB before its end): FAILED, but the other pairs still count
                        # curl's own line first: agentpen's exit summary follows it on stderr
                        # and would push it out of the 200 characters kept.
                        why = [l for l in e.splitlines() if l.startswith("curl:")]
                        msg = " ".join((why[0] if why else e.strip() or out.strip() or "exit %d" % rc).split())[-200:]
                        r["bad"] = r.get("bad", []) + [msg]
                        self.failed.append("bulk/%s hop %s, pair %d: %s" % (PROTO_LABEL[p], h, i + 1, msg))
                        continue
                    seq[p].append(d)
                    r["d"].append(d); r["x"].append(x)
        self.noise = {p: run_noise(seq[p]) for p in PROTOS}
        for p in PROTOS:
            if not seq[p]:
                continue
            # The baseline's own check: a steady direct path has its median near its
            # fastest run; far below means other load or placement changed it mid-run.
            med, top = statistics.median(seq[p]), max(seq[p])
            self.row("bulk", "direct baseline, %s: median of %d direct runs vs the fastest" % (PROTO_LABEL[p], len(seq[p])),
                     "%.0f MB/s" % (med / 1e6), "-", "%.2f of fastest (%.0f MB/s)" % (med / top, top / 1e6),
                     "≥ 0.90 (steady)", yes(med / top >= 0.90),
                     "direct runs in time order %s MB/s; noise between successive direct runs %s"
                     % (fmt_list(seq[p]), fmt_noise(self.noise[p])))
        for p, h in keys:
            r = res[(p, h)]
            headline = p == PROTOS_HEADLINE
            metric = "256 MiB TLS download, %s, hop %s%s" % (PROTO_LABEL[p], h, " [default]" if h == DEFAULT_HOP else "")
            tgt = "≥ 0.60" if headline else "report"
            if r["err"] and not r["d"]:
                self.fail("bulk", metric, "-", tgt, r["err"])
                continue
            bad = r.get("bad", [])
            parts = [r["err"]] if r["err"] else []
            if bad:
                parts.append("%d inside run(s) FAILED: %s" % (len(bad), bad[0]))
            err = "; ".join(parts)
            self.pair_row("bulk", metric, r["d"], r["x"], self.noise[p], tgt, 0.60 if headline else None,
                          err or None, more_hops=True)

    def pair_row(self, case, metric, direct, inside, noise, target, threshold, err, more_hops):
        """One row from interleaved (direct, inside) pairs: median of the per-pair ratios.
        A path with more hops than direct that comes out faster than direct by more than
        the run-to-run noise of direct itself means the baseline is not the network path
        (the client or server was the limit): the row says SUSPECT instead of a ratio."""
        ratios = [x / d for d, x in zip(direct, inside)]
        med = statistics.median(ratios)
        n = len(ratios)
        metric += ", %d pair%s%s" % (n, "s" if n != 1 else "", " (FEWER THAN 5)" if n < 5 else "")
        base = "%.0f MB/s" % (statistics.median(direct) / 1e6)
        agent = "%.0f MB/s" % (statistics.median(inside) / 1e6)
        spread = "%.2f–%.2f" % (min(ratios), max(ratios))
        note = "pairs direct/inside MB/s: %s; ratios %s" % (
            ", ".join("%.0f/%.0f" % (d / 1e6, x / 1e6) for d, x in zip(direct, inside)),
            "/".join("%.2f" % r for r in ratios))
        if err:
            note += "; " + " ".join(err.split())[-300:]
        nz = noise if noise is not None else 0.0
        if more_hops and med > 1.0 + nz:
            why = ("median ratio %.2f is above 1 + the noise between direct runs (%s): a path with "
                   "more hops cannot be faster than direct, so direct was limited by something other "
                   "than the path (client, server or load) and the ratio does not measure the hop"
                   % (med, fmt_noise(noise)))
            self.suspect.append("%s / %s: %s" % (case, metric, why))
            self.row(case, metric, base, agent, "SUSPECT (%s)" % spread, target, "suspect",
                     note + "; SUSPECT: " + why)
            return
        ratio = "%.2f (%s)" % (med, spread)
        if more_hops and med > 1.0:
            ratio = "%.2f ≈ 1 (%s)" % (med, spread)
            note += ("; above 1 by less than the noise between direct runs (%s): the hop's cost is "
                     "not measurable in this run" % fmt_noise(noise))
        met = "-" if threshold is None else yes(med >= threshold)
        self.row(case, metric, base, agent, ratio, target, met, note)

    def case_cpu(self):
        n = self.a.cpu_gib_quarters     # number of 256 MiB downloads in one sandbox
        moved = n * BIG / GiB
        # baseline: the client's own CPU directly
        mon = ProcMon(self.uid, self.host_netns); mon.start()
        rc, out, e = self.curl_big(False, n)
        mon.stop()
        base_cpu = mon.cpu(workload=True)["all"]
        base = "%.2f s/GiB (curl)" % (base_cpu / moved) if rc == 0 else "-"
        for h in HOPS:
            metric = "agentpen CPU s per GiB moved, hop %s (agentpen+pasta, both sides)" % h
            ok, err = self.agentpen_smoke(["true"], hop=h, allow=(BENCH_HOST,))
            if not ok:
                self.fail("cpu", metric, base, "report", err); continue
            # start-up and teardown alone, to subtract
            mon0 = ProcMon(self.uid, self.host_netns); mon0.start()
            self.run(self.ap(["true"], hop=h, allow=(BENCH_HOST,)), timeout=60)
            mon0.stop()
            idle = mon0.cpu(workload=False)
            mon = ProcMon(self.uid, self.host_netns); mon.start()
            rc, out, e = self.curl_big(True, n, hop=h)
            mon.stop()
            if rc != 0 or parse_speed(out) is None:
                self.fail("cpu", metric, base, "report", e or out or "exit %d" % rc); continue
            c = mon.cpu(workload=False)
            if not c["by_comm"]:
                self.fail("cpu", metric, base, "report", "no agentpen processes seen"); continue
            host = max(0.0, c["host"] - idle["host"]) / moved
            inside = max(0.0, c["inside"] - idle["inside"]) / moved
            tot = host + inside
            self.row("cpu", metric, base, "%.2f s/GiB" % tot,
                     "%.2f" % (tot / (base_cpu / moved)) if base_cpu else "-", "report", "-",
                     "host side (proxy, pasta) %.2f s/GiB, in-namespace helpers (forwarder) %.2f s/GiB; "
                     "by process: %s; start-up-only CPU subtracted (%.3f s host, %.3f s inside)"
                     % (host, inside, c["by_comm"], idle["host"], idle["inside"]))

    def tlsload(self, inside, args, timeout, hop=None):
        argv = ["/usr/bin/python3", "tlsload.py"] + args
        return self.run(self.ap(argv, hop=hop) if inside else argv, timeout)

    def case_connsetup(self):
        n = self.a.conn_n
        args = ["seq", "--host", "allowed.test", "--cafile", "ca.pem", "-n", str(n)]
        rc, out, e = self.tlsload(False, args, 600)
        b = last_json(out)
        if rc != 0 or not b or b["errors"]:
            self.fail("connsetup", "%d new-connection HTTPS GETs (baseline)" % n, "-", "added p50 ≤ 1 ms",
                      (b or {}).get("first_error") or e or out); return
        for h in HOPS:
            label = "%d new-connection HTTPS GETs, hop %s%s" % (n, h, " [default]" if h == DEFAULT_HOP else "")
            rc, out, e = self.tlsload(True, args, 600, hop=h)
            g = last_json(out)
            if rc != 0 or not g or g["errors"]:
                self.fail("connsetup", label + ": p50", "%.2f ms" % b["p50_ms"], "added ≤ 1 ms",
                          (g or {}).get("first_error") or e or out); continue
            for q, tgt in (("p50", 1.0), ("p99", 5.0)):
                bv, gv = b[q + "_ms"], g[q + "_ms"]
                self.row("connsetup", "%s: %s" % (label, q), "%.2f ms" % bv, "%.2f ms" % gv,
                         "+%.2f ms" % (gv - bv), "added ≤ %.0f ms" % tgt, yes(gv - bv <= tgt),
                         "p90 %.2f / %.2f ms, mean %.2f / %.2f ms, max %.2f / %.2f ms (baseline / agentpen)"
                         % (b["p90_ms"], g["p90_ms"], b["mean_ms"], g["mean_ms"], b["max_ms"], g["max_ms"])
                         if q == "p50" else "")

    # The switch agentpen reads for this case only (EventLog.benchDropAllowedVariable).
    DROP_ALLOWED = "AGENTPEN_BENCH_DROP_ALLOWED_EVENTS"

    def case_eventcost(self):
        """The cost of events on the allowed path: the connsetup load inside agentpen on the
        default hop, with the session's event recording as in every run (connection-allowed and
        tunnel-closed per connection: numbered, JSON-encoded, appended to events.jsonl, counted)
        and with the recording of allowed connections reduced to nothing (AGENTPEN_BENCH_DROP_ALLOWED_EVENTS=1,
        which agentpen announces on stderr), in interleaved pairs (order alternating) in one run.
        Ratio = median over pairs of p50 with events / p50 without."""
        n, pairs = self.a.conn_n, self.a.eventcost_pairs
        argv = ["/usr/bin/python3", "tlsload.py", "seq", "--host", "allowed.test", "--cafile", "ca.pem", "-n", str(n)]
        label = "%d new-connection HTTPS GETs, hop %s: with events / allowed ones not recorded" % (n, DEFAULT_HOP)
        runs = {True: [], False: []}
        cpu = {True: [], False: []}     # host-side agentpen CPU seconds per run (the proxy records the events)
        for i in range(pairs):
            for drop in ((False, True) if i % 2 == 0 else (True, False)):
                mon = ProcMon(self.uid, self.host_netns); mon.start()
                rc, out, e = self.run(self.ap(argv, hop=DEFAULT_HOP, env={self.DROP_ALLOWED: "1"} if drop else None), 600)
                mon.stop()
                cpu[drop].append(mon.cpu(workload=False)["host"])
                g = last_json(out)
                announced = (self.DROP_ALLOWED + "=1") in e
                if rc != 0 or not g or g["errors"] or announced != drop:
                    why = (g or {}).get("first_error") or ("the switch was %s" % ("ignored" if drop else "on unasked")
                                                           if announced != drop else (e or out))
                    self.fail("eventcost", label, "-", "≈ 1 (within noise)", why)
                    return
                runs[drop].append(g)
        for q in ("p50", "p99"):
            on = [g[q + "_ms"] for g in runs[False]]
            off = [g[q + "_ms"] for g in runs[True]]
            ratios = [a / b for a, b in zip(on, off)]
            med = statistics.median(ratios)
            # Noise: how much one run without events differs from the next.
            noise = run_noise(off)
            nz = noise if noise is not None else 0.0
            note = ("%d pairs; %s with/without events, ms: %s; ratios %s; noise between runs without events %s; "
                    "2 events per connection (connection-allowed, tunnel-closed)"
                    % (len(ratios), q, ", ".join("%.2f/%.2f" % (a, b) for a, b in zip(on, off)),
                       "/".join("%.3f" % r for r in ratios), fmt_noise(noise)))
            self.row("eventcost", "%s: %s, %d pairs" % (label, q, len(ratios)), "%.2f ms" % statistics.median(off),
                     "%.2f ms" % statistics.median(on), "%.3f (%.3f–%.3f)" % (med, min(ratios), max(ratios)),
                     "≈ 1 (within noise)", yes(med - 1.0 <= max(nz, 0.02)) if q == "p50" else "-", note)
        on, off = [x / n * 1e6 for x in cpu[False]], [x / n * 1e6 for x in cpu[True]]
        ratios = [a / b for a, b in zip(on, off) if b > 0]
        if ratios:
            self.row("eventcost", "agentpen host-side CPU per connection (proxy and events), with / without, %d pairs" % len(ratios),
                     "%.0f µs" % statistics.median(off), "%.0f µs" % statistics.median(on),
                     "%.2f (%.2f–%.2f)" % (statistics.median(ratios), min(ratios), max(ratios)), "report", "-",
                     "with/without µs per connection: %s; /proc ticks are 10 ms, so one run's figure is ±%.0f µs"
                     % (", ".join("%.0f/%.0f" % ab for ab in zip(on, off)), 1e4 / n))

    def case_concurrency(self):
        m = self.a.conc_m
        args = ["conc", "--host", "allowed.test", "--cafile", "ca.pem", "-m", str(m), "--hold", str(self.a.hold)]
        rc, out, e = self.tlsload(False, args, 300)
        b = last_json(out)
        if not b:
            self.fail("concurrency", "%d tunnels" % m, "-", "0 errors", e or out); return
        # agentpen: stream the client's output to sample RSS at BEFORE and IDLE
        mon = ProcMon(self.uid, self.host_netns); mon.start()
        p = subprocess.Popen(self.user_cmd(self.ap(["/usr/bin/python3", "tlsload.py"] + args, hop=CONC_HOP)), cwd=self.proj,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killer = threading.Timer(300, p.kill); killer.start()
        # Drain stderr meanwhile: agentpen reports every blocked connection there, and
        # a full pipe would stall it (and the whole case) until the timer fires.
        errbuf = []
        drain = threading.Thread(target=lambda: errbuf.append(p.stderr.read()), daemon=True); drain.start()
        before = idle = None; opened = 0; lines = []
        for line in p.stdout:
            lines.append(line)
            if line.startswith("BEFORE"):
                time.sleep(0.3); before = mon.rss_host()
            elif line.startswith("IDLE"):
                opened = int(line.split("open=")[1].split()[0])
                time.sleep(1.0); idle = mon.rss_host()
        p.wait(); killer.cancel(); drain.join(10); mon.stop()
        err = "".join(errbuf)
        g = last_json("".join(lines))
        if not g:
            self.fail("concurrency", "%d tunnels: errors" % m, "%d" % b["errors"], "0 errors",
                      err.strip() or "".join(lines) or "exit %d" % p.returncode); return
        capped = [l for l in err.splitlines() if "concurrent connections" in l and "blocked (" in l]
        self.row("concurrency", "%d concurrent tunnels, then a GET on each: errors" % m, "%d" % b["errors"],
                 "%d" % g["errors"], "-", "0", yes(g["errors"] == 0),
                 "opened %d/%d, open %.2fs/%.2fs, use %.2fs/%.2fs (baseline/agentpen)%s%s" % (
                     b["opened"], g["opened"], b["open_seconds"], g["open_seconds"], b["use_seconds"], g["use_seconds"],
                     ("; first error: " + g["first_error"]) if g.get("first_error") else "",
                     ("; agentpen refused %d connection(s): %s" % (len(capped), capped[0].split(": ", 1)[-1].strip()))
                     if capped else ""))
        if before is not None and before[0] == 0:
            self.fail("concurrency", "proxy RSS per idle tunnel", "-", "≤ 64 KiB",
                      "no agentpen processes found in apw-host's network namespace")
        elif before is not None and idle is not None and opened > 0:
            per = (idle[0] - before[0]) / opened / 1024.0
            self.row("concurrency", "proxy RSS per idle tunnel (host side)", "-", "%.1f KiB" % per, "-",
                     "≤ 64 KiB", yes(per <= 64),
                     "host-side RSS %.1f MiB with none open, %.1f MiB with %d open (%s)" % (
                         before[0] / 2**20, idle[0] / 2**20, opened, idle[1]))
        else:
            self.fail("concurrency", "proxy RSS per idle tunnel", "-", "≤ 64 KiB",
                      "no RSS samples (markers: before=%s idle=%s opened=%d)" % (before is not None, idle is not None, opened))

    SYSCALL_SCRIPT = r"""
import ctypes, errno, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
x86 = os.uname().machine == "x86_64"
nr = {"getppid": 110 if x86 else 173, "keyctl": 250 if x86 else 219}[sys.argv[1]]
n = int(sys.argv[2])
call = libc.syscall
a, b, c, d = ctypes.c_long(nr), ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(0)
t = time.perf_counter()
for i in range(n):
    call(a, b, c, d)
print("ns=%.0f" % ((time.perf_counter() - t) * 1e9 / n))
"""

    def case_syscalls(self):
        """An allowed call costs the same inside (it never reaches the notifying
        filter); a refused one is a round trip to agentpen's listener."""
        script = os.path.join(self.proj, "syscalls.py")
        with open(script, "w") as f:
            f.write(self.SYSCALL_SCRIPT)
        os.chmod(script, 0o644)
        for name, n, target in (("getppid", 300000, "≈ 1"), ("keyctl", 20000, "report")):
            metric = "%s ns per call (%s)" % (name, "allowed" if name == "getppid" else "refused, reported")
            got = {}
            for where in ("direct", "inside"):
                argv = ["/usr/bin/python3", script, name, str(n)]
                rc, out, err = self.run(self.ap(argv, ()) if where == "inside" else argv, timeout=120)
                vals = [l[3:] for l in out.splitlines() if l.startswith("ns=")]
                if rc != 0 or not vals:
                    self.fail("syscalls", metric, "-", target, err or out or "exit %d" % rc); break
                got[where] = float(vals[0])
            if len(got) == 2:
                self.row("syscalls", metric, "%.0f ns" % got["direct"], "%.0f ns" % got["inside"],
                         "%.2f" % (got["inside"] / got["direct"]), target, "-",
                         "python ctypes loop of %d calls; the direct keyctl runs, the inside one is refused" % n
                         if name == "keyctl" else "python ctypes loop of %d calls" % n)

    def make_tree(self, path, dirs, files_per_dir):
        """A project of `dirs` directories (100 per level) holding `files_per_dir`
        files each, plus a small .git, owned by the bench user."""
        subprocess.run(["rm", "-rf", path], check=True)
        os.makedirs(path)
        for d in range(dirs):
            dp = os.path.join(path, "d%03d" % (d // 100), "s%03d" % (d % 100))
            os.makedirs(dp)
            for f in range(files_per_dir):
                with open(os.path.join(dp, "f%d.txt" % f), "w") as fh:
                    fh.write("x")
        subprocess.run(["git", "init", "-q", path], check=True)
        subprocess.run(["chown", "-R", "%d:%d" % (self.uid, pwd.getpwuid(self.uid).pw_gid), path], check=True)
        os.chmod(path, 0o755)

    def case_audit(self):
        """Start-up and end-of-run cost on a 100 000-file, 10 000-directory project
        against an empty one, measured in the same run (warm cache), offline runs."""
        runs = self.a.audit_runs
        big, empty = self.proj + "-audit-big", self.proj + "-audit-empty"
        try:
            self.make_tree(big, 10000, 10)
            self.make_tree(empty, 0, 0)
            res = {}
            for name, proj in (("empty", empty), ("big", big)):
                rc, out, e = self.run(["/usr/bin/python3", os.path.join(self.proj, "auditcost.py"), self.a.agentpen,
                                       proj, str(runs)], timeout=runs * 20 + 120)
                j = last_json(out)
                if rc != 0 or not j or "error" in j:
                    self.fail("audit", "end of run, 100k-file project", "-", "added ≤ 200 ms",
                              (j or {}).get("error") or e or out)
                    return
                res[name] = j
            for q, key, tgt in (("start-up", "start_ms", 10.0), ("end of run (audit)", "end_ms", 200.0)):
                e50, b50 = statistics.median(res["empty"][key]), statistics.median(res["big"][key])
                self.row("audit", "%s, 100 000 files in 10 000 dirs vs empty project (median of %d)" % (q, runs),
                         "%.1f ms" % e50, "%.1f ms" % b50, "%+.1f ms" % (b50 - e50), "added ≤ %.0f ms" % tgt,
                         yes(b50 - e50 <= tgt),
                         "empty p95 %.1f ms, big p95 %.1f ms" % (pct(res["empty"][key], 95), pct(res["big"][key], 95)))
        finally:
            subprocess.run(["rm", "-rf", big, empty])

    def case_hops(self):
        """hops.sh runs each path right after a direct run (HTTP/1.1 to bench.test), pair by pair."""
        rc, out, e = self.run(["bash", "hops.sh", self.proj, "ca.pem", str(self.a.bulk_pairs)] + self.a.curl_opt,
                              timeout=600)
        pend, res, bad = {}, {}, []
        for line in out.splitlines():
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            ok = kv.get("rc") == "0" and kv.get("size") == str(BIG)
            if kv.get("hop") and not ok:
                bad.append(line.strip())
            if kv.get("hop") == "direct":
                pend[kv.get("for")] = float(kv["speed"]) if ok else None
            elif kv.get("hop") and ok and pend.get(kv["hop"]):
                d = pend.pop(kv["hop"])
                r = res.setdefault(kv["hop"], ([], []))
                r[0].append(d); r[1].append(float(kv["speed"]))
        seq = [d for v in res.values() for d in v[0]]
        noise = run_noise(seq)
        if bad:
            self.notes.append("hops: %d run(s) failed and left their pair out; first: %s" % (len(bad), bad[0][:200]))
        for hop, what in (("relay", "host relay only (no namespace)"),
                          ("tap", "netns → gateway → pasta tap → host relay"),
                          ("splice", "netns loopback → pasta -T splice → host relay")):
            if hop not in res:
                self.fail("hops", what, "-", "info", e or out or "no result"); continue
            self.pair_row("hops", what + ", HTTP/1.1", res[hop][0], res[hop][1], noise,
                          "info (no agentpen)", None, None, more_hops=True)

    def case_gitssh(self):
        """git clone over ssh of a 50 MiB repository (one incompressible blob) from the
        world's sshd (git.test:2222), directly and under agentpen with --allow-private
        git.test:2222 on each hop that carries NAME:PORT; interleaved pairs, wall time.
        Every clone is checked after it ran (exit status, the commit the server has,
        the blob's size); one that fails makes the hop's row FAILED, never a ratio."""
        state = os.environ.get("APW_STATE", "/run/apw")
        repo = os.path.join(state, "ssh", "big.git")
        size = 50 << 20
        def root(cmd):
            return subprocess.run(cmd, shell=True, check=True, timeout=300, capture_output=True, text=True).stdout.strip()
        if not os.path.exists(os.path.join(repo, "HEAD")):
            src = os.path.join(state, "ssh", "big-src")
            root("rm -rf %s %s && git -c init.defaultBranch=main init -q %s" % (src, repo, src))
            root("head -c %d /dev/urandom > %s/blob && git -C %s add blob && git -C %s -c user.email=b@apw.test "
                 "-c user.name=bench commit -q -m big && git clone -q --bare %s %s && rm -rf %s && chown -R apw-git: %s"
                 % (size, src, src, src, src, repo, src, repo))
        head = root("git --git-dir=%s rev-parse HEAD" % repo)
        blob = root("git --git-dir=%s cat-file -s HEAD:blob" % repo)
        if blob != str(size):
            self.fail("gitssh", "git clone over ssh, 50 MiB", "-", "≥ 0.80",
                      "the server's repository %s holds a blob of %s bytes, not %d" % (repo, blob, size))
            return
        for f, mode in (("client_ed25519", 0o600), ("known_hosts", 0o644)):
            dst = os.path.join(self.proj, f)
            with open(os.path.join(state, "ssh", f)) as i, open(dst, "w") as o:
                o.write(i.read())
            os.chown(dst, self.uid, -1); os.chmod(dst, mode)
        # Both sides run the very same command and do the very same work. What used to
        # differ (notes.md, "gitssh: why inside was faster than direct"): with no
        # user.email, git clone builds a reflog identity from the host name and asks the
        # resolver for its FQDN; in netns apw-host that is 198.18.0.1:53, where nothing
        # answers, so every direct clone waited 2 x 5 s, while inside agentpen's hosts
        # file names its host name and the answer is immediate. So: an explicit identity
        # (no host-name lookup on either side) and `ssh -F none` (neither HOME's nor the
        # sandbox's ~/.ssh decides anything). The clone target is the same directory of
        # the same file system on both sides (checked below).
        ssh = ("ssh -F none -i %s/client_ed25519 -o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes "
               "-o BatchMode=yes -o IdentitiesOnly=yes" % (self.proj, self.proj))
        clone_dir = os.path.join(self.proj, "clone")
        perf = os.path.join(self.proj, "gitssh-perf.txt")
        clone = ["/bin/sh", "-c", "rm -rf clone && GIT_TRACE_PERFORMANCE=%s GIT_SSH_COMMAND='%s' "
                 "git -c user.name=bench -c user.email=bench@apw.test clone -q ssh://apw-git@git.test:2222%s clone"
                 % (perf, ssh, repo)]
        check = ["/bin/sh", "-c", "git -C clone rev-parse HEAD && git -C clone cat-file -s HEAD:blob && stat -f -c %T clone"]
        hops = [h for h in HOPS if h != "splice"]
        phases = {}   # "baseline" (no agentpen) or a hop -> [(index-pack s, whole clone s as git saw it)]
        fstypes = {}

        def timed(argv, what, where):
            """Seconds for one clone, or raises with why it is not a real clone."""
            subprocess.run(["rm", "-rf", clone_dir, perf], check=True)
            t0 = time.monotonic()
            rc, out, err = self.run(argv, timeout=300)
            t = time.monotonic() - t0
            if rc != 0:
                raise RuntimeError("%s: the clone failed (exit %d): %s" % (what, rc, " ".join((err or out).split())[-300:]))
            rc, out, err = self.run(check, timeout=60)
            got = out.split()
            if rc != 0 or got[:2] != [head, str(size)] or len(got) != 3:
                raise RuntimeError("%s: the clone is not the server's repository (HEAD and blob size %s, expected %s %d): %s"
                                   % (what, got, head, size, " ".join(err.split())[-200:]))
            fstypes.setdefault(where, set()).add(got[2])
            # GIT_TRACE_PERFORMANCE: index-pack (receiving and indexing the pack: the part
            # that crosses the network) and the whole clone command.
            ip = whole = None
            try:
                with open(perf) as fh:
                    for line in fh:
                        m = re.search(r"performance: ([0-9.]+) s: git command: (.*)", line)
                        if m and " index-pack " in m.group(2):
                            ip = float(m.group(1))
                        elif m and " clone " in m.group(2):
                            whole = float(m.group(1))
            except OSError:
                pass
            if ip is not None and whole is not None:
                phases.setdefault(where, []).append((ip, whole))
            return t

        res = {h: ([], []) for h in hops}
        errs = {}
        try:
            timed(clone, "warm-up clone (direct)", "warm-up")   # page cache, sshd
        except RuntimeError as e:
            for h in hops:
                self.fail("gitssh", "git clone over ssh, 50 MiB, hop %s" % h, "-", "≥ 0.80", e)
            return
        for i in range(self.a.bulk_pairs):
            for h in (hops if i % 2 == 0 else hops[::-1]):
                if h in errs:
                    continue
                try:
                    d = timed(clone, "direct clone, pair %d" % (i + 1), "baseline")
                    x = timed(self.ap(clone, allow=("git.test:2222",), hop=h), "clone inside, hop %s, pair %d" % (h, i + 1), h)
                except RuntimeError as e:
                    errs[h] = str(e)
                    continue
                res[h][0].append(size / d); res[h][1].append(size / x)
        noise = run_noise([d for v in res.values() for d in v[0]])
        for where in ["baseline"] + hops:
            if phases.get(where):
                self.notes.append("gitssh %s: GIT_TRACE_PERFORMANCE medians over %d clones: index-pack (pack received "
                                  "and indexed) %.2f s, whole git clone %.2f s; clone target file system %s"
                                  % ("direct, no agentpen" if where == "baseline" else "inside, hop " + where, len(phases[where]), statistics.median(p[0] for p in phases[where]),
                                     statistics.median(p[1] for p in phases[where]),
                                     "/".join(sorted(fstypes.get(where, ())))))
        for h in hops:
            if h not in errs and fstypes.get(h) and fstypes.get(h) != fstypes.get("baseline"):
                # Not the same work: a clone onto another file system type measures the disk.
                errs[h] = ("the clone target is %s inside but %s direct: not the same work"
                           % ("/".join(sorted(fstypes[h])), "/".join(sorted(fstypes.get("baseline", ())))))
        for h in hops:
            metric = "git clone over ssh, 50 MiB, hop %s%s" % (h, " [default]" if h == DEFAULT_HOP else "")
            if h in errs or not res[h][0]:
                # One failed clone and the hop has no figure: a ratio over the pairs that
                # happened to work would hide it.
                self.fail("gitssh", metric, "-", "≥ 0.80", errs.get(h, "no result"))
                continue
            self.pair_row("gitssh", metric, res[h][0], res[h][1], noise, "≥ 0.80", 0.80, None, more_hops=True)

    # ---- output ----------------------------------------------------------------
    def table(self):
        hdr = ["case", "metric", "baseline", "agentpen", "ratio/added", "target", "met?"]
        rows = [[r["case"], r["metric"], r["base"], r["agent"], r["ratio"], r["target"], r["met"]] for r in self.rows]
        return hdr, rows


class ProcMon:
    """Polls /proc for processes of one uid: CPU ticks (last seen per pid) and RSS.
    'host' = in apw-host's network namespace (agentpen, its proxy, pasta);
    'inside' = any other namespace (agentpen's in-sandbox helpers, bwrap)."""

    def __init__(self, uid, host_netns, interval=0.02):
        self.uid, self.host_netns, self.interval = uid, host_netns, interval
        self.first, self.last, self.info = {}, {}, {}
        self._stop = threading.Event()

    def scan(self):
        seen = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.stat("/proc/" + d).st_uid != self.uid:
                    continue
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                comm = s[s.index("(") + 1:s.rindex(")")]
                fl = s[s.rindex(")") + 2:].split()
                ticks = int(fl[11]) + int(fl[12])
                rss = int(fl[21]) * PAGE
                ns = os.readlink("/proc/%s/ns/net" % d)
                start = fl[19]
            except (OSError, ValueError, IndexError):
                continue
            key = (int(d), start)
            seen[key] = (comm, ticks, rss, ns)
        return seen

    def _loop(self):
        end = time.monotonic() + 900
        while not self._stop.is_set() and time.monotonic() < end:
            for k, (comm, ticks, rss, ns) in self.scan().items():
                self.last[k] = ticks
                self.info[k] = (comm, ns)
            time.sleep(self.interval)

    def start(self):
        for k, (comm, ticks, rss, ns) in self.scan().items():
            self.first[k] = ticks
            self.info[k] = (comm, ns)
        self.t = threading.Thread(target=self._loop, daemon=True); self.t.start()

    def stop(self):
        self._stop.set(); self.t.join(5)

    def cpu(self, workload):
        out = {"host": 0.0, "inside": 0.0, "all": 0.0}
        by = {}
        for k, t in self.last.items():
            comm, ns = self.info[k]
            if (comm in WORKLOAD) != workload:
                continue
            sec = (t - self.first.get(k, 0)) / CLK
            side = "host" if ns == self.host_netns else "inside"
            out[side] += sec; out["all"] += sec
            by["%s/%s" % (comm, side)] = by.get("%s/%s" % (comm, side), 0.0) + sec
        out["by_comm"] = ", ".join("%s %.2fs" % kv for kv in sorted(by.items()))
        return out

    def rss_host(self):
        tot, names = 0, {}
        for (pid, _), (comm, ticks, rss, ns) in self.scan().items():
            if comm in WORKLOAD or ns != self.host_netns:
                continue
            tot += rss; names[comm] = names.get(comm, 0) + rss
        return tot, ", ".join("%s %.1f MiB" % (c, r / 2**20) for c, r in sorted(names.items()))


def startup_stages_from_perf(text, agentpen):
    """Stage boundaries per run from `perf script -F pid,tid,time,event,trace` of the scheduler
    tracepoints (see Bench.startup_stages). A run starts where the bench user's `env` execs
    `agentpen`; its tree is every task forked from it. Marks (ms after that exec): the namespace
    helper's exec (agentpen again, networked runs only), bubblewrap's, the exec helper's
    (/run/agentpen/agentpen: the sandbox is built), the agent's (`true`), the nft runs' exits, and
    agentpen's last exit (the tracepoint fires before the kernel closes the process's descriptors)
    and its reaping (the loop's shell forks again). Returns [(stage, [ms per run])]."""
    ev = []
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)/(\d+)\s+([\d.]+):\s+sched:(\w+):\s+(.*)", line)
        if m:
            ev.append((float(m.group(3)) * 1000.0, int(m.group(1)), int(m.group(2)), m.group(4), m.group(5)))
    kids, parent, forks, last_exec, roots = {}, {}, [], {}, []
    for t, pid, tid, e, tr in ev:
        if e == "sched_process_fork":
            f = re.search(r"pid=(\d+) child_comm=.* child_pid=(\d+)", tr)
            if f:
                kids.setdefault(int(f.group(1)), []).append(int(f.group(2)))
                parent[int(f.group(2))] = int(f.group(1))
                forks.append((t, int(f.group(1))))
        elif e == "sched_process_exec":
            f = re.search(r"filename=(\S+)", tr).group(1)
            if f == agentpen and last_exec.get(tid, "").endswith("/env"):
                roots.append((t, tid))
            last_exec[tid] = f
    out = {}
    for t0, root in roots:
        tree, todo = {root}, [root]
        while todo:
            for c in kids.get(todo.pop(), []):
                if c not in tree:
                    tree.add(c)
                    todo.append(c)
        execs, nft_exits, end = [], [], None
        for t, pid, tid, e, tr in ev:
            if t < t0 or tid not in tree:
                continue
            if e == "sched_process_exec":
                execs.append((t - t0, re.search(r"filename=(\S+)", tr).group(1), pid))
            elif e == "sched_process_exit" and "group_dead=true" in tr:
                comm = re.search(r"comm=(\S+)", tr).group(1)
                if comm == "nft":
                    nft_exits.append(t - t0)
                if pid == root:
                    end = t - t0
        def first(pred):
            return next((x for x in execs if pred(x)), None)
        helper = first(lambda x: x[1] == agentpen and x[2] != root)
        bwrap = first(lambda x: x[1].endswith("/bwrap"))
        inner = first(lambda x: x[1] == "/run/agentpen/agentpen")
        agent = first(lambda x: x[1].endswith("/true") and inner is not None and x[0] >= inner[0])
        # Reaped: the loop's shell (the parent of the run's first task) forks again only
        # once wait() has returned, after the kernel has closed every descriptor of the run.
        reaped = next((t - t0 for t, ptid in forks if ptid == parent.get(root) and t > t0 + (end or 0)), None)
        if not (bwrap and inner and agent and end is not None and reaped is not None):
            continue
        marks = []
        if helper:
            marks += [("agentpen start → namespace helper exec", helper[0]),
                      ("namespace helper → bubblewrap exec", bwrap[0] - helper[0])]
        else:
            marks.append(("agentpen start → bubblewrap exec", bwrap[0]))
        marks += [("bubblewrap set-up (→ exec helper exec)", inner[0] - bwrap[0]),
                  ("exec helper → the agent's exec", agent[0] - inner[0]),
                  ("the agent's exec → agentpen's last exit", end - agent[0]),
                  ("agentpen's last exit → reaped (descriptors closed)", reaped - end)]
        if helper and len(nft_exits) >= 2:
            marks.append(("firewall loaded and read back (→ 2nd nft exit; parallel to bubblewrap)", nft_exits[1]))
        marks += [("the agent's exec (total to the agent)", agent[0]), ("total (to reaped)", reaped)]
        for name, v in marks:
            out.setdefault(name, []).append(v)
    return list(out.items())


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def pct(xs, p):
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def yes(b):
    return "yes" if b else "NO"


def fmt_list(xs):
    return "/".join("%.0f" % (x / 1e6) for x in xs)


def run_noise(seq):
    """Noise between runs: the median of |d[k+1]/d[k] - 1| over successive direct runs
    (how much one direct run differs from the next on this machine right now)."""
    if len(seq) < 2:
        return None
    return statistics.median(abs(b / a - 1.0) for a, b in zip(seq, seq[1:]))


def fmt_noise(n):
    return "unknown (fewer than 2 direct runs)" if n is None else "±%.2f" % n


def parse_speed(out):
    try:
        sp, size, code = out.strip().splitlines()[-1].split(",")
        return float(sp) if int(size) == BIG and code == "200" else None
    except (ValueError, IndexError):
        return None


def last_json(out):
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"


def machine():
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    cpu = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo") or platform.machine()
    return [("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ("kernel", sh("uname -r")), ("arch", platform.machine()), ("cpus", "%s × %s" % (sh("nproc"), cpu)),
            ("memory", mem), ("os", sh(". /etc/os-release; echo $PRETTY_NAME")),
            ("pasta", sh("dpkg-query -W -f '${Version}' passt 2>/dev/null") or "?"),
            ("bwrap", sh("bwrap --version")), ("curl", sh("curl --version | head -1 | cut -d' ' -f1-2")),
            ("openssl", sh("openssl version")), ("nginx", sh("nginx -v 2>&1 | cut -d/ -f2")),
            ("python", sh("/usr/bin/python3 --version")), ("hyperfine", sh("hyperfine --version"))]


def render_md(b, hdr, rows, mach, agentpen_desc):
    L = ["# agentpen benchmark results", "",
         "Generated by `make bench` (bench/run.sh). Baseline and agentpen measured in the same run "
         "on the same machine, as an unprivileged user inside the test world (tests/world); "
         "no outside address is contacted.", "",
         "## Machine", ""]
    L += ["- %s: %s" % kv for kv in mach]
    L += ["- agentpen: %s" % agentpen_desc, "", "## Results", "",
          "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        L.append("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |")
    L += ["", "## Notes", ""]
    for r in b.rows:
        if r["note"]:
            L.append("- %s / %s: %s" % (r["case"], r["metric"], r["note"]))
    L += ["- " + n for n in b.notes]
    L += ["- ratio for bulk and hops = the median over interleaved pairs of (inside / direct), each pair a direct "
          "run right before the inside run, with the pairs' range in brackets; a path faster than direct by more "
          "than the noise between successive direct runs is marked SUSPECT instead of given a ratio; "
          "for connsetup the added latency; for eventcost the median over interleaved pairs of "
          "(p50 with the session's events / p50 with allowed connections not recorded); "
          "startup ratios compare with `true` and with a bare bwrap sandbox (all namespaces).",
          "- CPU: utime+stime of the bench user's non-workload processes, sampled from /proc every 20 ms; "
          "host side = agentpen's processes in the host network namespace plus pasta.",
          "- Memory: summed RSS of the same host-side processes with the tunnels idle minus with none open, "
          "divided by the number of open tunnels."]
    if b.suspect:
        L += ["", "## SUSPECT (the baseline did not hold)", ""] + ["- " + x for x in b.suspect]
    if b.failed:
        L += ["", "## FAILED", ""] + ["- " + f for f in b.failed]
    return "\n".join(L) + "\n"


def print_table(hdr, rows):
    w = [max(len(str(r[i])) for r in [hdr] + rows) for i in range(len(hdr))]
    w[1] = min(w[1], 60)
    fmt = "  ".join("%%-%ds" % x for x in w)
    print(fmt % tuple(hdr))
    print("  ".join("-" * x for x in w))
    for r in rows:
        print(fmt % tuple(str(x)[:60] if i == 1 else x for i, x in enumerate(r)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agentpen", required=True)
    ap.add_argument("--agentpen-desc", default="")
    ap.add_argument("--proj", required=True)
    ap.add_argument("--user", default="apw-test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", default="startup,bulk,connsetup,eventcost,concurrency,cpu,hops,gitssh,audit,syscalls")
    ap.add_argument("--startup-runs", type=int, default=50)
    ap.add_argument("--bulk-pairs", type=int, default=7,
                    help="(direct, inside) pairs per bulk figure and per hop path; 5 or more")
    ap.add_argument("--curl-opt", action="append", default=[],
                    help="extra curl option for the bulk, cpu and hops downloads (repeatable)")
    ap.add_argument("--cpu-gib-quarters", type=int, default=4)
    ap.add_argument("--conn-n", type=int, default=1000)
    ap.add_argument("--eventcost-pairs", type=int, default=5,
                    help="(with events, without) pairs of the connsetup load in the eventcost case")
    ap.add_argument("--conc-m", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--audit-runs", type=int, default=20)
    a = ap.parse_args()
    b = Bench(a)
    cases = a.cases.split(",")
    for c in cases:
        fn = getattr(b, "case_" + c, None)
        if not fn:
            print("unknown case %s" % c, file=sys.stderr); sys.exit(2)
        t0 = time.monotonic()
        load0 = loadavg()
        print("== %s" % c, file=sys.stderr, flush=True)
        try:
            fn()
        except Exception as e:
            b.fail(c, "(harness)", "-", "-", repr(e))
        b.notes.append("%s: %.0f s; load average %s at start, %s at end (2 CPUs: above ~2 means something "
                       "else competed for the CPUs)" % (c, time.monotonic() - t0, load0, loadavg()))
        print("   %.1fs" % (time.monotonic() - t0), file=sys.stderr, flush=True)
    hdr, rows = b.table()
    print()
    print_table(hdr, rows)
    if b.notes:
        print(); [print("note: " + n) for n in b.notes]
    with open(a.out, "w") as f:
        f.write(render_md(b, hdr, rows, machine(), a.agentpen_desc or a.agentpen))
    if b.suspect:
        print("\n%d SUSPECT (baseline did not hold):" % len(b.suspect)); [print("  " + x) for x in b.suspect]
    print("\nwrote %s" % a.out)
    if b.failed:
        print("\n%d FAILED:" % len(b.failed)); [print("  " + x) for x in b.failed]
        sys.exit(1)


if __name__ == "__main__":
    main()
