#!/usr/bin/python3
"""An HTTP CONNECT proxy for the agentpen test world ("a corporate proxy"; runs as
root inside netns apw-srv, on 198.18.0.1:3128).

It requires Proxy-Authorization: Basic with the one user and password it was
given, resolves the CONNECT target itself from a hosts file (the world's names),
and logs every request it got, one line each, flushed:

  t=… ev=connect src=A sport=P target=NAME:PORT auth=ok|bad|none status=200|407|400|502

(never the credentials themselves). With the right credentials and a known name
it answers 200 and relays bytes both ways; wrong or missing credentials get 407,
an unknown name 502, anything that is not CONNECT 400.
"""
import argparse, base64, os, signal, socket, threading, time

lock = threading.Lock()
logf = None


def log(**kv):
    line = "t=%.6f " % time.time() + " ".join("%s=%s" % (k, v) for k, v in kv.items()) + "\n"
    with lock:
        logf.write(line)
        logf.flush()


def clean(b):
    """The log shows what a client sent, printable ASCII only, no spaces."""
    return "".join(chr(c) if 0x21 <= c < 0x7f else "?" for c in b[:200]) or "-"


def read_hosts(path):
    names = {}
    with open(path) as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            for n in parts[1:]:
                names.setdefault(n.lower(), parts[0])
    return names


def pump(src, dst):
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            dst.sendall(d)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


slots = threading.BoundedSemaphore(128)


def serve(c, a, args, names):
    up = None
    try:
        c.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            d = c.recv(4096)
            if not d:
                return
            head += d
        header, _, rest = head.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        words = lines[0].split(b" ")
        auth = "none"
        for h in lines[1:]:
            k, _, v = h.partition(b":")
            if k.strip().lower() == b"proxy-authorization":
                auth = "ok" if v.strip() == args.expected else "bad"
        target = clean(words[1]) if len(words) == 3 else clean(lines[0])

        def reply(status, text, extra=b""):
            log(ev="connect", src=a[0], sport=a[1], target=target, auth=auth, status=status)
            c.sendall(b"HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\n\r\n" % (status, text, extra))

        if len(words) != 3 or words[0] != b"CONNECT" or not words[2].startswith(b"HTTP/1."):
            return reply(400, b"Bad Request")
        if auth != "ok":
            return reply(407, b"Proxy Authentication Required", b"Proxy-Authenticate: Basic realm=\"apw\"\r\n")
        host, _, port = words[1].decode("ascii", "replace").rpartition(":")
        addr = names.get(host.lower())
        if addr is None or not port.isdigit():
            return reply(502, b"Bad Gateway")
        try:
            up = socket.create_connection((addr, int(port)), timeout=5)
        except OSError:
            return reply(502, b"Bad Gateway")
        reply(200, b"Connection established")
        c.settimeout(None)
        up.settimeout(None)
        if rest:
            up.sendall(rest)
        t = threading.Thread(target=pump, args=(up, c), daemon=True)
        t.start()
        pump(c, up)
        t.join()
    except OSError:
        pass
    finally:
        if up is not None:
            up.close()
        c.close()
        slots.release()


def main():
    global logf
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--listen", default="198.18.0.1")
    ap.add_argument("--port", type=int, default=3128)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    args.expected = b"Basic " + base64.b64encode(("%s:%s" % (args.user, args.password)).encode())
    names = read_hosts(args.hosts)
    logf = open(args.log, "a", buffering=1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.listen, args.port))
    ls.listen(128)
    # Listening before the pid file exists: its presence means ready.
    with open(args.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(args.pidfile + ".tmp", args.pidfile)
    while True:
        c, a = ls.accept()
        if not slots.acquire(blocking=False):
            c.close()
            continue
        threading.Thread(target=serve, args=(c, a, args, names), daemon=True).start()


if __name__ == "__main__":
    main()
