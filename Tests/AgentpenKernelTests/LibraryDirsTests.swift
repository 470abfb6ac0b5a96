import AgentpenKernel
import Testing

/// The exec helper binds the directories of the libraries agentpen has loaded (a
/// build that links the Swift runtime dynamically needs them inside the sandbox).
@Suite struct LibraryDirsTests {
    @Test func theDirectoriesOfMappedSharedObjectsEachOnceInOrder() {
        let maps = """
        55d0c4a00000-55d0c4a2c000 r--p 00000000 fe:00 1835013                    /usr/local/bin/agentpen
        55d0c6000000-55d0c6021000 rw-p 00000000 00:00 0                          [heap]
        7f2a10000000-7f2a10021000 rw-p 00000000 00:00 0
        7f2a1a000000-7f2a1a028000 r--p 00000000 fe:00 1310761                    /usr/lib/x86_64-linux-gnu/libc.so.6
        7f2a1a028000-7f2a1a1bd000 r-xp 00028000 fe:00 1310761                    /usr/lib/x86_64-linux-gnu/libc.so.6
        7f2a1b000000-7f2a1b100000 r--p 00000000 fe:00 2000001                    /opt/swift/usr/lib/swift/linux/libFoundation.so
        7f2a1c000000-7f2a1c001000 r--p 00000000 fe:00 2000002                    /tmp/old lib/libgone.so.1 (deleted)
        7f2a1d000000-7f2a1d001000 r--p 00000000 fe:00 2000003                    /usr/share/locale/locale.alias
        7f2a1e000000-7f2a1e001000 r--p 00000000 fe:00 2000004                    /libroot.so
        7ffd9a000000-7ffd9a021000 rw-p 00000000 00:00 0                          [stack]
        7ffd9a1f0000-7ffd9a1f2000 r-xp 00000000 00:00 0                          [vdso]
        """
        #expect(Host.libraryDirs(inMaps: Array(maps.utf8)) == [
            "/usr/lib/x86_64-linux-gnu", "/opt/swift/usr/lib/swift/linux", "/tmp/old lib", "/",
        ])
    }

    @Test func emptyOrPathlessTextGivesNothing() {
        #expect(Host.libraryDirs(inMaps: []).isEmpty)
        #expect(Host.libraryDirs(inMaps: Array("7f-8f r--p 0 00:00 0 [heap]\nno newline at the end .so".utf8)).isEmpty)
        #expect(Host.libraryDirs(inMaps: Array("\n\n/a.so".utf8)) == ["/"])
    }

    @Test func thisProcessHasLibcMapped() {
        #expect(Host.loadedLibraryDirs().contains { $0.hasSuffix("-linux-gnu") || $0.hasSuffix("/lib64") || $0 == "/lib" })
    }
}
