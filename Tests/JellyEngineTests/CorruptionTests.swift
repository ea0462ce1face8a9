import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// A flipped byte in a sealed segment or a hint file is found, with the file and offset, by
/// open (hints always; segments with `verifyAllSegmentsOnOpen`), by the read that meets it,
/// and by `jelly check`.
@Suite struct CorruptionTests {
    /// A closed store with several sealed segments; returns the harness and the keys written.
    private func storeWithSealedSegments() async throws -> (EmbeddedStoreHarness, [String]) {
        let h = try EmbeddedStoreHarness()
        var keys: [String] = []
        for i in 0..<400 {
            keys.append("k\(i)")
            try await h.store.put(partition: "p", key: "k\(i)", value: [UInt8](repeating: UInt8(i % 251), count: 1000))
        }
        try await h.embedded.close()
        #expect(try segmentPaths(h.directory.path).count >= 3)
        return (h, keys)
    }

    @Test func flippedByteInASealedSegment() async throws {
        let (h, keys) = try await storeWithSealedSegments()
        defer { h.directory.remove() }
        let sealed = try segmentPaths(h.directory.path)[0]
        let data = try readFileBytes(sealed)
        // Inside a record in the middle of the segment (a block header is found only by a full
        // scan: see flippedByteInABlockHeader).
        let blocks = blockOffsets(data, segment: 1)
        let target = blocks[blocks.count / 2] + Format.blockHeaderBytes + 200
        try patchFile(sealed, at: target, with: [data[target] ^ 0x01])
        let name = String(sealed.split(separator: "/").last ?? "")

        // jelly check: exit status and the file and offset.
        let report = try StoreChecker.check(directory: h.directory.path)
        #expect(!report.isConsistent)
        #expect(report.problems.contains { $0.contains(name) && $0.contains("offset") }, "\(report.problems)")

        // Open with full verification refuses, naming the file and the block's offset.
        var strict = h.configuration
        strict.verifyAllSegmentsOnOpen = true
        let error = try await expectJellyError { try EmbeddedStore.open(strict) }
        #expect(error.code == .corruption && error.message.contains(name) && error.message.contains("offset"), "\(error.message)")

        // The default open trusts the checksummed hints; reading the damaged record reports it.
        let store = try EmbeddedStore.open(h.configuration)
        var found: JellyError?
        for key in keys {
            do { _ = try await store.get(partition: "p", key: key) } catch let e as JellyError { found = e; break }
        }
        #expect(found?.code == .corruption && found?.message.contains(name) == true, "\(String(describing: found))")
        try await store.close()
    }

    @Test func flippedByteInABlockHeaderOrPadding() async throws {
        let (h, _) = try await storeWithSealedSegments()
        defer { h.directory.remove() }
        let sealed = try segmentPaths(h.directory.path)[0]
        let data = try readFileBytes(sealed)
        let blocks = blockOffsets(data, segment: 1)
        for target in [blocks[blocks.count / 2] + 17, blocks[1] - 1] {
            try patchFile(sealed, at: target, with: [data[target] ^ 0x08])
            let report = try StoreChecker.check(directory: h.directory.path)
            #expect(report.problems.contains { $0.contains("offset") }, "byte \(target): \(report.problems)")
            var strict = h.configuration
            strict.verifyAllSegmentsOnOpen = true
            let error = try await expectJellyError { try EmbeddedStore.open(strict) }
            #expect(error.code == .corruption)
            try patchFile(sealed, at: target, with: [data[target]])
        }
        #expect(try StoreChecker.check(directory: h.directory.path).isConsistent)
    }

    @Test func flippedByteInAHintFile() async throws {
        let (h, _) = try await storeWithSealedSegments()
        defer { h.directory.remove() }
        let hint = try hintPaths(h.directory.path)[0]
        let data = try readFileBytes(hint)
        let target = data.count / 2
        try patchFile(hint, at: target, with: [data[target] ^ 0x40])
        let name = String(hint.split(separator: "/").last ?? "")
        let error = try await expectJellyError { try EmbeddedStore.open(h.configuration) }
        #expect(error.code == .corruption && error.message.contains(name) && error.message.contains("offset"), "\(error.message)")
        #expect(error.message.contains("delete the file"), "says what to do: \(error.message)")
        let report = try StoreChecker.check(directory: h.directory.path)
        #expect(!report.isConsistent && report.problems.contains { $0.contains(name) })
        // Following the advice recovers the store.
        try PosixStorage().remove(hint)
        let store = try EmbeddedStore.open(h.configuration)
        #expect(try await store.list(partition: "p", after: nil, limit: 1000).objects.count == 400)
        try await store.close()
        #expect(try StoreChecker.check(directory: h.directory.path).isConsistent)
    }

    @Test func truncatedSealedSegment() async throws {
        let (h, _) = try await storeWithSealedSegments()
        defer { h.directory.remove() }
        let sealed = try segmentPaths(h.directory.path)[0]
        let file = try PosixStorage().openWrite(path: sealed, truncate: false)
        try file.truncate(to: try file.size() / 2)
        file.close()
        let error = try await expectJellyError { try EmbeddedStore.open(h.configuration) }
        #expect(error.code == .corruption && error.message.contains("cut short"), "\(error.message)")
        #expect(!(try StoreChecker.check(directory: h.directory.path).isConsistent))
    }
}

@Suite struct CompactionTests {
    @Test func compactionReclaimsSpaceAndKeepsEveryValue() async throws {
        // Tombstones go as soon as they hide nothing (no retention for the change feed).
        let h = try EmbeddedStoreHarness { $0.compaction.tombstoneRetentionMilliseconds = 0 }
        var expected: [String: [UInt8]] = [:]
        for i in 0..<2000 {
            let key = "k\(i % 40)"
            let value = [UInt8](repeating: UInt8(i % 256), count: 600 + i % 300)
            try await h.store.put(partition: "p\(i % 4)", key: key, value: value)
            expected["p\(i % 4)/\(key)"] = value
        }
        // Deletes: tombstones must keep older values from coming back.
        for i in 0..<10 {
            try await h.store.delete(partition: "p\(i % 4)", key: "k\(i)")
            expected["p\(i % 4)/k\(i)"] = nil
        }
        let before = h.embedded.info()
        #expect(before.garbageRatio > 0.5)
        let report = try await h.embedded.compact()
        let after = h.embedded.info()
        #expect(report.segmentsCompacted > 0 && report.bytesReclaimed > 0)
        #expect(after.segmentBytes < before.segmentBytes / 2, "disk use \(before.segmentBytes) → \(after.segmentBytes)")
        try await verify(h.store, expected)
        try await h.restart()
        try await verify(h.store, expected)
        // A second compaction after restart drops the tombstones that no longer hide anything.
        _ = try await h.embedded.compact()
        try await h.restart()
        try await verify(h.store, expected)
        await h.finish()

    }

    @Test func compactionRunsWhileWritersWrite() async throws {
        let h = try EmbeddedStoreHarness { $0.compaction.automatic = true; $0.compaction.checkIntervalMilliseconds = 5 }
        let store = h.store
        let finalValues = try await withThrowingTaskGroup(of: (String, [UInt8]).self) { group in
            for w in 0..<8 {
                group.addTask {
                    var last: [UInt8] = []
                    for i in 0..<300 {
                        last = [UInt8](repeating: UInt8((w * 31 + i) % 256), count: 800)
                        try await store.put(partition: "w\(w)", key: "state", value: last)
                    }
                    return ("w\(w)", last)
                }
            }
            var all: [(String, [UInt8])] = []
            for try await r in group { all.append(r) }
            return all
        }
        for (partition, value) in finalValues {
            #expect(try await store.get(partition: partition, key: "state")?.value == value)
        }
        #expect(h.embedded.info().segmentsCompacted > 0, "background compaction ran")
        try await h.restart()
        for (partition, value) in finalValues {
            #expect(try await h.store.get(partition: partition, key: "state")?.value == value)
        }
        await h.finish()
    }

    /// Compaction keeps its output segment open between rounds. A crash then leaves it unsealed,
    /// without a hint, maybe with a torn block after its last sync: `jelly check` accepts that,
    /// and open seals it where its valid data ends and keeps every value.
    @Test func crashWithTheCompactionOutputOpen() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: ManualClock())
        let store = try EmbeddedStore.open(config)
        var expected: [String: [UInt8]] = [:]
        for i in 0..<1500 {
            let value = [UInt8](repeating: UInt8(i % 251), count: 500 + i % 400)
            try await store.put(partition: "p\(i % 3)", key: "k\(i % 30)", value: value)
            expected["p\(i % 3)/k\(i % 30)"] = value
        }
        let report = try await store.compact()
        #expect(report.bytesMoved > 0)
        let outputs = try segmentPaths(dir.path).filter { path in
            parseSegmentName(String(path.split(separator: "/").last ?? ""), suffix: ".log").map(isCompactionOutput) ?? false
        }
        #expect(outputs.count == 1, "one output holds every copy: \(outputs)")
        let output = try #require(outputs.last)
        #expect(!PosixStorage().fileExists(output.replacingOccurrences(of: ".log", with: ".hint")), "the output is still open")
        store.crashForTesting()
        _ = try fault.crash { _ in 0 }

        // Half a block written after the output's last sync.
        let dataEnd = try SegmentFiles.scan(SegmentFiles.readAll(PosixStorage(), path: output), path: output, mayBeUnsealed: true).dataEnd
        let file = try PosixStorage().openWrite(path: output, truncate: false)
        try [UInt8](repeating: 0xAB, count: 2000).withUnsafeBytes { try file.write($0, at: Int64(dataEnd)) }
        file.close()
        let checked = try StoreChecker.check(directory: dir.path)
        #expect(checked.isConsistent, "\(checked.problems)")
        #expect(checked.notes.contains { $0.contains("torn write at the end of the compaction output") }, "\(checked.notes)")

        let reopened = try EmbeddedStore.open(config)
        #expect(reopened.recoveryNotes.contains { $0.contains("torn") }, "\(reopened.recoveryNotes)")
        #expect(PosixStorage().fileExists(output.replacingOccurrences(of: ".log", with: ".hint")), "sealed by open")
        try await verify(reopened, expected, partitions: 3)
        try await reopened.close()
        #expect(try StoreChecker.check(directory: dir.path).isConsistent)
    }

    /// A read looks a record up, then reads it on a read thread. Compaction may move the record
    /// and the log may reuse its old file in between: the read must find the record where it is
    /// now, not report the reused file as corruption.
    @Test func readAfterTheRecordsFileWasReused() async throws {
        let h = try EmbeddedStoreHarness()
        let kept = [UInt8](repeating: 0x4B, count: 3000)
        try await h.store.put(partition: "p", key: "kept", value: kept)
        for i in 0..<200 { try await h.store.put(partition: "p", key: "hot\(i % 5)", value: [UInt8](repeating: UInt8(i % 256), count: 3000)) }
        let (stale, staleReader) = try #require(try h.embedded.lookup(partition: "p", key: "kept"))
        _ = try await h.embedded.compact()
        // Enough writes for the log to take every spare file, the old one included.
        for i in 0..<600 { try await h.store.put(partition: "q", key: "fill\(i % 7)", value: [UInt8](repeating: 0xEE, count: 3000)) }
        let (now, _) = try #require(try h.embedded.lookup(partition: "p", key: "kept"))
        #expect(now.segment != stale.segment, "compaction moved the record")
        #expect(throws: JellyError.self, "the old location now holds other records") {
            try h.embedded.readObject(entry: stale, reader: staleReader, partition: "p", key: "kept")
        }
        #expect(try h.embedded.readCurrent(entry: stale, reader: staleReader, partition: "p", key: "kept")?.value == kept)
        await h.finish()
    }

    /// A put sealed in one segment, its delete in another, and compaction of the second only:
    /// the tombstone still hides the put, so it must be kept, and the key stays deleted after
    /// the next open replays both segments.
    @Test func aTombstoneIsKeptWhileTheRecordItHidesIsOnDisk() async throws {
        let h = try EmbeddedStoreHarness { $0.compaction.tombstoneRetentionMilliseconds = 0 }
        let value = [UInt8](repeating: 0x47, count: 3000)
        let first = h.embedded.activeSegment
        try await h.store.put(partition: "p", key: "gone", value: value)
        var n = 0
        while h.embedded.activeSegment == first {
            try await h.store.put(partition: "p", key: "hot", value: [UInt8](repeating: UInt8(n % 256), count: 3000))
            n += 1
        }
        // The first segment is mostly garbage: compaction copies `gone` into its output, which
        // stays open (unsealed, so no later compaction picks it).
        let copied = try await h.embedded.compact()
        #expect(copied.segmentsCompacted == 1)
        let (moved, _) = try #require(try h.embedded.lookup(partition: "p", key: "gone"))
        try #require(isCompactionOutput(moved.segment), "the put now lives in the open compaction output")

        let second = h.embedded.activeSegment
        #expect(try await h.store.delete(partition: "p", key: "gone"))
        while h.embedded.activeSegment == second {
            try await h.store.put(partition: "p", key: "hot", value: [UInt8](repeating: UInt8(n % 256), count: 3000))
            n += 1
        }
        let report = try await h.embedded.compact()
        #expect(report.segmentsCompacted == 1, "only the tombstone's segment was compacted")
        #expect(try await h.store.get(partition: "p", key: "gone") == nil)

        try await h.restart()
        #expect(try await h.store.get(partition: "p", key: "gone") == nil, "the deleted key came back after compaction dropped its tombstone")
        #expect(try await h.store.list(partition: "p", after: nil, limit: 10).objects.map(\.key) == ["hot"])
        // Once the put's segment is compacted too, the tombstone may go, and the key stays deleted.
        _ = try await h.embedded.compact()
        _ = try await h.embedded.compact()
        try await h.restart()
        #expect(try await h.store.get(partition: "p", key: "gone") == nil)
        await h.finish()
    }

    @Test func leasesSurviveCompaction() async throws {
        let h = try EmbeddedStoreHarness()
        let lock = try await h.store.acquireLock(partition: "held", owner: "s1", ttlMilliseconds: 60_000)
        for i in 0..<1500 { try await h.store.put(partition: "noise", key: "k\(i % 10)", value: [UInt8](repeating: 1, count: 900)) }
        _ = try await h.embedded.compact()
        try await h.restart()
        #expect(try await h.store.inspectLock(partition: "held") == lock)
        let next = try await h.store.acquireLock(partition: "other", owner: "s1", ttlMilliseconds: 1000)
        #expect(next.token > lock.token)
        await h.finish()
    }

    private func verify(_ store: any JellyStore, _ expected: [String: [UInt8]], partitions: Int = 4) async throws {
        for p in 0..<partitions {
            let listed = try await store.list(partition: "p\(p)", after: nil, limit: 1000).objects.map(\.key)
            let want = expected.keys.filter { $0.hasPrefix("p\(p)/") }.map { String($0.dropFirst(3)) }
            #expect(Set(listed) == Set(want), "p\(p) lists \(listed.count) keys, expected \(want.count)")
        }
        for (path, value) in expected {
            let parts = path.split(separator: "/")
            #expect(try await store.get(partition: String(parts[0]), key: String(parts[1]))?.value == value, "\(path)")
        }
    }
}
