#!/usr/bin/python3
"""Arrival logger for the agentpen test world (runs as root inside netns apw-srv).

1. Sniffs the srv end of the veth with an AF_PACKET socket and writes one line per
   TCP connection attempt (deduplicated by src,sport,dst,dport; a new SYN with a new
   sequence number is a new attempt; a FIN/RST of a flow never seen before is logged
   too), one line per UDP datagram, one per ICMP packet, and one per packet of any
   other IP protocol. By default an in-kernel BPF filter drops TCP segments without
   SYN/FIN/RST before they reach this process (bulk transfers would otherwise cost a
   wake-up per ACK); --all-packets disables it and logs the first segment of any flow.
2. Runs bait listeners (TCP 22, 8080, 9000; UDP 53, 9999, dual-stack) that log what
   they receive, so a leak has something to talk to.

Line format (key=value, space separated, one line per event, flushed at once):
  t=<unix time> ev=arrive proto=tcp src=A sport=P dst=B dport=Q flags=S
  t=<unix time> ev=arrive proto=icmp src=A dst=B type=8 code=0
  t=<unix time> ev=accept proto=tcp src=A sport=P dst=B dport=Q bytes=N data=<python repr>
  t=<unix time> ev=recv proto=udp src=A sport=P dst=B dport=Q bytes=N data=<repr>
"""
import argparse, collections, os, signal, socket, struct, sys, threading, time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
TCP_PORTS = (22, 8080, 9000)
UDP_PORTS = (53, 9999)

lock = threading.Lock()
logf = None


def log(**kv):
    line = "t=%.6f " % time.time() + " ".join("%s=%s" % (k, v) for k, v in kv.items()) + "\n"
    with lock:
        logf.write(line)
        logf.flush()


def tcp_flags(b):
    names = "FSRPAUEC"
    return "".join(n for i, n in enumerate(names) if b & (1 << i)) or "-"


class Sniffer:
    def __init__(self, iface, full):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((iface, 0))
        if not full:
            attach_filter(self.sock)
        self.flows = collections.OrderedDict()   # (src,sport,dst,dport) -> syn seq or None
        self.buf = bytearray(256)                  # headers are all we need

    def l4(self, proto, src, dst, data, frag):
        if frag:
            log(ev="arrive", proto=proto_name(proto), src=src, dst=dst, frag=1)
            return
        if proto == 6 and len(data) >= 14:
            sport, dport, seq = struct.unpack("!HHI", data[:8])
            flags = data[13]
            key = (src, sport, dst, dport)
            syn = (flags & 0x02) and not (flags & 0x10)
            if syn:
                if self.flows.get(key, -1) == seq:
                    return                                  # retransmitted SYN
                self.flows[key] = seq
            elif key in self.flows:
                return
            else:
                self.flows[key] = None                      # mid-flow packet, first seen
            self.flows.move_to_end(key)
            if len(self.flows) > 200000:
                self.flows.popitem(last=False)
            log(ev="arrive", proto="tcp", src=src, sport=sport, dst=dst, dport=dport, flags=tcp_flags(flags))
        elif proto == 17 and len(data) >= 8:
            sport, dport, ln = struct.unpack("!HHH", data[:6])
            log(ev="arrive", proto="udp", src=src, sport=sport, dst=dst, dport=dport, len=ln)
        elif proto in (1, 58) and len(data) >= 2:
            log(ev="arrive", proto="icmp" if proto == 1 else "icmp6", src=src, dst=dst,
                type=data[0], code=data[1])
        else:
            log(ev="arrive", proto=proto_name(proto), src=src, dst=dst)

    def handle(self, pkt):
        if len(pkt) < 14:
            return
        et = struct.unpack("!H", pkt[12:14])[0]
        off = 14
        if et == 0x8100 and len(pkt) >= 18:
            et = struct.unpack("!H", pkt[16:18])[0]; off = 18
        p = pkt[off:]
        if et == 0x0800 and len(p) >= 20:
            ihl = (p[0] & 0x0F) * 4
            fragoff = struct.unpack("!H", p[6:8])[0] & 0x1FFF
            src = socket.inet_ntop(socket.AF_INET, p[12:16])
            dst = socket.inet_ntop(socket.AF_INET, p[16:20])
            self.l4(p[9], src, dst, p[ihl:], fragoff != 0)
        elif et == 0x86DD and len(p) >= 40:
            src = socket.inet_ntop(socket.AF_INET6, p[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, p[24:40])
            nh, q, frag = p[6], p[40:], False
            for _ in range(8):                       # walk extension headers, bounded
                if nh in (0, 43, 60) and len(q) >= 8:
                    nh, q = q[0], q[(q[1] + 1) * 8:]
                elif nh == 44 and len(q) >= 8:
                    frag = (struct.unpack("!H", q[2:4])[0] >> 3) != 0
                    nh, q = q[0], q[8:]
                else:
                    break
            self.l4(nh, src, dst, q, frag)
        elif et == 0x0806:
            pass                                      # ARP: link plumbing, not traffic
        else:
            log(ev="arrive", proto="eth-0x%04x" % et)

    def run(self):
        view = memoryview(self.buf)
        while True:
            n, addr = self.sock.recvfrom_into(self.buf)
            if addr[2] == PACKET_OUTGOING:
                continue
            try:
                self.handle(bytes(view[:n]))
            except Exception as e:  # never die on a weird packet
                log(ev="error", what=repr(str(e)))


def attach_filter(sock):
    """Classic BPF: drop, in the kernel, TCP segments that carry none of SYN/FIN/RST
    (the ACK/data stream of established connections), so bulk transfers do not wake
    this process per packet. Every connection attempt still arrives (it needs a SYN);
    so does every non-TCP packet, every IP fragment and anything with IPv6 extension
    headers. Use --all-packets to switch this off."""
    ACCEPT, DROP = 0x40000, 0
    prog = [  # (code, jt label/0, jf label/0, k)
        ("ldh_abs", None, None, 12),
        ("jeq", "v4", None, 0x0800),
        ("jeq", "v6", "accept", 0x86DD),
        ("v4:ldb_abs", None, None, 23),           # IPv4 protocol
        ("jeq", None, "accept", 6),
        ("ldh_abs", None, None, 20),              # flags + fragment offset
        ("jset", "accept", None, 0x1FFF),
        ("ldxb_msh", None, None, 14),             # X = IPv4 header length
        ("ldb_ind", None, None, 14 + 13),         # TCP flags
        ("jset", "accept", "drop", 0x07),
        ("v6:ldb_abs", None, None, 14 + 6),       # IPv6 next header
        ("jeq", None, "accept", 6),
        ("ldb_abs", None, None, 14 + 40 + 13),    # TCP flags
        ("jset", "accept", "drop", 0x07),
        ("accept:ret", None, None, ACCEPT),
        ("drop:ret", None, None, DROP),
    ]
    codes = {"ldh_abs": 0x28, "ldb_abs": 0x30, "jeq": 0x15, "jset": 0x45,
             "ldxb_msh": 0xB1, "ldb_ind": 0x50, "ret": 0x06}
    labels = {}
    for i, (op, *_r) in enumerate(prog):
        if ":" in op:
            labels[op.split(":")[0]] = i
    raw = b""
    for i, (op, jt, jf, k) in enumerate(prog):
        op = op.split(":")[-1]
        rel = lambda l: 0 if l is None else labels[l] - i - 1
        raw += struct.pack("HBBI", codes[op], rel(jt), rel(jf), k)
    import ctypes
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    SO_ATTACH_FILTER = 26
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    # drain anything queued before the filter was attached
    sock.setblocking(False)
    try:
        while True:
            sock.recv(1)
    except BlockingIOError:
        pass
    sock.setblocking(True)
    attach_filter.keep = buf


def proto_name(p):
    return {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}.get(p, "ip%d" % p)


def peer(a):
    h = a[0]
    if h.startswith("::ffff:"):
        h = h[7:]
    return h, a[1]


conn_slots = threading.BoundedSemaphore(128)


def tcp_conn(c, a, port):
    try:
        c.settimeout(1.5)
        data = b""
        try:
            while len(data) < 1024:
                d = c.recv(1024 - len(data))
                if not d:
                    break
                data += d
                if b"\r\n\r\n" in data or port != 8080:
                    break
        except OSError:
            pass
        s, sp = peer(a)
        d, dp = peer(c.getsockname())
        log(ev="accept", proto="tcp", src=s, sport=sp, dst=d, dport=dp, bytes=len(data), data=repr(data[:200]))
        if port == 8080:
            body = b"arrival logged\n"
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass
    finally:
        c.close()
        conn_slots.release()


def tcp_listener(port):
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind(("::", port)); ls.listen(256)
    while True:
        c, a = ls.accept()
        if not conn_slots.acquire(blocking=False):
            s, sp = peer(a)
            log(ev="accept", proto="tcp", src=s, sport=sp, dport=port, note="overload")
            c.close(); continue
        threading.Thread(target=tcp_conn, args=(c, a, port), daemon=True).start()


def udp_listener(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        data, a = s.recvfrom(65535)
        h, p = peer(a)
        log(ev="recv", proto="udp", src=h, sport=p, dport=port, bytes=len(data), data=repr(data[:200]))


def main():
    global logf
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--ready")
    ap.add_argument("--all-packets", action="store_true",
                    help="no in-kernel filter: wake up for every TCP segment too")
    a = ap.parse_args()
    logf = open(a.log, "a", buffering=1)
    os.chmod(a.log, 0o644)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sn = Sniffer(a.iface, a.all_packets)
    for p in TCP_PORTS:
        threading.Thread(target=tcp_listener, args=(p,), daemon=True).start()
    for p in UDP_PORTS:
        threading.Thread(target=udp_listener, args=(p,), daemon=True).start()
    time.sleep(0.2)
    if a.pidfile:
        with open(a.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(a.pidfile + ".tmp", a.pidfile)
    log(ev="start", iface=a.iface, pid=os.getpid())
    if a.ready:
        open(a.ready, "w").close()
    sn.run()


if __name__ == "__main__":
    main()
