import Testing
import AgentpenPolicy

/// The cursor the ClientHello and DNS parsers read hostile bytes through: every
/// read past the end is refused without moving, a window cannot see past its
/// end, and a mistake that slips past the checks traps (in an exit test).
@Suite struct ByteCursorTests {
    @Test func readsBigEndianAndCounts() {
        var c = ByteCursor([1, 2, 3, 4, 5, 6, 7, 8, 9])
        let a = c.u8(), b = c.u16(), d = c.u24()
        #expect(a == 1 && b == 0x0203 && d == 0x040506)
        #expect(c.offset == 6 && c.remaining == 3 && !c.atEnd)
        let e = c.bytes(2), skipped = c.skip(1)
        #expect(e == [7, 8] && skipped)
        #expect(c.atEnd && c.offset == 9 && c.remaining == 0)
    }

    /// Each accessor with too few bytes left: nil or false, and the position stays.
    @Test(arguments: 0...3)
    func everyReadPastTheEndIsRefused(available: Int) {
        let base = ByteCursor(Array(repeating: 0xaa, count: available))
        func refused(_ what: String, _ read: (inout ByteCursor) -> Bool) {
            var c = base
            let ok = read(&c)
            #expect(ok, "\(what) with \(available) bytes left")
            #expect(c.offset == 0 && c.remaining == available, "\(what) moved the cursor")
        }
        if available < 1 { refused("u8") { $0.u8() == nil } }
        if available < 2 { refused("u16") { $0.u16() == nil } }
        if available < 3 { refused("u24") { $0.u24() == nil } }
        refused("bytes") { $0.bytes(available + 1) == nil }
        refused("window") { $0.window(available + 1) == nil }
        refused("skip") { !$0.skip(available + 1) }
        refused("bytes(-1)") { $0.bytes(-1) == nil }
        refused("window(-1)") { $0.window(-1) == nil }
        refused("skip(-1)") { !$0.skip(-1) }
        refused("bytes(Int.max)") { $0.bytes(Int.max) == nil }
        refused("skip(Int.max)") { !$0.skip(Int.max) }
    }

    @Test func windowStopsAtItsEndThoughTheStorageGoesOn() throws {
        var outer = ByteCursor([0, 3, 0xa, 0xb, 0xc, 0xff, 0xff, 0xff])
        _ = outer.skip(2)
        let window = outer.window(3)
        var w = try #require(window)
        #expect(outer.offset == 5 && outer.remaining == 3)
        #expect(w.remaining == 3 && w.offset == 0)
        let first = w.u16()
        #expect(first == 0x0a0b)
        // One byte of the window is left; 0xff follows it in the storage.
        let second = w.u16(), two = w.bytes(2), skipped = w.skip(2)
        #expect(second == nil && two == nil && !skipped)
        let last = w.u8(), past = w.u8(), rest = w.prefix(upTo: 10)
        #expect(last == 0x0c && past == nil && w.atEnd && rest.isEmpty)
    }

    @Test func prefixTakesWhatThereIs() {
        var c = ByteCursor([1, 2, 3])
        let a = c.prefix(upTo: 2), b = c.prefix(upTo: 5), d = c.prefix(upTo: 5)
        #expect(a == [1, 2] && b == [3] && d.isEmpty && c.atEnd)
    }

    @Test func bytesSinceAMark() {
        var c = ByteCursor([9, 8, 7, 6])
        _ = c.u8()
        let mark = c
        _ = c.u16()
        #expect(c.bytes(since: mark) == [8, 7])
        #expect(c.bytes(since: c).isEmpty)
    }

    @Test func aSliceCursorStartsAtTheSliceNotTheArray() {
        let all: [UInt8] = [1, 2, 3, 4, 5]
        var c = ByteCursor(all[2..<4])
        #expect(c.offset == 0 && c.remaining == 2)
        let a = c.u16(), b = c.u8()
        #expect(a == 0x0304 && b == nil)
    }

    /// A mark from another input, used on a window of bytes 3..<5, names bytes
    /// before the window: that is a bug in the parser, and the slice's bounds
    /// check traps rather than reading them.
    @Test func aMistakeOutsideTheBytesTraps() async {
        await #expect(processExitsWith: .failure) {
            let all: [UInt8] = [1, 2, 3, 4, 5]
            var other = ByteCursor(all)
            _ = other.u8()
            var window = ByteCursor(all[3..<5])
            _ = window.u16()
            _ = window.bytes(since: other)
        }
        await #expect(processExitsWith: .failure) {
            var c = ByteCursor([1])
            _ = c.prefix(upTo: -1)
        }
    }
}
