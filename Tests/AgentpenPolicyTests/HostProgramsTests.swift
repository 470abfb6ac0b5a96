import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// A host with the three programs in their Debian places (pasta a symlink to passt),
/// a project on PATH holding stand-ins, and a directory the sandbox may write.
private let host: [String: FakeFS.Node] = [
    "/usr/bin/bwrap": .file("", exec: true), "/usr/bin/passt": .file("", exec: true),
    "/usr/bin/pasta": .link("passt"), "/usr/sbin/nft": .file("", exec: true),
    "/home/u/src/p/.venv/bin/bwrap": .file("", exec: true), "/home/u/src/p/.venv/bin/nft": .file("", exec: true),
    "/home/u/bin/bwrap": .file("", exec: true), "/srv/rw/bwrap": .file("", exec: true),
    "/opt/bwrap/bin/bwrap": .file("", exec: true), "/opt/noexec/bwrap": .file("", exec: false),
    "/opt/link-into-project": .link("/home/u/src/p/.venv/bin/bwrap"),
    "/opt/via-rw": .link("/srv/rw/hop"), "/srv/rw/hop": .link("/usr/bin/bwrap"),
    "/opt/rwdir": .link("/srv/rw"),
]

private let writable = ["/home/u/src/p", "/srv/rw"]

private func resolve(_ env: [String: String] = [:], fs: [String: FakeFS.Node] = host,
                     writable paths: [String] = writable) throws(HostPrograms.Refused) -> HostPrograms {
    let fake = FakeFS(fs)
    return try HostPrograms.resolve(env: env, home: "/home/u", writable: WritableSet(paths, fs: fake), fs: fake)
}

private func refusal(_ env: [String: String], writable paths: [String] = writable) -> String? {
    do { _ = try resolve(env, writable: paths); return nil } catch { return error.message }
}

@Suite struct HostProgramsTests {
    @Test func systemDirectoriesOnlyNeverPath() throws {
        let p = try resolve(["PATH": "/home/u/src/p/.venv/bin:/usr/bin:/bin"])
        #expect(p.path(.bwrap) == "/usr/bin/bwrap")
        #expect(p.path(.nft) == "/usr/sbin/nft")
        // As found, not the symlink's target: pasta tells itself from passt by its name.
        #expect(p.path(.pasta) == "/usr/bin/pasta")
        #expect(p.found[.bwrap]?.source == .systemDirectory("/usr/bin"))
        #expect(p.describe(.nft) == "nft: /usr/sbin/nft (system directory)")
    }

    @Test func missingFromTheSystemIsMissingEvenWhenOnPath() throws {
        var fs = host
        fs["/usr/sbin/nft"] = nil
        let p = try resolve(["PATH": "/home/u/src/p/.venv/bin:/usr/bin"], fs: fs)
        #expect(p.path(.nft) == nil)
        #expect(p.describe(.nft).contains("AGENTPEN_NFT"))
        #expect(HostPrograms.missing(.nft).contains("apt install nftables"))
    }

    @Test func notExecutableIsSkipped() throws {
        var fs = host
        fs["/usr/bin/bwrap"] = .file("", exec: false)
        fs["/bin/bwrap"] = .file("", exec: true)
        #expect(try resolve(fs: fs).path(.bwrap) == "/bin/bwrap")
    }

    @Test func nixosSystemProfile() throws {
        let fs: [String: FakeFS.Node] = [
            "/run/current-system": .link("/nix/store/abc-system"),
            "/nix/store/abc-system/sw/bin/nft": .link("/nix/store/def-nftables/bin/nft"),
            "/nix/store/def-nftables/bin/nft": .file("", exec: true),
        ]
        let p = try resolve(fs: fs)
        #expect(p.path(.nft) == "/run/current-system/sw/bin/nft")
        #expect(p.path(.bwrap) == nil)
    }

    @Test func absoluteOverrideOutsideIsUsed() throws {
        let p = try resolve(["AGENTPEN_BWRAP": "/opt/bwrap/bin/bwrap"])
        #expect(p.path(.bwrap) == "/opt/bwrap/bin/bwrap")
        #expect(p.found[.bwrap]?.source == .variable("AGENTPEN_BWRAP"))
        #expect(p.describe(.bwrap) == "bwrap: /opt/bwrap/bin/bwrap (from AGENTPEN_BWRAP)")
        #expect(p.path(.nft) == "/usr/sbin/nft")
    }

    @Test(arguments: [
        ("bin/bwrap", "not an absolute path"),
        ("/home/u/bin/bwrap", "your home"),
        ("/home/u/src/p/.venv/bin/bwrap", "the sandbox can write"),
        ("/srv/rw/bwrap", "the sandbox can write"),
        ("/opt/link-into-project", "the sandbox can write"),   // the file it ends at
        ("/opt/via-rw", "/srv/rw/hop"),                         // a symlink on the way
        ("/opt/rwdir/bwrap", "the sandbox can write"),          // a directory symlink
        ("/opt/missing/bwrap", "no executable file"),
        ("/opt/noexec/bwrap", "no executable file"),
    ])
    func overrideRefused(_ value: String, _ why: String) {
        let message = refusal(["AGENTPEN_BWRAP": value])
        #expect(message != nil, "\(value) accepted")
        #expect(message?.contains("AGENTPEN_BWRAP=\(value)") == true, "\(message ?? "")")
        #expect(message?.contains(why) == true, "\(message ?? "")")
    }

    @Test func systemBinaryInsideAWritableBindIsRefused() {
        let message = refusal([:], writable: ["/usr"])
        #expect(message?.contains("/usr/bin/bwrap") == true && message?.contains("AGENTPEN_BWRAP") == true, "\(message ?? "nil")")
    }

    @Test func writableSetFromThePlansReadWriteBinds() throws {
        let fs = FakeFS(debianLike.merging(["/srv/shared/x": .file("", exec: false)]) { $1 })
        let p = try SandboxPlan.make(options: try Options.parse(["--mount-rw", "/srv/shared", "--", "/usr/bin/sh"]),
                                     facts: facts(), project: "/home/u/src/p", preset: nil, network: .none, fs: fs)
        #expect(Set(p.hostWritable) == ["/home/u/src/p", "/home/u/src/p/.git", "/srv/shared"], "\(p.hostWritable)")
        let w = WritableSet(p.hostWritable, fs: fs)
        #expect(w.container(of: "/srv/shared/log") == "/srv/shared")
        #expect(w.container(of: "/home/u/src/p/.venv/bin/nft") == "/home/u/src/p")
        #expect(w.container(of: "/home/u/log") == nil)
        #expect(w.container(of: "/srv/sharedother") == nil)
    }

    @Test func secretLookingVariablesAreRedacted() {
        for name in ["OPENAI_API_KEY", "GH_TOKEN", "my_password", "CLIENT_SECRET", "apikey"] {
            #expect(EnvPolicy.displayValue(name: name, value: "abcdef") == "<redacted, 6 bytes>", "\(name)")
        }
        #expect(EnvPolicy.displayValue(name: "PATH", value: "/usr/bin") == "/usr/bin")
        #expect(EnvPolicy.displayValue(name: "LANG", value: "C.UTF-8") == "C.UTF-8")
    }
}
