import FoundationEssentials
import Glibc

/// Reads the event lines the namespace helper sends (one JSON `Event` a line).
/// The names in them came from the sandbox: a line that is not a valid event is
/// dropped and counted, a line longer than `maxLine` is dropped without being
/// held, and the work is linear in the bytes fed.
public final class EventLineDecoder {
    public static let maxLine = 64 * 1024
    private var pending: [UInt8] = []
    private var discarding = false
    /// Lines that were not an event (or too long).
    public private(set) var rejected = 0
    private let decoder: JSONDecoder

    public init() {
        decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
    }

    /// The complete events in `bytes` (and what earlier calls left pending).
    public func feed(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        var events: [Event] = []
        var start = 0
        while start < bytes.count {
            let nl = bytes[start...].firstIndex(of: 10)
            let end = nl ?? bytes.count
            if !discarding {
                if pending.count + (end - start) > Self.maxLine {
                    pending.removeAll(keepingCapacity: false)
                    discarding = true
                    rejected += 1
                } else {
                    pending.append(contentsOf: bytes[start..<end])
                }
            }
            guard nl != nil else { break }
            if !discarding && !pending.isEmpty {
                if let e = try? decoder.decode(Event.self, from: Data(pending)) { events.append(e) }
                else { rejected += 1 }
            }
            pending.removeAll(keepingCapacity: true)
            discarding = false
            start = end + 1
        }
        return events
    }

    public func feed(_ bytes: [UInt8]) -> [Event] {
        bytes.withUnsafeBytes { feed($0) }
    }
}
