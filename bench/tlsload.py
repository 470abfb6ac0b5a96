#!/usr/bin/python3
"""TLS load client for the agentpen benchmark (stdlib only).

  tlsload.py seq  --host H [--port 443] [--address IP] --cafile CA -n 1000
      N sequential HTTPS GETs, each on a new TCP+TLS connection; reports latency
      percentiles of the whole request (connect + handshake + GET + response).
  tlsload.py conc --host H [--port 443] --cafile CA -m 1000 [--hold 5]
      Opens M TLS connections and keeps them idle (prints "BEFORE" before opening,
      "IDLE open=K errors=E" once all are open), waits --hold seconds, then sends one
      GET on every connection at once and checks every response.
Prints one JSON object on the last line. The name is resolved once (name resolution
is not connection setup). Exit status 0 if no errors.
"""
import argparse, json, resource, socket, ssl, sys, threading, time


def ctx_for(a):
    c = ssl.create_default_context(cafile=a.cafile)
    c.check_hostname = True
    return c


def resolve(a):
    ai = socket.getaddrinfo(a.address or a.host, a.port, type=socket.SOCK_STREAM)
    return ai[0][0], ai[0][4]


def request(s, host, path):
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsload\r\n\r\n" % (path, host)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise IOError("connection closed before headers")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    status = head.split(b" ", 2)[1]
    clen = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    if clen is None:
        raise IOError("no content-length")
    while len(body) < clen:
        d = s.recv(65536)
        if not d:
            raise IOError("short body")
        body += d
    if status != b"200":
        raise IOError("status %s" % status.decode())
    return body


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def seq(a):
    ctx = ctx_for(a)
    fam, addr = resolve(a)
    lat, errors, first_err = [], 0, None
    want = ("hello from %s" % a.host).encode()
    deadline = time.monotonic() + a.max_seconds
    for i in range(a.n):
        if time.monotonic() > deadline:
            errors += a.n - i; first_err = first_err or "time limit"; break
        t0 = time.perf_counter()
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as raw:
                raw.settimeout(a.timeout)
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                raw.connect(addr)
                with ctx.wrap_socket(raw, server_hostname=a.host) as s:
                    body = request(s, a.host, a.path)
            if a.path == "/hello" and want not in body:
                raise IOError("unexpected body %r" % body[:60])
            lat.append((time.perf_counter() - t0) * 1000.0)
        except Exception as e:
            errors += 1; first_err = first_err or repr(e)
    return {"mode": "seq", "n": a.n, "ok": len(lat), "errors": errors, "first_error": first_err,
            "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
            "mean_ms": (sum(lat) / len(lat)) if lat else None, "max_ms": max(lat) if lat else None}


def conc(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want_fd = a.m + 256
    if soft < want_fd:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want_fd, soft)), hard))
    threading.stack_size(256 * 1024)
    ctx = ctx_for(a)
    fam, addr = resolve(a)
    gate = threading.BoundedSemaphore(a.open_parallel)
    go = threading.Event()
    lock = threading.Lock()
    st = {"opened": 0, "open_err": 0, "req_ok": 0, "req_err": 0, "first_error": None}
    opened_all = threading.Event()
    want = ("hello from %s" % a.host).encode()

    def bump(k, err=None):
        with lock:
            st[k] += 1
            if err and not st["first_error"]:
                st["first_error"] = err
            if st["opened"] + st["open_err"] >= a.m:
                opened_all.set()

    def worker():
        s = None
        try:
            with gate:
                raw = socket.socket(fam, socket.SOCK_STREAM)
                raw.settimeout(a.timeout)
                raw.connect(addr)
                s = ctx.wrap_socket(raw, server_hostname=a.host)
        except Exception as e:
            bump("open_err", "open: " + repr(e))
            if s: s.close()
            return
        bump("opened")
        try:
            go.wait(a.hold + a.timeout * 4 + 60)
            s.settimeout(a.timeout)
            body = request(s, a.host, "/hello")
            if want not in body:
                raise IOError("unexpected body %r" % body[:60])
            bump("req_ok")
        except Exception as e:
            bump("req_err", "request: " + repr(e))
        finally:
            s.close()

    print("BEFORE m=%d" % a.m, flush=True)
    time.sleep(a.settle)
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.m)]
    for t in threads:
        t.start()
    opened_all.wait(a.timeout * (a.m / a.open_parallel + 2) + 30)
    t_open = time.monotonic() - t0
    print("IDLE open=%d errors=%d" % (st["opened"], st["open_err"]), flush=True)
    time.sleep(a.hold)
    t1 = time.monotonic()
    go.set()
    end = time.monotonic() + a.timeout * 2 + 30
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    t_use = time.monotonic() - t1
    errors = st["open_err"] + st["req_err"] + (st["opened"] - st["req_ok"] - st["req_err"])
    return {"mode": "conc", "m": a.m, "opened": st["opened"], "open_errors": st["open_err"],
            "requests_ok": st["req_ok"], "request_errors": st["req_err"], "errors": errors,
            "first_error": st["first_error"], "open_seconds": round(t_open, 3),
            "use_seconds": round(t_use, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seq", "conc"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--address", help="connect here instead of resolving --host (SNI and Host stay --host)")
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-m", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--open-parallel", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    a = ap.parse_args()
    r = seq(a) if a.mode == "seq" else conc(a)
    print(json.dumps(r), flush=True)
    sys.exit(0 if r["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
