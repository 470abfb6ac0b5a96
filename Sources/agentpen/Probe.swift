import AgentpenKernel
import AgentpenPolicy
import CShim
import Glibc

/// `agentpen __probe userns` (fresh process: can it unshare?), `agentpen
/// __probe fanotify` (may agentpen mark the project's mount?) and
/// `agentpen __probe inside [network]` (run inside the sandbox: what holds?).
enum Probe {
    static func main(_ args: [String]) -> Never {
        switch args.first {
        case "userns":
            let rc = ap_unshare(AP_CLONE_NEWUSER | AP_CLONE_NEWNET)
            if rc != 0 { print("unshare: \(String(cString: strerror(-rc)))"); exit(1) }
            exit(0)
        case "fanotify":
            // What the kernel says to the persistence audit's mount mark on the
            // project (the working directory): RunLedger.probe.
            var buf = [CChar](repeating: 0, count: 4096)
            guard getcwd(&buf, buf.count) != nil else { print("getcwd: \(String(cString: strerror(errno)))"); exit(1) }
            print(RunLedger.probe(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)), terminator: "")
            exit(0)
        case "inside":
            print("probe=ran")
            let status = Host.readFile("/proc/self/status") ?? ""
            for line in status.split(separator: "\n") {
                let kv = line.split(separator: ":", maxSplits: 1).map { String($0).trimmingWhitespace() }
                guard kv.count == 2 else { continue }
                switch kv[0] {
                case "Seccomp": print("seccomp=\(kv[1])")
                case "NoNewPrivs": print("nnp=\(kv[1])")
                case "CapEff": print("capeff=\(kv[1])")
                default: break
                }
            }
            let rc = ap_unshare(AP_CLONE_NEWUSER)
            print("userns=\(rc == -EPERM ? "EPERM" : rc == 0 ? "allowed" : String(cString: strerror(-rc)))")
            let comm = open("/proc/self/comm", O_WRONLY)
            print("landlock=\(comm < 0 && errno == EACCES ? "on" : "off")")
            if comm >= 0 { Descriptor(comm).close() }
            if args.dropFirst().first == "network" {
                // Routes through an interface other than loopback (the default route on
                // loopback leads to the firewall's refusals, not out of the namespace).
                print("routes=\(uplinkRoutes().count)")
                print("proxy=\(connectLoopback443() ? "connected" : "unreachable")")
                print("udp=\(udpToGateway())")
            }
            exit(0)
        case "selftest":
            SelftestProbe.main(Array(args.dropFirst()))
        case "selftest-world":
            SelftestRun.worldMain(Array(args.dropFirst()))
        default:
            exit(2)
        }
    }

    /// A blocking TCP connect to 127.0.0.1:443 (the forwarder or pasta's splice).
    static func connectLoopback443() -> Bool {
        let fd = ap_socket_blocking(4, 0)
        guard fd >= 0 else { return false }
        let socket = Descriptor(fd)
        return IPAddress.loopbackV4.withUnsafeBufferPointer { ap_connect_ip(socket.raw, $0.baseAddress, 4, 443) } == 0
    }

    /// A UDP datagram to the gateway (or a documentation address): the firewall must refuse it.
    static func udpToGateway() -> String {
        let fd = ap_socket_blocking(4, 1)
        guard fd >= 0 else { return "socket failed" }
        let socket = Descriptor(fd)
        // The gateway route is the only route; aim at whatever it leads to.
        let target = gatewayAddress() ?? IPAddress(192, 0, 2, 1)
        var byte: UInt8 = 0
        let n = target.withUnsafeBufferPointer { ap_sendto_ip(socket.raw, &byte, 1, $0.baseAddress, 4, 53) }
        return n >= 0 ? "sent" : n == -Int(EPERM) ? "EPERM" : String(cString: strerror(Int32(-n)))
    }

    /// The fields of each /proc/net/route line whose interface is not loopback.
    static func uplinkRoutes() -> [[Substring]] {
        (Host.readFile("/proc/net/route") ?? "").split(separator: "\n").dropFirst()
            .map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }) }
            .filter { $0.first != nil && $0.first != "lo" }
    }

    /// The destination of the single route through the uplink, from /proc/net/route.
    static func gatewayAddress() -> IPAddress? {
        guard let fields = uplinkRoutes().first, fields.count > 1,
              let hex = UInt32(fields[1], radix: 16) else { return nil }
        // The kernel prints the network-order word as a native integer: its bytes
        // in memory are the address in network order.
        return IPAddress(bytes: withUnsafeBytes(of: hex) { Array($0) })
    }
}
