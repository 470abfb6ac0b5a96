import Testing
@testable import AgentpenPolicy

/// `agentpen apply`'s report: which applied paths a shell or an editor runs later.
@Suite struct AppliedFileTests {
    @Test func theAuditsProjectFileRulesByRelativePath() {
        func why(_ rel: String, regular: Bool = true, _ content: String = "") -> String? {
            PersistenceAudit.appliedFileReason(rel, projectName: "proj", isRegular: regular, content: Array(content.utf8))
        }
        #expect(why(".envrc")?.contains("direnv") == true)
        #expect(why("sub/dir/.envrc", regular: false)?.contains("direnv") == true)
        #expect(why(".mise.toml")?.contains("mise") == true && why("a/mise.local.toml")?.contains("mise") == true)
        #expect(why(".vscode/tasks.json", #"{"runOn":"folderOpen"}"#)?.contains("folderOpen") == true)
        #expect(why(".vscode/tasks.json")?.contains("VS Code tasks") == true)
        #expect(why("x/.vscode/settings.json")?.contains("VS Code settings") == true)
        #expect(why("venv/bin/activate")?.contains("activate") == true && why("env/Scripts/Activate.ps1") != nil)
        #expect(why("env/etc/conda/activate.d/x.sh") != nil)
        for plain in ["README", "tasks.json", "vscode/tasks.json", "bin/tool", "activate.d/x.sh", "src/.envrc.bak", ""] {
            #expect(why(plain) == nil, "\(plain)")
        }
        // A top-level file's directory is the project itself.
        #expect(PersistenceAudit.appliedFileReason("activate", projectName: "bin", isRegular: true, content: []) != nil)
    }
}
