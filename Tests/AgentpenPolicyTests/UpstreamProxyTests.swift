import Testing
@testable import AgentpenPolicy

/// The upstream CONNECT proxy's pure parts: the URL (credentials kept out of
/// every description), no_proxy matching, the request and the reply.
@Suite struct UpstreamProxyTests {
    @Test func urlWithEscapedCredentials() throws {
        let p = try UpstreamProxy(url: "http://apw-proxy:s3cr%3Aet%40pa%25ss@proxy.corp.example:3128/")
        #expect(p.host == "proxy.corp.example" && p.port == 3128)
        #expect(p.username == "apw-proxy" && p.password == "s3cr:et@pa%ss")
        #expect(p.redactedURL == "http://***@proxy.corp.example:3128")
        #expect(p.description == p.redactedURL && p.endpoint == "proxy.corp.example:3128")
        for shown in [p.description, p.redactedURL, p.endpoint, String(describing: p.noProxy)] {
            #expect(!shown.contains("s3cr") && !shown.contains("apw-proxy"), "\(shown)")
        }
        // An unescaped '@' in the password: the last '@' ends the user part.
        let raw = try UpstreamProxy(url: "http://u:p@ss@10.0.0.1:8080")
        #expect(raw.username == "u" && raw.password == "p@ss" && raw.host == "10.0.0.1")
        let none = try UpstreamProxy(url: "http://[fd00::1]:3128")
        #expect(!none.hasCredentials && none.host == "fd00::1" && none.redactedURL == "http://[fd00::1]:3128")
        #expect(none.endpoint == "[fd00::1]:3128")
    }

    @Test(arguments: [
        ("https://p.example:3128", UpstreamProxy.Invalid.scheme),
        ("socks5://p.example:1080", .scheme),
        ("http://p.example", .noPort),
        ("http://u:hunter2@p.example:", .noPort),
        ("http://p.example:0", .badPort),
        ("http://p.example:65536", .badPort),
        ("http://p.example:31x8", .badPort),
        ("http://p.example:3128/path", .path),
        ("http://p.example:3128?x=1", .path),
        ("http://p ex:3128", .badHost),
        ("http://:3128", .badHost),
        ("http://[1.2.3.4]:3128", .badHost),
        ("http://u:%zz@p.example:3128", .badEscape),
        ("http://u:%0a@p.example:3128", .badEscape),
    ])
    func badURLs(url: String, error: UpstreamProxy.Invalid) throws {
        #expect(throws: error) { try UpstreamProxy(url: url) }
        // The message never quotes the URL (it may hold a password).
        #expect(!error.description.contains("hunter2") && !error.description.contains(url))
    }

    @Test func noProxyNamesExactAndSuffix() throws {
        let p = try UpstreamProxy(url: "http://p.example:3128", noProxy: ["Git.Corp.Example", ".internal.example"])
        #expect(p.bypasses("git.corp.example") && p.bypasses("GIT.corp.example."))
        #expect(!p.bypasses("x.git.corp.example") && !p.bypasses("corp.example"))
        #expect(p.bypasses("a.internal.example") && p.bypasses("a.b.internal.example"))
        #expect(!p.bypasses("internal.example") && !p.bypasses("evilinternal.example"))
        #expect(!p.bypasses("api.anthropic.com"))
        for bad in ["10.0.0.0/8", "127.0.0.1", "*", "", ".", "a b", "::1", "*.x.example"] {
            #expect(throws: UpstreamProxy.Invalid.badNoProxy(bad)) { try UpstreamProxy(url: "http://p.example:3128", noProxy: [bad]) }
        }
    }

    @Test func connectRequestCarriesBasicCredentials() throws {
        let p = try UpstreamProxy(url: "http://Aladdin:open%20sesame@p.example:3128")
        let r = String(decoding: p.connectRequest(name: "api.example.com", port: 443) ?? [], as: UTF8.self)
        #expect(r == "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
                + "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n")
        let anonymous = try UpstreamProxy(url: "http://p.example:3128")
        #expect(String(decoding: anonymous.connectRequest(name: "git.example", port: 22) ?? [], as: UTF8.self)
                == "CONNECT git.example:22 HTTP/1.1\r\nHost: git.example:22\r\n\r\n")
        // A name that could end the request line early never reaches the proxy.
        for bad in ["a.example\r\nX-Injected: 1", "a b.example", "", "a.example:443", "a\u{0}.example"] {
            #expect(p.connectRequest(name: bad, port: 443) == nil, "\(bad.debugDescription)")
        }
    }

    @Test func base64Vectors() {
        // RFC 4648 §10.
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors { #expect(Base64.encode(Array(plain.utf8)) == encoded, "\(plain)") }
        #expect(Base64.encode([0xff, 0xfe, 0xfd]) == "//79")
    }

    @Test func replies() {
        let ok = Array("HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nSSH-2.0-banner".utf8)
        #expect(UpstreamProxy.replyHeaderEnd(ok) == ok.count - "SSH-2.0-banner".utf8.count)
        #expect(UpstreamProxy.replyHeaderEnd(Array("HTTP/1.1 200 OK\r\n".utf8)) == nil)
        #expect(UpstreamProxy.replyHeaderEnd([13, 10, 13]) == nil)
        let r = UpstreamProxy.parseReply(ok)
        #expect(r.status == 200 && r.isSuccess && r.statusLine == "HTTP/1.1 200 Connection established")
        let denied = UpstreamProxy.parseReply(Array("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n".utf8))
        #expect(denied.status == 407 && !denied.isSuccess)
        // The proxy's words are cleaned: no escape sequences reach the terminal, at most 160 characters.
        let hostile = UpstreamProxy.parseReply(Array("HTTP/1.1 403 \u{1b}[31mno\u{7}".utf8) + [0xff] + Array(String(repeating: "x", count: 300).utf8) + [13, 10])
        #expect(hostile.status == 403 && hostile.statusLine.hasPrefix("HTTP/1.1 403 ?[31mno??") && hostile.statusLine.count == 160)
        #expect(!hostile.statusLine.unicodeScalars.contains { $0.value < 0x20 || $0.value >= 0x7f })
        for notHTTP in ["SSH-2.0-x\r\n\r\n", "HTTP/1.1 2000 x\r\n\r\n", "HTTP/2 200\r\n\r\n", "\r\n\r\n"] {
            let p = UpstreamProxy.parseReply(Array(notHTTP.utf8))
            #expect(p.status == nil && !p.isSuccess, "\(notHTTP)")
        }
        #expect(!UpstreamProxy.parseReply(Array("HTTP/1.1 302 Found\r\n\r\n".utf8)).isSuccess)
        #expect(UpstreamProxy.parseReply(Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)).isSuccess)
    }
}
