import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// Where the secret decoys go (SecretDecoys.plan): every well-known path the
/// plan leaves to the empty home, none where anything after the home's tmpfs is
/// mounted, and the binds name files, never a directory of the session.
@Suite struct SecretDecoyPlanTests {
    static func paths(_ p: SandboxPlan) -> [String] { SecretDecoys.plan(p.bwrap, home: "/home/u").map(\.path) }

    @Test func aPlainPlanGetsEveryDecoyUnderTheHome() throws {
        let p = try plan(["--", "/bin/sh"])
        let got = Self.paths(p)
        #expect(got == SecretDecoys.relativePaths.map { "/home/u/" + $0 }, "\(got)")
        let names = SecretDecoys.plan(p.bwrap, home: "/home/u").map(\.fileName)
        #expect(Set(names).count == names.count && names.allSatisfy { !$0.contains("/") && !$0.hasPrefix(".") })
    }

    @Test func aUserMountIsNeverShadowed() throws {
        let fs = FakeFS(debianLike.merging(["/home/u/.aws/credentials": .file("K", exec: false),
                                            "/home/u/.config/gh/hosts.yml": .file("T", exec: false)]) { $1 })
        let p = try plan(["--mount", "/home/u/.aws", "--mount-rw", "/home/u/.config/gh", "--", "/bin/sh"], fs: fs)
        let got = Self.paths(p)
        #expect(!got.contains { $0.hasPrefix("/home/u/.aws/") || $0.hasPrefix("/home/u/.config/gh/") }, "\(got)")
        #expect(got.contains("/home/u/.config/gcloud/application_default_credentials.json"), "\(got)")
        #expect(got.contains("/home/u/.ssh/id_rsa") && got.contains("/home/u/.netrc"), "\(got)")
    }

    @Test func aMountOfOneFileLeavesItsNeighbours() throws {
        let fs = FakeFS(debianLike.merging(["/home/u/.ssh/id_ed25519": .file("K", exec: false)]) { $1 })
        let got = Self.paths(try plan(["--mount", "/home/u/.ssh/id_ed25519", "--", "/bin/sh"], fs: fs))
        #expect(!got.contains("/home/u/.ssh/id_ed25519") && got.contains("/home/u/.ssh/id_rsa"), "\(got)")
    }

    @Test func aPresetsConfigDirReadWriteOrReadOnlyHasNoDecoy() throws {
        let preset = try Preset(name: "sh", text: "rw ~/.config/gh\nro ~/.docker\n")
        let fs = FakeFS(debianLike.merging(["/home/u/.docker/config.json": .file("{}", exec: false),
                                            "/home/u/.config/gh/hosts.yml": .file("", exec: false)]) { $1 })
        for flags in [[String](), ["--ro-config"]] {
            let got = Self.paths(try plan(flags + ["--", "sh"], fs: fs, preset: preset))
            #expect(!got.contains("/home/u/.config/gh/hosts.yml") && !got.contains("/home/u/.docker/config.json"), "\(flags) \(got)")
            #expect(got.contains("/home/u/.kube/config"), "\(got)")
        }
    }

    @Test func aProjectHoldingASecretPathHasNoDecoyThere() throws {
        // A project at ~/.kube (odd, but allowed): the decoy would hide the project's file.
        let fs = FakeFS(debianLike.merging(["/home/u/.kube/config": .file("", exec: false)]) { $1 })
        let got = Self.paths(try plan(["--", "/bin/sh"], fs: fs, project: "/home/u/.kube"))
        #expect(!got.contains("/home/u/.kube/config"), "\(got)")
    }

    @Test func onlyMountsAfterTheHomeCountAndACreatedDirectoryHidesNothing() {
        let before: [BwrapArgument] = [.bind(source: "/x", destination: "/home/u/.aws", readOnly: true)]
        let home: [BwrapArgument] = [.tmpfs("/home/u", size: 1, mode: 0o700)]
        let after: [BwrapArgument] = [.dir("/home/u/.ssh", mode: nil), .symlink(target: "/elsewhere", path: "/home/u/.docker"),
                                      .dir("/home/u/.netrc", mode: nil), .data(path: "/home/u/.npmrc", content: "")]
        let got = SecretDecoys.plan(before + home + after, home: "/home/u").map(\.path)
        #expect(got.contains("/home/u/.aws/credentials") && got.contains("/home/u/.ssh/id_rsa"), "\(got)")
        #expect(!got.contains("/home/u/.docker/config.json") && !got.contains("/home/u/.netrc") && !got.contains("/home/u/.npmrc"), "\(got)")
        #expect(SecretDecoys.plan(before, home: "/home/u").isEmpty, "no private home, no decoys")
    }

    @Test func oneReadOnlyBindOfTheDecoyDirectoryAndALinkPerDecoy() throws {
        var p = try plan(["--", "/bin/sh"])
        let decoys = SecretDecoys.plan(p.bwrap, home: "/home/u")
        try #require(decoys.count == SecretDecoys.relativePaths.count)
        let count = p.bwrap.count
        p.addSecretDecoys(decoys, hostDir: "/state/agentpen/sessions/ID/decoys")
        let added = Array(p.bwrap[count...])
        #expect(added.count == decoys.count + 1)
        #expect(added.first == .bind(source: "/state/agentpen/sessions/ID/decoys", destination: SecretDecoys.insideDir, readOnly: true))
        for (a, d) in zip(added.dropFirst(), decoys) {
            #expect(a == .symlink(target: SecretDecoys.insideDir + "/" + d.fileName, path: d.path))
        }
        // The decoys' directory alone: never the session's.
        #expect(!p.hostVisible.contains("/state/agentpen/sessions/ID") && !p.hostVisible.contains("/state/agentpen/sessions"))
        var none = try plan(["--", "/bin/sh"])
        let before = none.bwrap
        none.addSecretDecoys([], hostDir: "/state/agentpen/sessions/ID/decoys")
        #expect(none.bwrap == before, "no decoys, no bind")
    }
}
