@testable import JellyEngine
import Testing

/// The log's pure state machines, without threads or files: the commit queue and the hand-over
/// of the next segment.
@Suite struct LogTests {
    @Test func commitQueueGroupsInOrderAndWakesOnce() {
        var queue = CommitQueue()
        #expect(queue.next(maxBytes: 100) == .sleepStep)
        func request(_ bytes: Int, _ version: UInt64) -> CommitRequest {
            var r = EncodedRecords(capacity: bytes)
            r.appendVerbatim([UInt8](repeating: 0, count: bytes))
            return CommitRequest(records: r, include: [true], metas: [], version: version, needsSync: false, completion: .callback { _ in })
        }
        #expect(queue.enqueue(request(60, 1)) == .wakeCommitter)
        #expect(queue.enqueue(request(30, 2)) == .none)
        #expect(queue.enqueue(request(50, 3)) == .none)
        guard case .group(let g1) = queue.next(maxBytes: 100) else { Issue.record("no group"); return }
        #expect(g1.map(\.version) == [1, 2])
        guard case .group(let g2) = queue.next(maxBytes: 10) else { Issue.record("no group"); return }
        #expect(g2.map(\.version) == [3], "a request larger than the bound goes alone")
        #expect(queue.next(maxBytes: 100) == .sleepStep)
        #expect(queue.close() == .wakeCommitter)
        #expect(queue.next(maxBytes: 100) == .exitStep)
    }
    /// The hand-over of the log's next segment between the maintenance worker and the committer.
    @Test func startAheadHandsOverOnceAndNeverTwice() {
        var s = StartAhead<String>()
        s.want(2)
        guard case .startItYourself = s.take(1) else { Issue.record("nothing started for 1"); return }
        guard case .idle = s.state else { Issue.record("take drops the wish: \(s.state)"); return }
        #expect(s.beginStart() == nil, "the committer starts it; the worker must not too")

        s.want(2)
        #expect(s.beginStart() == 2)
        guard case .wait = s.take(2) else { Issue.record("the committer waits for the start under way"); return }
        guard case .wait = s.take(2) else { Issue.record("a second waiter"); return }
        #expect(s.finish("segment 2") == 2, "both waiters woken")
        guard case .ready(let segment) = s.take(2), segment == "segment 2" else { Issue.record("handed over: \(s.state)"); return }
        guard case .startItYourself = s.take(2) else { Issue.record("handed over once only"); return }

        s.want(3)
        #expect(s.beginStart() == 3)
        #expect(s.finish(nil) == 0)
        guard case .startItYourself = s.take(3) else { Issue.record("a failed start leaves it to the committer"); return }
        s.want(4)
        #expect(s.beginStart() == 4)
        #expect(s.finish("segment 4") == 0)
        #expect(s.leftover == "segment 4", "a segment never taken is closed at stop")
    }
}

extension EncodedRecords {
    /// Adds bytes as one record (the queue test needs only sizes).
    mutating func appendVerbatim(_ record: [UInt8]) {
        records.append((bytes.count, record.count, 0))
        bytes.append(contentsOf: record)
    }
}

extension CommitQueue.NextStep {
    static let sleepStep = CommitQueue.NextStep.sleep
    static let exitStep = CommitQueue.NextStep.exit
    static func == (a: CommitQueue.NextStep, b: CommitQueue.NextStep) -> Bool {
        switch (a, b) {
        case (.sleep, .sleep), (.exit, .exit): return true
        default: return false
        }
    }
}
