import AgentpenEvents
import AgentpenPolicy
import Foundation
import Glibc
import Testing
@testable import AgentpenProxy

/// A real TLS handshake through the proxy: openssl s_client → SNIProxy →
/// openssl s_server with a certificate made for this test. The proxy must
/// pass the ClientHello on untouched for the handshake and verification to work.
@Suite struct RealTLSTests {
    func run(_ args: [String], stdin: String? = nil, timeout: Double = 10) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        let done = DispatchSemaphore(value: 0)
        let collected = Locked(Data())
        Thread.detachNewThread {
            let d = out.fileHandleForReading.readDataToEndOfFile()
            collected.withLock { $0 = d }
            done.signal()
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            p.terminate()
            _ = done.wait(timeout: .now() + 2)
        }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: collected.withLock { $0 }, as: UTF8.self))
    }

    @Test func opensslHandshakeThroughTheProxy() throws {
        _ = Net.ignorePipe
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agentpen-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let (rc, msg) = try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                 "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=ok.test.example",
                                 "-addext", "subjectAltName=DNS:ok.test.example"])
        try #require(rc == 0, "openssl req: \(msg)")

        // s_server on an ephemeral port; its first line says which.
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        server.arguments = ["s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-www", "-naccept", "1"]
        let sout = Pipe()
        server.standardOutput = sout
        server.standardError = FileHandle.nullDevice
        server.standardInput = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning { server.terminate() }
            server.waitUntilExit()
        }
        let portBox = Locked<UInt16?>(nil)
        let found = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var text = ""
            while true {
                let d = sout.fileHandleForReading.availableData
                if d.isEmpty { break }
                text += String(decoding: d, as: UTF8.self)
                if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT ") }),
                   let port = line.split(separator: ":").last.flatMap({ UInt16($0) }) {
                    portBox.withLock { $0 = port }
                    break
                }
            }
            found.signal()
        }
        _ = found.wait(timeout: .now() + 5)
        let serverPort = try #require(portBox.withLock { $0 })

        let events = EventCapture()
        let proxy = SNIProxy(allowlist: Allowlist([try HostPattern("ok.test.example")]), events: events,
                             config: ProxyConfig(upstreamPort: serverPort, permitLoopbackUpstreamForTests: true)) { _ in [.loopbackV4] }
        let proxyPort = try proxy.start()
        defer { proxy.stop() }

        let (crc, out) = try run(["s_client", "-connect", "127.0.0.1:\(proxyPort)", "-servername", "ok.test.example",
                                  "-CAfile", cert, "-verify_return_error", "-verify_hostname", "ok.test.example",
                                  "-ign_eof", "-quiet"],
                                 stdin: "GET / HTTP/1.0\r\n\r\n")
        #expect(crc == 0, "s_client: \(out.prefix(400))")
        #expect(out.contains("HTTP/1.0 200 ok"), "\(out.prefix(400))")
        #expect(out.contains("s_server -accept"))   // the -www status page echoes the server command line
        #expect(events.all.contains { $0.kind == .connectionAllowed && $0.subject == "ok.test.example" })
    }
}
