import JellyCore
import JellyEngine
import JellyTestSupport
import Testing

/// Tombstones and the change feed's floor: compaction keeps a tombstone for its retention (and
/// within the per-partition count), then drops it and raises the partition's floor durably, so
/// a replica whose cursor is older gets a reset instead of missing the delete.
@Suite struct FeedRetentionTests {
    /// Overwrites `hot` until the active segment is sealed, so everything before is compactable
    /// and the sealed segments hold garbage.
    func sealActive(_ h: EmbeddedStoreHarness) async throws {
        let first = h.embedded.activeSegment
        var n = 0
        while h.embedded.activeSegment == first {
            try await h.store.put(partition: "p", key: "hot", value: [UInt8](repeating: UInt8(n % 256), count: 3000))
            n += 1
        }
    }

    /// Compacts everything with garbage, including what earlier compactions copied (their
    /// output is sealed by a restart, and `hot` overwritten so it holds garbage).
    func compactAll(_ h: EmbeddedStoreHarness) async throws {
        _ = try await h.embedded.compact()
        try await h.restart()
        try await sealActive(h)
        _ = try await h.embedded.compact()
    }

    @Test func aTombstoneIsKeptForItsRetentionThenRaisesTheFloor() async throws {
        let h = try EmbeddedStoreHarness { $0.compaction.tombstoneRetentionMilliseconds = 60_000 }
        defer { Task { await h.finish() } }
        try await h.store.put(partition: "p", key: "keep", value: Array("1".utf8))
        try await h.store.put(partition: "p", key: "gone", value: Array("2".utf8))
        let cursor = try await h.store.changes(partition: "p", since: 0).next
        try await sealActive(h)
        try await h.store.delete(partition: "p", key: "gone")
        try await sealActive(h)

        // Young: compaction keeps it, and a replica at `cursor` learns of the delete.
        try await compactAll(h)
        var feed = try await h.store.changes(partition: "p", since: cursor)
        #expect(!feed.reset && feed.floor == 0, "no floor yet: \(feed.floor)")
        #expect(feed.changes.contains { $0.key == "gone" && $0.deleted }, "the tombstone is in the feed: \(feed.changes.map(\.key))")

        // Old: the next compaction drops it and the floor rises to its version.
        let tombstone = feed.changes.first { $0.key == "gone" }?.version ?? 0
        h.clock.advance(milliseconds: 120_000)
        try await compactAll(h)
        feed = try await h.store.changes(partition: "p", since: cursor)
        #expect(feed.floor == tombstone, "floor \(feed.floor), tombstone \(tombstone)")
        #expect(feed.reset, "a cursor below the floor gets a reset")
        #expect(Set(feed.changes.map(\.key)) == ["keep", "hot"] && feed.changes.allSatisfy { !$0.deleted }, "the whole state: \(feed.changes.map(\.key))")
        let current = try await h.store.changes(partition: "p", since: feed.floor)
        #expect(!current.reset, "a cursor at the floor is answered exactly")

        // The floor is on disk: a restart keeps it, and a later compaction copies it on.
        try await h.restart()
        #expect(try await h.store.changes(partition: "p", since: cursor).floor == tombstone)
        try await compactAll(h)
        try await h.restart()
        let after = try await h.store.changes(partition: "p", since: cursor)
        #expect(after.floor == tombstone && after.reset, "floor after recompaction: \(after.floor)")
        #expect(try await h.store.list(partition: "p", after: nil, limit: 10).objects.map(\.key) == ["hot", "keep"], "the floor record is not an object")
    }

    @Test func aPartitionKeepsItsNewestTombstonesWithinTheCount() async throws {
        let h = try EmbeddedStoreHarness { $0.compaction.tombstonesPerPartitionMax = 2 }
        defer { Task { await h.finish() } }
        for i in 0..<5 { try await h.store.put(partition: "p", key: "k\(i)", value: [UInt8(i)]) }
        let cursor = try await h.store.changes(partition: "p", since: 0).next
        var deleted: [UInt64] = []
        for i in 0..<5 {
            try await h.store.delete(partition: "p", key: "k\(i)")
            deleted.append(try await h.store.changes(partition: "p", since: 0).next)
        }
        try await sealActive(h)
        try await compactAll(h)
        try await compactAll(h)
        let feed = try await h.store.changes(partition: "p", since: deleted[2])
        #expect(feed.floor == deleted[2], "the three oldest went: floor \(feed.floor), deletes at \(deleted)")
        #expect(feed.changes.filter(\.deleted).map(\.key) == ["k3", "k4"], "the two newest stay: \(feed.changes.map(\.key))")
        #expect(try await h.store.changes(partition: "p", since: cursor).reset, "an older cursor is reset")
        // Another partition's tombstones and floor are its own.
        #expect(try await h.store.changes(partition: "q", since: 1).floor == 0)
    }

    @Test func theEpochIsKeptAcrossRestartsAndNewForANewStore() async throws {
        let h = try EmbeddedStoreHarness()
        defer { Task { await h.finish() } }
        let epoch = try await h.store.changes(partition: "p", since: 0).epoch
        try await h.restart()
        #expect(try await h.store.changes(partition: "p", since: 0).epoch == epoch)
        let other = try EmbeddedStoreHarness()
        defer { Task { await other.finish() } }
        #expect(try await other.store.changes(partition: "p", since: 0).epoch != epoch, "two stores, two histories")
    }
}
