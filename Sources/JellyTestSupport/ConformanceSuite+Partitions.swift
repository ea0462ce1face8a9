import JellyCore

extension ConformanceSuite {
    /// The store-wide partition listing (`listPartitions`), for operators and the console.
    static let partitionCases: [ConformanceCase] = [
        ConformanceCase(name: "partitions are listed in byte order with their objects and live lock") { h in
            let s = h.store
            let empty = try await s.listPartitions(prefix: nil, after: nil, limit: 10)
            try expect(empty.partitions.isEmpty && empty.next == nil, "a new store lists \(empty)")
            try await s.put(partition: "player-a", key: "x", value: bytes("1"))
            try await s.put(partition: "player-a", key: "y", value: bytes("2"))
            try await s.put(partition: "player-b", key: "z", value: bytes("3"))
            let lock = try await s.acquireLock(partition: "player-c", owner: "gs-1", ttlMilliseconds: 5_000)
            try await s.put(partition: "player-d", key: "w", value: bytes("4"))
            _ = try await s.delete(partition: "player-d", key: "w")
            try await s.put(partition: "zone-1", key: "k", value: bytes("5"))

            let first = try await s.listPartitions(prefix: nil, after: nil, limit: 2)
            try expect(first.partitions.map(\.partition) == ["player-a", "player-b"] && first.next == "player-b", "first page \(first)")
            try expect(first.partitions.map(\.objects) == [2, 1] && first.partitions.allSatisfy { $0.lock == nil }, "counts \(first)")
            let rest = try await s.listPartitions(prefix: nil, after: first.next, limit: 10)
            // player-d holds only a delete: not listed. player-c holds only a lock: listed.
            try expect(rest.partitions.map(\.partition) == ["player-c", "zone-1"] && rest.next == nil, "second page \(rest)")
            try expect(rest.partitions[0].objects == 0 && rest.partitions[0].lock?.owner == "gs-1", "the lock \(rest.partitions[0])")
            let players = try await s.listPartitions(prefix: "player-", after: nil, limit: 10)
            try expect(players.partitions.map(\.partition) == ["player-a", "player-b", "player-c"], "prefix \(players)")

            // An expired lock no longer lists an otherwise empty partition; a released one neither.
            h.clock.advance(milliseconds: 5_001)
            let after = try await s.listPartitions(prefix: "player-c", after: nil, limit: 10)
            try expect(after.partitions.isEmpty, "an expired lock keeps player-c listed: \(after)")
            _ = lock
            // Any text is a cursor: "player-b/" sorts after player-b and before player-c.
            let fromText = try await s.listPartitions(prefix: nil, after: "player-b/", limit: 10)
            try expect(fromText.partitions.map(\.partition) == ["zone-1"], "after a cursor that names no partition: \(fromText)")
        },
    ]
}
