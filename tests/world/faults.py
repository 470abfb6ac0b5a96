#!/usr/bin/python3
"""Misbehaving servers for the agentpen test world (runs as root inside netns apw-srv).

  198.18.0.12:443  "reset": accepts, reads what the client sends first (the
                   ClientHello, up to 2 s), then closes with SO_LINGER 0 so the
                   peer gets a TCP RST instead of a FIN.

Every accept is logged to the arrival log as
  t=… ev=accept proto=tcp src=A sport=P dst=198.18.0.12 dport=443 bytes=N note=reset
"""
import argparse, os, signal, socket, struct, threading, time

lock = threading.Lock()
logf = None


def log(**kv):
    line = "t=%.6f " % time.time() + " ".join("%s=%s" % (k, v) for k, v in kv.items()) + "\n"
    with lock:
        logf.write(line)
        logf.flush()


slots = threading.BoundedSemaphore(64)


def reset_conn(c, a):
    n = 0
    try:
        c.settimeout(2)
        try:
            n = len(c.recv(4096))
        except OSError:
            pass
        d = c.getsockname()
        log(ev="accept", proto="tcp", src=a[0], sport=a[1], dst=d[0], dport=d[1], bytes=n, note="reset")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        c.close()
        slots.release()


def reset_listener(addr, port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)
    while True:
        c, a = ls.accept()
        if not slots.acquire(blocking=False):
            c.close()
            continue
        threading.Thread(target=reset_conn, args=(c, a), daemon=True).start()


def main():
    global logf
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--reset-addr", default="198.18.0.12")
    a = ap.parse_args()
    logf = open(a.log, "a", buffering=1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    t = threading.Thread(target=reset_listener, args=(a.reset_addr, 443), daemon=True)
    t.start()
    time.sleep(0.1)
    if not t.is_alive():
        raise SystemExit("faults.py: listener failed")
    with open(a.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(a.pidfile + ".tmp", a.pidfile)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
