#if canImport(Glibc)
import Glibc
#endif
import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// The embedded store's stream log (`frames/`): the age and byte bounds, files deleted once
/// nothing in them is kept, torn tails cut at open, damage elsewhere reported.
@Suite struct StreamLogTests {
    func values(_ page: FramePage) -> [String] { page.frames.map { String(decoding: $0.value, as: UTF8.self) } }

    @Test func theAgeBoundDropsOldFramesAsTimePasses() async throws {
        let h = try EmbeddedStoreHarness()
        defer { Task { await h.finish() } }
        let s = h.store
        let minute = StreamRetention(frames: 1000, bytes: 1 << 20, ageMilliseconds: 60_000)
        try await s.appendFrames(partition: "p", stream: "a", [FrameInput(bytes("old"))], lockToken: nil, retention: minute, durable: false)
        h.clock.advance(milliseconds: 30_000)
        try await s.appendFrame(partition: "p", stream: "a", bytes("mid"))
        h.clock.advance(milliseconds: 30_001)
        try await s.appendFrame(partition: "p", stream: "a", bytes("new"))
        #expect(values(try await s.readFrames(partition: "p", stream: "a", from: 0, limit: 10)) == ["mid", "new"], "the frame older than a minute is gone")
        h.clock.advance(milliseconds: 60_001)
        #expect(try await s.readFrames(partition: "p", stream: "a", from: 0, limit: 10).frames.isEmpty, "and the rest, a minute later, without an append")
        try await h.restart()
        #expect(try await h.store.readFrames(partition: "p", stream: "a", from: 0, limit: 10).frames.isEmpty, "and after a restart")
    }

    @Test func theByteBoundCountsValues() async throws {
        let h = try EmbeddedStoreHarness()
        defer { Task { await h.finish() } }
        let tenBytes = StreamRetention(frames: 1000, bytes: 10, ageMilliseconds: 60_000)
        try await h.store.appendFrames(partition: "p", stream: "b", [FrameInput(bytes("aaaa"))], lockToken: nil, retention: tenBytes, durable: false)
        for v in ["bbbb", "cccc", "dd"] { try await h.store.appendFrame(partition: "p", stream: "b", bytes(v)) }
        #expect(values(try await h.store.readFrames(partition: "p", stream: "b", from: 0, limit: 10)) == ["bbbb", "cccc", "dd"], "10 bytes: the newest three")
    }

    @Test func filesAreDeletedOnceNothingInThemIsKept() async throws {
        let h = try EmbeddedStoreHarness { $0.streams.fileBytes = 1 << 20; $0.limits.frameBytesMax = 512 }
        defer { Task { await h.finish() } }
        let s = h.store
        let few = StreamRetention(frames: 100, bytes: 1 << 30, ageMilliseconds: 3_600_000)
        let custom = StreamRetention(frames: 5, bytes: 1 << 30, ageMilliseconds: 3_600_000)
        try await s.appendFrames(partition: "p", stream: "keep", [FrameInput(bytes("k"))], lockToken: nil, retention: custom, durable: false)
        let frame = [UInt8](repeating: 7, count: 500)
        var last: UInt64 = 0
        for _ in 0..<20 {
            let batch = [FrameInput](repeating: FrameInput(frame), count: 500)
            last = try await s.appendFrames(partition: "p", stream: "busy", batch, lockToken: nil, retention: few, durable: false).last ?? 0
        }
        // 10,000 frames of ~560 bytes went through 1 MiB files; 100 are kept. The writer deletes
        // files on its one-second round.
        let dir = h.directory.path + "/frames"
        var files: [String] = []
        for _ in 0..<50 {
            files = try PosixStorage().listDirectory(dir)
            if files.count <= 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(files.count <= 3, "the files holding only dropped frames are gone: \(files)")
        let kept = try await s.readFrames(partition: "p", stream: "busy", from: 0, limit: 1000)
        #expect(kept.frames.count == 100 && kept.frames.last?.seq == last, "the newest 100 are still there")
        #expect(values(try await s.readFrames(partition: "p", stream: "keep", from: 0, limit: 10)) == ["k"], "the quiet stream's frame was moved forward, not lost, and did not hold the files")
        #expect(!files.contains("00000001.frames"), "the first file is gone: \(files)")
        try await h.restart()
        // The custom retention (5 frames) was written in the first file, which is gone: the
        // checkpoint at the start of each file carries it.
        for i in 0..<8 { try await h.store.appendFrame(partition: "p", stream: "keep", bytes("\(i)")) }
        #expect(values(try await h.store.readFrames(partition: "p", stream: "keep", from: 0, limit: 10)) == ["3", "4", "5", "6", "7"], "the retention outlived its file")
        #expect(try await h.store.readFrames(partition: "p", stream: "keep", from: 0, limit: 10).frames.count == 5)
        let again = try await h.store.readFrames(partition: "p", stream: "busy", from: 0, limit: 1000)
        #expect(again == kept, "a restart keeps what was kept")
    }

    @Test func anAppendLargerThanAFileGoesIntoAFileOfItsOwn() async throws {
        let h = try EmbeddedStoreHarness { $0.streams.fileBytes = 1 << 20; $0.limits.frameBytesMax = 1 << 20 }
        defer { Task { await h.finish() } }
        try await h.store.appendFrame(partition: "p", stream: "big", bytes("small"))
        let big = [UInt8](repeating: 9, count: 900 << 10)
        let seqs = try await h.store.appendFrames(partition: "p", stream: "big", [FrameInput(big), FrameInput(big)], lockToken: nil, retention: nil, durable: true)
        try await h.store.appendFrame(partition: "p", stream: "big", bytes("after"))
        let values = try await h.store.readAllFrames(partition: "p", stream: "big").map(\.value)
        #expect(values == [bytes("small"), big, big, bytes("after")] && seqs.count == 2, "\(values.map(\.count))")
        try await h.restart()
        #expect(try await h.store.readAllFrames(partition: "p", stream: "big").map(\.value) == values, "and after a restart")
    }

    @Test func aTornTailIsCutAndDamageElsewhereIsReported() async throws {
        let h = try EmbeddedStoreHarness { $0.streams.fileBytes = 1 << 20; $0.limits.frameBytesMax = 512 }
        defer { Task { await h.finish() } }
        var seqs: [UInt64] = []
        for i in 0..<10 { seqs.append(try await h.store.appendFrame(partition: "p", stream: "t", bytes("frame-\(i)"), durable: true)) }
        h.embedded.crashForTesting()
        let path = h.directory.path + "/frames/00000001.frames"
        // Half a record after the last one: a crash mid-write.
        let fd = open(path, O_WRONLY | O_APPEND)
        let junk = [UInt8](repeating: 0x41, count: 30)
        _ = junk.withUnsafeBytes { write(fd, $0.baseAddress, 30) }
        close(fd)
        try await h.reopenAfterCrash()
        #expect(h.embedded.recoveryNotes.contains { $0.contains("cut 30 bytes") }, "the torn tail was cut: \(h.embedded.recoveryNotes)")
        let page = try await h.store.readFrames(partition: "p", stream: "t", from: 0, limit: 100)
        #expect(page.frames.map(\.seq) == seqs, "every frame before it is there")
        let next = try await h.store.appendFrame(partition: "p", stream: "t", bytes("after"))
        #expect(next > seqs.last ?? 0, "appends continue after it")
        // A flipped byte inside a record that is not at the end: corruption, with the file.
        try await h.close()
        let f = open(path, O_RDWR)
        var b: UInt8 = 0
        _ = pread(f, &b, 1, 60)
        b ^= 0xFF
        _ = pwrite(f, &b, 1, 60)
        close(f)
        // A second file, so the damaged one is not the newest.
        var config = h.configuration
        config.streams.fileBytes = 1 << 20
        let other = h.directory.path + "/frames/00000002.frames"
        let fd2 = open(other, O_WRONLY | O_CREAT, 0o644)
        let header = FrameFormat.encodeHeader(segment: 2, createdAt: 0)
        _ = header.withUnsafeBytes { write(fd2, $0.baseAddress, header.count) }
        close(fd2)
        do {
            _ = try EmbeddedStore.open(config)
            Issue.record("a damaged record in an older file must fail the open")
        } catch let error as JellyError {
            #expect(error.code == .corruption && error.message.contains("00000001.frames at offset"), "\(error)")
        }
    }
}
