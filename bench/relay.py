#!/usr/bin/python3
"""Plain TCP relay for the hop benchmark: listen on 127.0.0.1:PORT, connect each client
to TARGET:TPORT, move bytes both ways with splice(2) (no TLS termination, no parsing).
Stands in for agentpen's host-side proxy after it has read the ClientHello.
Usage: relay.py LISTEN_PORT TARGET_HOST TARGET_PORT [--max-seconds S]"""
import os, socket, sys, threading, time

def pump(src, dst):
    r, w = os.pipe()
    try:
        while True:
            n = os.splice(src.fileno(), w, 1 << 20)
            if n == 0:
                break
            while n:
                n -= os.splice(r, dst.fileno(), n)
    except OSError:
        pass
    finally:
        os.close(r); os.close(w)
        try: dst.shutdown(socket.SHUT_WR)
        except OSError: pass

def serve(c, target):
    try:
        u = socket.create_connection(target, timeout=10)
        u.settimeout(None)
    except OSError:
        c.close(); return
    t = threading.Thread(target=pump, args=(u, c), daemon=True); t.start()
    pump(c, u); t.join(); c.close(); u.close()

def main():
    port, th, tp = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    limit = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--max-seconds" else 600
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(128); ls.settimeout(1.0)
    end = time.time() + limit
    print("listening", flush=True)
    while time.time() < end:
        try: c, _ = ls.accept()
        except socket.timeout: continue
        threading.Thread(target=serve, args=(c, (th, tp)), daemon=True).start()

if __name__ == "__main__":
    main()
