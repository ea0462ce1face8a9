import JellyCore

/// Streams (docs/streams.md), as executable cases for every backend.
extension ConformanceSuite {
    static let streamCases: [ConformanceCase] = [
        ConformanceCase(name: "frames come back in order with increasing sequences, times and base versions, a page at a time") { h in
            let s = h.store
            let empty = try await s.readFrames(partition: "p", stream: "pos", from: 0, limit: 10)
            try expect(empty.frames.isEmpty && empty.first == 0, "a stream nobody appended to is empty: \(empty)")
            var seqs: [UInt64] = []
            for i in 0..<5 { seqs.append(try await s.appendFrame(partition: "p", stream: "pos", bytes("f\(i)"), baseVersion: UInt64(i))) }
            try expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "sequences increase: \(seqs)")
            let batch = try await s.appendFrames(partition: "p", stream: "pos", [FrameInput(bytes("b0")), FrameInput(bytes("b1"), baseVersion: 9)], lockToken: nil, retention: nil, durable: true)
            try expect(batch.count == 2 && batch[0] > seqs[4] && batch[1] > batch[0], "a batch's sequences follow: \(batch)")
            let all = try await s.readFrames(partition: "p", stream: "pos", from: 0, limit: 100)
            try expect(all.frames.map(\.value) == ["f0", "f1", "f2", "f3", "f4", "b0", "b1"].map(bytes), "everything, in order: \(all.frames.map { String(decoding: $0.value, as: UTF8.self) })")
            try expect(all.frames.map(\.seq) == seqs + batch, "with their sequences")
            try expect(all.frames.map(\.baseVersion) == [0, 1, 2, 3, 4, 0, 9], "and base versions")
            try expect(all.frames.allSatisfy { $0.timeMilliseconds == h.clock.nowMilliseconds() }, "commit time from the store's clock")
            try expect(all.first == seqs[0] && all.next == batch[1] + 1, "first \(all.first) next \(all.next)")
            let page1 = try await s.readFrames(partition: "p", stream: "pos", from: 0, limit: 3)
            try expect(page1.frames.map(\.seq) == Array(seqs.prefix(3)), "a page: \(page1.frames.map(\.seq))")
            let page2 = try await s.readFrames(partition: "p", stream: "pos", from: page1.next, limit: 3)
            try expect(page2.frames.map(\.seq) == [seqs[3], seqs[4], batch[0]], "the next page from next: \(page2.frames.map(\.seq))")
            let mid = try await s.readFrames(partition: "p", stream: "pos", from: seqs[2], limit: 2)
            try expect(mid.frames.map(\.seq) == [seqs[2], seqs[3]], "from any sequence")
            let end = try await s.readFrames(partition: "p", stream: "pos", from: all.next, limit: 10)
            try expect(end.frames.isEmpty && end.next >= all.next, "past the end: nothing, next \(end.next)")
            try expect(try await s.readFrames(partition: "p", stream: "other", from: 0, limit: 10).frames.isEmpty, "streams are apart")
            try expect(try await s.readFrames(partition: "q", stream: "pos", from: 0, limit: 10).frames.isEmpty, "partitions are apart")
            try expect(try await s.list(partition: "p", after: nil, limit: 100).objects.isEmpty, "frames are not objects")
            try expect(try await s.changes(partition: "p", since: 0).changes.isEmpty, "nor changes")
            try await h.restart()
            let again = try await h.store.readFrames(partition: "p", stream: "pos", from: 0, limit: 100)
            try expect(again == all, "a restart keeps every frame: \(again.frames.count)")
            let after = try await h.store.appendFrame(partition: "p", stream: "pos", bytes("z"))
            try expect(after > batch[1], "and sequences go on increasing: \(after)")
        },
        ConformanceCase(name: "a stale holder's frames are refused like its saves: after a transfer, after expiry, and without a token while locked") { h in
            let s = h.store
            let lock = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 1000)
            let mine = try await s.appendFrame(partition: "p", stream: "pos", bytes("a"), lockToken: lock.token)
            try await expectError(.locked, "no token while locked") { try await s.appendFrame(partition: "p", stream: "pos", bytes("x")) }
            try await expectError(.locked, "a made-up token") { try await s.appendFrame(partition: "p", stream: "pos", bytes("x"), lockToken: LockToken(lock.token.rawValue + 1000)) }
            let moved = try await s.transferLock(partition: "p", token: lock.token, to: "server-2", ttlMilliseconds: 1000)
            try await expectError(.locked, "the old holder after the transfer") { try await s.appendFrame(partition: "p", stream: "pos", bytes("old"), lockToken: lock.token) }
            try await expectError(.locked, "and its batch") {
                try await s.appendFrames(partition: "p", stream: "pos", [FrameInput(bytes("old1")), FrameInput(bytes("old2"))], lockToken: lock.token, retention: nil, durable: false)
            }
            try await expectError(.locked, "and its trim") { try await s.trimStream(partition: "p", stream: "pos", before: nil, lockToken: lock.token) }
            let theirs = try await s.appendFrame(partition: "p", stream: "pos", bytes("b"), lockToken: moved.token)
            h.clock.advance(milliseconds: 1000)
            try await expectError(.locked, "the new holder once its lease expired") { try await s.appendFrame(partition: "p", stream: "pos", bytes("late"), lockToken: moved.token) }
            let free = try await s.appendFrame(partition: "p", stream: "pos", bytes("c"))
            let all = try await s.readFrames(partition: "p", stream: "pos", from: 0, limit: 100)
            try expect(all.frames.map(\.value) == ["a", "b", "c"].map(bytes) && all.frames.map(\.seq) == [mine, theirs, free], "only accepted frames: \(all.frames.map { String(decoding: $0.value, as: UTF8.self) })")
        },
        ConformanceCase(name: "retention keeps the newest frames within the stream's bound, and a later append may change it") { h in
            let s = h.store
            let three = StreamRetention(frames: 3, bytes: 1 << 20, ageMilliseconds: 3_600_000)
            var seqs: [UInt64] = []
            seqs += try await s.appendFrames(partition: "p", stream: "r", [FrameInput(bytes("0"))], lockToken: nil, retention: three, durable: false)
            for i in 1..<6 { seqs.append(try await s.appendFrame(partition: "p", stream: "r", bytes("\(i)"))) }
            let kept = try await s.readFrames(partition: "p", stream: "r", from: 0, limit: 100)
            try expect(kept.frames.map(\.value) == ["3", "4", "5"].map(bytes), "the newest three: \(kept.frames.map { String(decoding: $0.value, as: UTF8.self) })")
            try expect(kept.first == seqs[3], "first is the oldest kept: \(kept.first)")
            let fromDropped = try await s.readFrames(partition: "p", stream: "r", from: seqs[1], limit: 100)
            try expect(fromDropped.first > seqs[1] && fromDropped.frames.first?.seq == seqs[3], "reading from a dropped frame starts at the oldest kept")
            try expect(try await s.readFrames(partition: "p", stream: "other", from: 0, limit: 10).frames.isEmpty, "other streams keep their default")
            for i in 0..<5 { try await s.appendFrame(partition: "p", stream: "other", bytes("o\(i)")) }
            try expect(try await s.readFrames(partition: "p", stream: "other", from: 0, limit: 10).frames.count == 5, "the default keeps them")
            try await h.restart()
            try await h.store.appendFrame(partition: "p", stream: "r", bytes("6"))
            let after = try await h.store.readFrames(partition: "p", stream: "r", from: 0, limit: 100)
            try expect(after.frames.map(\.value) == ["4", "5", "6"].map(bytes), "the retention survives a restart: \(after.frames.map { String(decoding: $0.value, as: UTF8.self) })")
            let two = StreamRetention(frames: 2, bytes: 1 << 20, ageMilliseconds: 3_600_000)
            try await h.store.appendFrames(partition: "p", stream: "r", [FrameInput(bytes("7"))], lockToken: nil, retention: two, durable: false)
            let fewer = try await h.store.readFrames(partition: "p", stream: "r", from: 0, limit: 100)
            try expect(fewer.frames.map(\.value) == ["6", "7"].map(bytes), "a smaller bound applies at once: \(fewer.frames.map { String(decoding: $0.value, as: UTF8.self) })")
            try await expectError(.invalidArgument, "a retention of 0 frames") {
                try await h.store.appendFrames(partition: "p", stream: "r", [FrameInput(bytes("x"))], lockToken: nil, retention: StreamRetention(frames: 0, bytes: 1, ageMilliseconds: 1), durable: false)
            }
        },
        ConformanceCase(name: "a trim drops the frames below a sequence; removing a stream drops them all") { h in
            let s = h.store
            var seqs: [UInt64] = []
            for i in 0..<6 { seqs.append(try await s.appendFrame(partition: "p", stream: "t", bytes("\(i)"))) }
            try await s.trimStream(partition: "p", stream: "t", before: seqs[2], lockToken: nil)
            let trimmed = try await s.readFrames(partition: "p", stream: "t", from: 0, limit: 100)
            try expect(trimmed.frames.map(\.seq) == Array(seqs[2...]) && trimmed.first == seqs[2], "below the sequence gone: \(trimmed.frames.map(\.seq))")
            try await h.restart()
            try expect(try await h.store.readFrames(partition: "p", stream: "t", from: 0, limit: 100) == trimmed, "a trim survives a restart")
            try await h.store.trimStream(partition: "p", stream: "t", before: nil, lockToken: nil)
            let gone = try await h.store.readFrames(partition: "p", stream: "t", from: 0, limit: 100)
            try expect(gone.frames.isEmpty && gone.first == 0, "removed: \(gone)")
            let fresh = try await h.store.appendFrame(partition: "p", stream: "t", bytes("new"))
            try expect(fresh > seqs[5], "a stream made again goes on above the old sequences")
            try await h.restart()
            let back = try await h.store.readFrames(partition: "p", stream: "t", from: 0, limit: 100)
            try expect(back.frames.map(\.value) == [bytes("new")], "after a restart only the new frame: \(back.frames.map(\.seq))")
        },
        ConformanceCase(name: "a wait for frames is woken by the append and times out otherwise") { h in
            let s = h.store
            let first = try await s.appendFrame(partition: "p", stream: "w", bytes("a"))
            try expect(try await s.waitForFrames(partition: "p", stream: "w", after: 0, timeoutMilliseconds: 5000), "a frame above 0 is there already")
            let t0 = ContinuousClock.now
            try expect(!(try await s.waitForFrames(partition: "p", stream: "w", after: first, timeoutMilliseconds: 100)), "nothing newer: timed out")
            try expect(ContinuousClock.now - t0 >= .milliseconds(90), "after the timeout")
            // Woken, not timed out: the wait allows a minute; a loaded machine may take seconds.
            let waiter = Task { try await s.waitForFrames(partition: "p", stream: "w", after: first, timeoutMilliseconds: 60_000) }
            try await Task.sleep(for: .milliseconds(100))
            let t1 = ContinuousClock.now
            try await s.appendFrame(partition: "p", stream: "other", bytes("x"))
            try await s.appendFrame(partition: "p", stream: "w", bytes("b"))
            let woken = try await waiter.value
            let waited = ContinuousClock.now - t1
            try expect(woken && waited < .seconds(45), "woken by the append (\(woken) after \(waited))")
        },
        ConformanceCase(name: "bad stream input is refused and writes nothing") { h in
            let s = h.store
            let limits = s.limits
            try await expectError(.tooLarge, "a frame over frameBytesMax") {
                try await s.appendFrame(partition: "p", stream: "s", [UInt8](repeating: 1, count: limits.frameBytesMax + 1))
            }
            try await expectError(.invalidArgument, "an empty append") { try await s.appendFrames(partition: "p", stream: "s", [], lockToken: nil, retention: nil, durable: false) }
            try await expectError(.invalidArgument, "a stream name with /") { try await s.appendFrame(partition: "p", stream: "a/b", bytes("x")) }
            try await expectError(.invalidArgument, "an empty stream name") { try await s.readFrames(partition: "p", stream: "", from: 0, limit: 1) }
            try await expectError(.invalidArgument, "a bad partition") { try await s.appendFrame(partition: "..", stream: "s", bytes("x")) }
            try expect(try await s.readFrames(partition: "p", stream: "s", from: 0, limit: 10).frames.isEmpty, "nothing was written")
            let big = try await s.appendFrame(partition: "p", stream: "s", [UInt8](repeating: 7, count: limits.frameBytesMax))
            try expect(try await s.readFrames(partition: "p", stream: "s", from: big, limit: 1).frames.first?.value.count == limits.frameBytesMax, "a frame of exactly the limit is fine")
        },
    ]
}
