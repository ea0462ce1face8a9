import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Synchronization
import Testing

/// Power loss at random moments of the session workload. The storage layer drops every write
/// not covered by a completed fdatasync and every directory entry change (a new segment's name,
/// a hint's rename, a removal) not covered by a sync of its directory; the power goes off after
/// a random number of storage operations, wherever the committer, the segment starter, the hint
/// writer or compaction is. After each cut the store is reopened, every segment verified, and
/// every acknowledged save must be there.
///
/// It fails when any fdatasync on the commit path, the directory sync of a new segment, the seal
/// sync before the hint, or compaction's sync before it removes its inputs is taken out
/// (scripts/mutations.txt, `power-loss-*`).
@Suite struct PowerLossTests {
    /// One game server's view of a player: the save counter it last had acknowledged and the
    /// highest it sent.
    struct Player: Sendable {
        var acknowledged = 0
        var attempted = 0
    }

    @Test(arguments: 1...4)
    func sessionWorkloadSurvivesPowerCutsAtRandomMoments(seed: UInt64) async throws {
        var rng = SeededRandom(seed: seed &* 7919)
        let clock = ManualClock()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let made = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: clock)
        var config = made.0
        let fault = made.1
        config.segmentBytes = 128 << 10
        config.durability = .always
        config.verifyAllSegmentsOnOpen = true
        config.compaction.tombstoneRetentionMilliseconds = 0
        let playerCount = 5
        let players = Players(count: playerCount)
        var cuts: [String] = []

        for cycle in 0..<16 {
            // Every lease of the last cycle has expired: its holder lost the power with it.
            clock.advance(milliseconds: 61_000)
            let store: EmbeddedStore
            do {
                store = try EmbeddedStore.open(config)
            } catch {
                Issue.record("seed \(seed) cycle \(cycle): the store does not open after the power cut: \(error); cuts: \(cuts.suffix(3))")
                return
            }
            // Every acknowledged save is there; an unacknowledged one may be too.
            for p in 0..<playerCount {
                let expected = players.withLock { $0[p] }
                let got = try await store.get(partition: "player-\(p)", key: "progress")
                let counter = got.map { counterOf($0.value) } ?? 0
                #expect(counter >= expected.acknowledged && counter <= expected.attempted,
                        "seed \(seed) cycle \(cycle): player-\(p) has save \(counter); acknowledged \(expected.acknowledged), sent up to \(expected.attempted); \(cuts.last ?? "")")
                players.withLock { $0[p].acknowledged = counter; $0[p].attempted = counter }
            }

            fault.cutPower(afterOperations: 1 + rng.below(700))
            let seedHere = seed &* 1_000 &+ UInt64(cycle)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<playerCount {
                    group.addTask {
                        var r = SeededRandom(seed: seedHere &+ UInt64(p) &* 31)
                        do {
                            try await runSessions(store: store, player: p, owner: "server-\(cycle)", players: players, random: &r)
                        } catch {
                            if !fault.isPowerOff { Issue.record("seed \(seed) cycle \(cycle) player-\(p): failed with the power on: \(error)") }
                        }
                    }
                }
                group.addTask {
                    // Compaction now and then, so the cut can fall inside it too.
                    while !fault.isPowerOff {
                        do { _ = try await store.compact(force: true) } catch {
                            if !fault.isPowerOff { Issue.record("seed \(seed) cycle \(cycle): compaction failed with the power on: \(error)") }
                            return
                        }
                        try await Task.sleep(nanoseconds: 2_000_000)
                    }
                }
                try await group.waitForAll()
            }
            store.crashForTesting()
            var r = SeededRandom(seed: seedHere ^ 0xC0FFEE)
            cuts.append("cycle \(cycle): " + (try fault.crash { r.below($0) }).joined(separator: "; "))
        }
        let last = try EmbeddedStore.open(config)
        try await last.close()
        let report = try StoreChecker.check(directory: dir.path)
        #expect(report.isConsistent, "seed \(seed): jelly check after the last cut: \(report)")
    }
}

extension PowerLossTests {
    /// A new log segment's name must be durable before a save goes into it. In a running store
    /// another directory sync (a hint's) usually follows soon and hides a missing one, so this
    /// holds the hint writer at its sync: the new segment's rename has only its own directory
    /// sync to count on when the power goes.
    @Test func aNewSegmentsNameIsDurableBeforeSavesGoIntoIt() async throws {
        let clock = ManualClock()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let made = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: clock)
        var config = made.0
        let fault = made.1
        config.segmentBytes = 128 << 10
        config.durability = .always
        let store = try EmbeddedStore.open(config)
        var acknowledged: [String: [UInt8]] = [:]
        var n = 0
        func save() async throws {
            n += 1
            let key = "k\(n % 40)", value = progress(n, padding: 2_000)
            try await store.put(partition: "player", key: key, value: value)
            acknowledged[key] = value
        }
        while store.activeSegment < 3 { try await save() }
        fault.holdSyncs(pathSuffix: ".hint.tmp")
        // The segment after the next one: it was started ahead (renamed into place) just before
        // the hint writer stopped at its sync, and no directory sync came after.
        let filling = store.activeSegment
        while store.activeSegment < filling + 2 { try await save() }
        for _ in 0..<5 { try await save() }
        fault.cutPower()
        fault.stopHoldingSyncs()
        store.crashForTesting()
        let cut = try fault.crash(keeping: { _, _ in 0 }, keepingEntries: { _, _ in 0 })
        let reopened = try EmbeddedStore.open(config)
        for (key, value) in acknowledged.sorted(by: { $0.key < $1.key }) {
            let got = try await reopened.get(partition: "player", key: key)
            #expect(got?.value == value, "\(key): an acknowledged save in segment \(filling + 2) was lost with the segment's name; \(cut)")
        }
        try await reopened.close()
    }
}

/// Sessions of one player until the power goes: lock, load, saves with the token, the final
/// save with the release.
private func runSessions(store: EmbeddedStore, player p: Int, owner: String, players: Players, random r: inout SeededRandom) async throws {
    let partition = "player-\(p)"
    while true {
        let lock = try await store.acquireLock(partition: partition, owner: owner, ttlMilliseconds: 60_000)
        let loaded = try await store.get(partition: partition, key: "progress")
        let start = loaded.map { counterOf($0.value) } ?? 0
        let acknowledged = players.withLock { $0[p].acknowledged }
        if start < acknowledged {
            Issue.record("\(partition): loaded save \(start) after save \(acknowledged) was acknowledged")
        }
        for i in 0...(1 + r.below(6)) {
            let counter = players.withLock { s -> Int in s[p].attempted += 1; return s[p].attempted }
            let value = progress(counter, padding: 200 + r.below(2500))
            if i == 0 {
                try await store.put(partition: partition, key: "progress", value: value, lockToken: lock.token)
            } else if r.below(4) == 0 {
                _ = try await store.saveAndRelease(partition: partition, [.put(key: "progress", value: value)], lockToken: lock.token)
                players.withLock { $0[p].acknowledged = max($0[p].acknowledged, counter) }
                break
            } else {
                try await store.put(partition: partition, key: "progress", value: value, lockToken: lock.token)
            }
            players.withLock { $0[p].acknowledged = max($0[p].acknowledged, counter) }
        }
        if try await store.inspectLock(partition: partition)?.token == lock.token {
            try await store.releaseLock(partition: partition, token: lock.token)
        }
    }
}

/// The players' counters, shared by the session tasks.
final class Players: Sendable {
    private let state: Mutex<[PowerLossTests.Player]>
    init(count: Int) { state = Mutex([PowerLossTests.Player](repeating: .init(), count: count)) }
    func withLock<T>(_ body: (inout [PowerLossTests.Player]) -> T) -> T { state.withLock { body(&$0) } }
}

private func progress(_ counter: Int, padding: Int) -> [UInt8] {
    Array("save \(counter);".utf8) + [UInt8](repeating: UInt8(truncatingIfNeeded: counter), count: padding)
}

private func counterOf(_ value: [UInt8]) -> Int {
    let text = String(decoding: value.prefix(while: { $0 != UInt8(ascii: ";") }), as: UTF8.self)
    return Int(text.dropFirst(5)) ?? -1
}
