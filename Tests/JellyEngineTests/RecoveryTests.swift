import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// Recovery rules, as named edge cases (leveldb's log_test style), and the crash property test.
@Suite struct RecoveryTests {
    @Test func cleanReopenKeepsEverything() async throws {
        let h = try EmbeddedStoreHarness()
        var versions: [String: UInt64] = [:]
        for i in 0..<300 {
            versions["k\(i % 50)"] = try await h.store.put(partition: "p\(i % 5)", key: "k\(i % 50)", value: [UInt8](repeating: UInt8(i % 256), count: 700))
        }
        #expect(try segmentPaths(h.directory.path).count > 1, "small segments: several were sealed")
        try await h.restart()
        for (key, version) in versions {
            let i = Int(key.dropFirst()) ?? 0
            let got = try await h.store.get(partition: "p\(i % 5)", key: key)
            #expect(got?.version == version)
        }
        await h.finish()
    }

    @Test func missingHintIsRebuiltFromItsSegment() async throws {
        let h = try EmbeddedStoreHarness()
        for i in 0..<200 { try await h.store.put(partition: "p", key: "k\(i)", value: [UInt8](repeating: 1, count: 900)) }
        try await h.embedded.close()
        let hints = try hintPaths(h.directory.path)
        #expect(!hints.isEmpty)
        for hint in hints { try PosixStorage().remove(hint) }
        let store = try EmbeddedStore.open(h.configuration)
        #expect(try await store.list(partition: "p", after: nil, limit: 1000).objects.count == 200)
        try await store.close()
        #expect(try hintPaths(h.directory.path).count == hints.count, "hints rewritten")
        #expect(try StoreChecker.check(directory: h.directory.path).isConsistent)
        h.directory.remove()
    }

    @Test func tornTailIsCutOffAndReported() async throws {
        let h = try EmbeddedStoreHarness()
        let v = try await h.store.put(partition: "p", key: "acked", value: bytes("safe"))
        let active = h.embedded.activeSegment
        h.embedded.crashForTesting()
        // A crash in the middle of the next append: a valid block header whose records never fully
        // reached the disk.
        let path = h.directory.path + "/" + segmentFileName(active)
        let data = try readFileBytes(path)
        guard let last = blockOffsets(data, segment: UInt64(active)).last else { Issue.record("no blocks"); return }
        let next = last + Format.pageBytes
        var records = EncodedRecords(capacity: 128)
        records.append(kind: .put, partition: "p", key: "torn", value: [UInt8](repeating: 9, count: 100))
        records.seal(version: v + 1)
        var block = [UInt8](repeating: 0, count: Format.pageBytes)
        block.withUnsafeMutableBytes { raw in
            BlockHeader(segmentID: UInt64(active), payloadBytes: UInt32(records.bytes.count), recordCount: 1, durableOffset: UInt64(next), flags: 0).encode(into: raw.baseAddress!)
        }
        block.replaceSubrange(Format.blockHeaderBytes..<(Format.blockHeaderBytes + 40), with: records.bytes.prefix(40)) // the rest is missing
        try patchFile(path, at: next, with: block)

        let checked = try StoreChecker.check(directory: h.directory.path)
        #expect(checked.isConsistent, "a torn tail is not corruption: \(checked.problems)")
        #expect(checked.notes.contains { $0.contains("torn") })

        let store = try EmbeddedStore.open(h.configuration)
        #expect(store.recoveryNotes.contains { $0.contains("torn write at offset \(next)") }, "\(store.recoveryNotes)")
        #expect(try await store.get(partition: "p", key: "acked")?.value == bytes("safe"))
        #expect(try await store.get(partition: "p", key: "torn") == nil)
        let after = try await store.put(partition: "p", key: "after", value: bytes("x"))
        #expect(after > v)
        try await store.close()
        #expect(try StoreChecker.check(directory: h.directory.path).isConsistent)
        let reopened = try EmbeddedStore.open(h.configuration)
        #expect(try await reopened.get(partition: "p", key: "after")?.version == after)
        #expect(reopened.recoveryNotes.isEmpty, "the torn tail stays cut off: \(reopened.recoveryNotes)")
        try await reopened.close()
        h.directory.remove()
    }

    @Test func damageBeforeSyncedDataInTheActiveSegmentIsCorruption() async throws {
        let h = try EmbeddedStoreHarness()
        for i in 0..<5 { try await h.store.put(partition: "p", key: "k\(i)", value: bytes("value \(i)")) }
        let active = h.embedded.activeSegment
        h.embedded.crashForTesting()
        let path = h.directory.path + "/" + segmentFileName(active)
        let blocks = blockOffsets(try readFileBytes(path), segment: UInt64(active))
        #expect(blocks.count >= 5)
        // Flip a byte inside the second block's records; later blocks prove it had been synced.
        let target = blocks[1] + Format.blockHeaderBytes + 20
        var byte = try readFileBytes(path)[target]
        byte ^= 0xFF
        try patchFile(path, at: target, with: [byte])
        do {
            _ = try EmbeddedStore.open(h.configuration)
            Issue.record("opened a store with damaged acknowledged data")
        } catch let error as JellyError {
            #expect(error.code == .corruption)
            #expect(error.message.contains(segmentFileName(active)) && error.message.contains("offset \(blocks[1])"), "\(error.message)")
        }
        let report = try StoreChecker.check(directory: h.directory.path)
        #expect(!report.isConsistent)
        h.directory.remove()
    }

    @Test func syncFailurePoisonsTheStore() async throws {
        let clock = ManualClock()
        let dir = try TemporaryDirectory()
        let (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: clock)
        let store = try EmbeddedStore.open(config)
        try await store.put(partition: "p", key: "before", value: bytes("1"))
        fault.failSyncs()
        let first = try await expectJellyError { try await store.put(partition: "p", key: "during", value: bytes("2")) }
        #expect(first.code == .unavailable && first.message.contains("fdatasync"), "\(first)")
        fault.failSyncs(false)
        let later = try await expectJellyError { try await store.put(partition: "p", key: "after", value: bytes("3")) }
        #expect(later.code == .unavailable, "a failed sync poisons the store for good: \(later)")
        store.crashForTesting()
        let reopened = try EmbeddedStore.open(config)
        #expect(try await reopened.get(partition: "p", key: "before")?.value == bytes("1"))
        #expect(try await reopened.get(partition: "p", key: "after") == nil)
        try await reopened.put(partition: "p", key: "after", value: bytes("3"))
        try await reopened.close()
        dir.remove()
    }

    @Test func aClosedStoreSaysSo() async throws {
        let h = try EmbeddedStoreHarness()
        try await h.store.put(partition: "p", key: "k", value: [1])
        try await h.embedded.close()
        for attempt in [
            { _ = try await h.store.get(partition: "p", key: "k") },
            { _ = try await h.store.list(partition: "p", after: nil, limit: 10) },
            { _ = try await h.store.put(partition: "p", key: "k", value: [2]) },
            { _ = try await h.store.acquireLock(partition: "p", owner: "o", ttlMilliseconds: 1000) },
        ] as [() async throws -> Void] {
            let error = try await expectJellyError { try await attempt() }
            #expect(error.code == .unavailable && error.message.contains("closed"), "\(error)")
        }
        try await h.embedded.close() // closing twice is harmless
        h.directory.remove()
    }

    @Test func secondOpenerGetsAClearError() async throws {
        let h = try EmbeddedStoreHarness()
        let error = try await expectJellyError { try EmbeddedStore.open(h.configuration) }
        #expect(error.code == .alreadyOpen && error.message.contains("open in another process"), "\(error)")
        await h.finish()
    }

    @Test func requireLocksRefusesUnlockedWrites() async throws {
        let h = try EmbeddedStoreHarness { $0.requireLocks = true }
        let error = try await expectJellyError { try await h.store.put(partition: "p", key: "k", value: []) }
        #expect(error.code == .locked)
        let lock = try await h.store.acquireLock(partition: "p", owner: "s", ttlMilliseconds: 1000)
        try await h.store.put(partition: "p", key: "k", value: [], lockToken: lock.token)
        await h.finish()
    }

    /// Random operations against a model of values and leases (puts, deletes, batches,
    /// acquire, renew, transfer, release, save-and-release, time passing, compactions, clean
    /// reopens), then, each round, a power cut the moment a sync starts with writes and lock
    /// acquisitions in flight. After every reopen: every acknowledged write is there exactly,
    /// each unacknowledged one entirely or not at all, every live lease kept, every retired
    /// token (transferred, released, expired) fenced, and a fresh lock's token above every
    /// version and token issued before.
    ///
    /// The seed fixes the operations, which writes are in flight, the sync the power cut catches
    /// and how many unsynced bytes of each file survive, so a failing seed replays the same
    /// history (only the spare files the background worker prepares meanwhile may differ).
    @Test(arguments: 1...48)
    func crashPropertyTest(seed: UInt64) async throws {
        var rng = SeededRandom(seed: seed)
        let clock = ManualClock()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: clock)
        config.segmentBytes = 128 << 10
        config.limits.batchBytesMax = 32 << 10
        config.groupCommitBytesMax = 32 << 10
        // Odd seeds drop tombstones as soon as they hide nothing (raising the feed's floor);
        // even seeds keep them for the change feed, as a store does by default.
        if seed % 2 == 1 { config.compaction.tombstoneRetentionMilliseconds = 0 }
        var store = try EmbeddedStore.open(config)
        var model = Model()
        var probes = 0

        /// A lock on a partition never used before: its token is the next version, which must be
        /// above everything the store returned so far.
        func freshLockIsAboveEverything(_ when: String) async throws {
            probes += 1
            let probe = try await store.acquireLock(partition: "fresh-\(probes)", owner: "probe", ttlMilliseconds: 1_000)
            #expect(probe.token.rawValue > model.maxIssued, "seed \(seed) \(when): token \(probe.token) after \(model.maxIssued) was issued")
            model.issued(probe.token.rawValue)
        }

        /// Every token the model retired is refused, so are the tokens of expired leases.
        func retiredTokensAreFenced(_ when: String) async throws {
            let now = clock.nowMilliseconds()
            let expired = model.leases.filter { !$0.value.isLive(at: now) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value.token) }
            for (partition, token) in model.retired.suffix(4) + expired.prefix(4) {
                let e = try await expectJellyError { try await store.put(partition: partition, key: "fenced", value: [1], lockToken: token) }
                #expect(e.code == .locked, "seed \(seed) \(when): retired token \(token) of \(partition) was accepted")
            }
        }

        for round in 0..<3 {
            for _ in 0..<70 {
                let partition = "p\(rng.below(3))"
                let key = "k\(rng.below(4))"
                let now = clock.nowMilliseconds()
                let lease = model.leases[partition].flatMap { $0.isLive(at: now) ? $0 : nil }
                let token = lease?.token
                switch rng.below(14) {
                case 0...3:
                    let value = [UInt8](repeating: UInt8(rng.below(256)), count: rng.below(1500))
                    let v = try await store.put(partition: partition, key: key, value: value, lockToken: token)
                    #expect(v > model.maxIssued, "seed \(seed): versions increase")
                    model.issued(v)
                    model.objects[partition, default: [:]][key] = (v, value)
                case 4:
                    let existed = try await store.delete(partition: partition, key: key, lockToken: token)
                    #expect(existed == (model.objects[partition]?[key] != nil), "seed \(seed): delete of \(partition)/\(key)")
                    model.objects[partition]?[key] = nil
                case 5:
                    let ops: [WriteOperation] = [.put(key: "b1", value: bytes("\(round)")), .put(key: "b2", value: [UInt8](repeating: 7, count: rng.below(3000)))]
                    let r = try await store.write(partition: partition, ops, lockToken: token, releaseLock: false)
                    guard let v = r.version else { Issue.record("batch without version"); continue }
                    model.issued(v)
                    for op in ops { if case .put(let k, let value, _, _, _) = op { model.objects[partition, default: [:]][k] = (v, value) } }
                case 6:
                    if lease == nil {
                        if let expired = model.leases[partition] { model.retired.append((partition, expired.token)) }
                        let l = try await store.acquireLock(partition: partition, owner: "me", ttlMilliseconds: 5_000)
                        #expect(l.token.rawValue > model.maxIssued, "seed \(seed): tokens come after every version")
                        model.issued(l.token.rawValue)
                        model.leases[partition] = Lease(owner: "me", token: l.token, expiresAtMilliseconds: l.expiresAtMilliseconds)
                    } else {
                        let e = try await expectJellyError { try await store.acquireLock(partition: partition, owner: "other", ttlMilliseconds: 5_000) }
                        #expect(e.code == .locked)
                    }
                case 7:
                    if let lease {
                        let l = try await store.renewLock(partition: partition, token: lease.token, ttlMilliseconds: 5_000)
                        #expect(l.token == lease.token && l.expiresAtMilliseconds == now + 5_000, "seed \(seed): renew keeps the token")
                        model.leases[partition] = Lease(owner: lease.owner, token: lease.token, expiresAtMilliseconds: l.expiresAtMilliseconds)
                    } else if let old = model.leases[partition] {
                        let e = try await expectJellyError { try await store.renewLock(partition: partition, token: old.token, ttlMilliseconds: 5_000) }
                        #expect(e.code == .locked, "seed \(seed): an expired lease cannot be renewed")
                    }
                case 8:
                    if let lease {
                        let l = try await store.transferLock(partition: partition, token: lease.token, to: "next", ttlMilliseconds: 5_000)
                        #expect(l.token.rawValue > model.maxIssued, "seed \(seed): a transfer issues a new token")
                        model.issued(l.token.rawValue)
                        model.retired.append((partition, lease.token))
                        model.leases[partition] = Lease(owner: "next", token: l.token, expiresAtMilliseconds: l.expiresAtMilliseconds)
                    }
                case 9:
                    if let lease {
                        if rng.below(2) == 0 {
                            try await store.releaseLock(partition: partition, token: lease.token)
                        } else {
                            let value = bytes("final \(round)")
                            let r = try await store.saveAndRelease(partition: partition, [.put(key: key, value: value)], lockToken: lease.token)
                            if let v = r.version { model.issued(v) }
                            model.objects[partition, default: [:]][key] = (r.version ?? 0, value)
                        }
                        model.retired.append((partition, lease.token))
                        model.leases[partition] = nil
                    } else {
                        let e = try await expectJellyError { try await store.put(partition: partition, key: key, value: [], lockToken: LockToken(model.maxIssued + 1000)) }
                        #expect(e.code == .locked, "seed \(seed): a never-issued token is stale")
                    }
                case 10:
                    clock.advance(milliseconds: Int64(rng.below(3000)))
                case 11:
                    if rng.below(3) == 0 { _ = try await store.compact(force: true) }
                default:
                    if rng.below(4) == 0 {
                        try await store.close()
                        store = try EmbeddedStore.open(config)
                        try await freshLockIsAboveEverything("round \(round), clean reopen")
                        try await retiredTokensAreFenced("round \(round), clean reopen")
                    }
                }
            }

            // The power cut. A first write is held at its sync; the writes and lock acquisitions
            // in flight queue behind it. Its sync is let go, they are written as the next block,
            // and the power goes the moment a sync starts again.
            let running = store
            let acked = AckLog()
            let heldBefore = fault.syncsHeldSoFar
            fault.holdSyncs(pathSuffix: ".log")
            let firstValue = bytes("first-\(round)")
            let first = Task { try await running.put(partition: "inflight", key: "first-\(round)", value: firstValue) }
            for _ in 0..<2500 where fault.syncsHeldSoFar == heldBefore { try await Task.sleep(nanoseconds: 1_000_000) }
            try #require(fault.syncsHeldSoFar == heldBefore + 1, "seed \(seed): the first write reached its sync")
            let inflight = (0..<(1 + rng.below(5))).map { _ in rng.below(3) == 0 }
            var tasks: [Task<Void, Never>] = []
            for (i, isLock) in inflight.enumerated() {
                tasks.append(Task {
                    if isLock {
                        if let l = try? await running.acquireLock(partition: "inflight-lock-\(round)-\(i)", owner: "x", ttlMilliseconds: 60_000) {
                            acked.add(i, l.token.rawValue)
                        }
                    } else {
                        let value = bytes("inflight-\(round)-\(i)")
                        if let v = try? await running.write(partition: "inflight", [.put(key: "r\(round)-\(i)-a", value: value), .put(key: "r\(round)-\(i)-b", value: value)], lockToken: nil, releaseLock: false).version {
                            acked.add(i, v)
                        }
                    }
                })
                // Queued in this order, all before the first write's sync is let go.
                for _ in 0..<2500 where running.shared.state.withLock({ $0.queue.waiting.count }) < i + 1 { try await Task.sleep(nanoseconds: 1_000_000) }
            }
            #expect(running.shared.state.withLock { $0.queue.waiting.count } == inflight.count, "seed \(seed): every in-flight request is queued")
            fault.releaseHeldSyncs()
            let firstVersion = try await first.value
            model.issued(firstVersion)
            model.objects["inflight", default: [:]]["first-\(round)"] = (firstVersion, firstValue)
            for _ in 0..<2500 where fault.syncsHeldSoFar == heldBefore + 1 { try await Task.sleep(nanoseconds: 1_000_000) }
            try #require(fault.syncsHeldSoFar == heldBefore + 2, "seed \(seed): the in-flight block reached its sync")
            fault.cutPower()
            fault.stopHoldingSyncs()
            for t in tasks { await t.value }
            store.crashForTesting()
            let cutSeed = seed &* 1_000 &+ UInt64(round)
            let cut = try fault.crash { path, total in
                var r = SeededRandom(seed: cutSeed ^ fnv1a(path.split(separator: "/").last.map(String.init) ?? path))
                return r.below(total + 1)
            }
            store = try EmbeddedStore.open(config)
            let when = "round \(round), after the power cut"

            // Every acknowledged write is there, exactly.
            for (partition, objects) in model.objects {
                for (key, (version, value)) in objects {
                    let got = try await store.get(partition: partition, key: key)
                    #expect(got?.version == version && got?.value == value, "seed \(seed) \(when): \(partition)/\(key) expected v\(version); got \(String(describing: got?.version)); \(cut)")
                }
                if partition == "inflight" { continue }
                let listed = try await store.list(partition: partition, after: nil, limit: 1000).objects.map(\.key)
                #expect(Set(listed) == Set(objects.keys), "seed \(seed): \(partition) lists \(listed), model \(objects.keys.sorted())")
                // The change feed from zero is the same state, at the same versions.
                let feed = try await store.changes(partition: partition, since: 0, limit: 1000)
                let fed = Dictionary(feed.changes.map { ($0.key, $0.version) }, uniquingKeysWith: { a, _ in a })
                #expect(fed == objects.mapValues(\.0) && feed.changes.allSatisfy { $0.object?.value == objects[$0.key]?.1 }, "seed \(seed) \(when): the feed of \(partition) is not the state")
            }
            for (partition, lease) in model.leases where lease.isLive(at: clock.nowMilliseconds()) {
                #expect(try await store.inspectLock(partition: partition)?.token == lease.token, "seed \(seed) \(when): lease of \(partition) survives")
            }
            // In flight: acknowledged ones present; the rest all or nothing, above every version
            // acknowledged before them.
            for (i, isLock) in inflight.enumerated() {
                if isLock {
                    let partition = "inflight-lock-\(round)-\(i)"
                    let found = try await store.inspectLock(partition: partition)
                    if let v = acked.version(i) {
                        #expect(found?.token.rawValue == v, "seed \(seed) \(when): acknowledged lock \(partition) lost; \(cut)")
                    }
                    if let found {
                        #expect(found.token.rawValue > firstVersion, "seed \(seed) \(when): in-flight lock \(partition) has token \(found.token)")
                        model.issued(found.token.rawValue)
                        model.leases[partition] = Lease(owner: found.owner, token: found.token, expiresAtMilliseconds: found.expiresAtMilliseconds)
                    }
                } else {
                    let a = try await store.get(partition: "inflight", key: "r\(round)-\(i)-a")
                    let b = try await store.get(partition: "inflight", key: "r\(round)-\(i)-b")
                    #expect((a == nil) == (b == nil), "seed \(seed): batch \(i) is atomic")
                    if let v = acked.version(i) {
                        #expect(a?.version == v && b?.version == v, "seed \(seed) \(when): acknowledged in-flight batch \(i) lost; \(cut)")
                    }
                    if let a {
                        #expect(a.version > firstVersion)
                        model.issued(a.version)
                        model.objects["inflight", default: [:]]["r\(round)-\(i)-a"] = (a.version, a.value)
                        model.objects["inflight", default: [:]]["r\(round)-\(i)-b"] = (a.version, a.value)
                    }
                }
            }
            try await freshLockIsAboveEverything(when)
            try await retiredTokensAreFenced(when)
        }
        try await store.close()
        #expect(try StoreChecker.check(directory: dir.path).isConsistent)
    }
}

/// What the property test expects the store to hold.
struct Model {
    var objects: [String: [String: (UInt64, [UInt8])]] = [:]
    var leases: [String: Lease] = [:]
    /// Tokens of leases transferred or released: never accepted again.
    var retired: [(partition: String, token: LockToken)] = []
    /// The highest version or token the store returned.
    private(set) var maxIssued: UInt64 = 0

    mutating func issued(_ version: UInt64) { maxIssued = max(maxIssued, version) }
}

/// FNV-1a of a string: a hash that is the same in every process (Swift's `Hasher` is seeded
/// per process), for seeds derived from file names.
func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

final class AckLog: @unchecked Sendable {
    private var acks: [Int: UInt64] = [:]
    private let lock = NSLockLite()
    func add(_ i: Int, _ v: UInt64) { lock.locked { acks[i] = v } }
    func version(_ i: Int) -> UInt64? { lock.locked { acks[i] } }
}

import Synchronization
final class NSLockLite: Sendable {
    private let m = Mutex(())
    func locked<T>(_ body: () -> T) -> T { m.withLock { _ in body() } }
}

func expectJellyError<T>(_ body: () async throws -> T) async throws -> JellyError {
    do {
        _ = try await body()
    } catch let e as JellyError {
        return e
    }
    throw ConformanceFailure("expected a JellyError, got success")
}

@Suite struct StartedAheadTests {
    /// The log's next segment is started ahead of time. A crash then leaves the active segment
    /// unsealed (here with a torn write at its end) *before* an empty started one: `jelly check`
    /// and open accept that, every acknowledged write is kept, and the log continues in the
    /// started segment.
    @Test func crashWithTheNextSegmentStartedAhead() async throws {
        let h = try EmbeddedStoreHarness()
        var versions: [String: UInt64] = [:]
        for i in 0..<20 {
            versions["k\(i)"] = try await h.store.put(partition: "p", key: "k\(i)", value: [UInt8](repeating: UInt8(i), count: 1000))
        }
        let active = h.embedded.activeSegment
        let activePath = h.directory.path + "/" + segmentFileName(active)
        let next = h.directory.path + "/" + segmentFileName(active + 1)
        for _ in 0..<1000 where !PosixStorage().fileExists(next) { try await Task.sleep(nanoseconds: 2_000_000) }
        #expect(PosixStorage().fileExists(next), "the next segment was started ahead")
        h.embedded.crashForTesting()

        let dataEnd = try SegmentFiles.scan(SegmentFiles.readAll(PosixStorage(), path: activePath), path: activePath, mayBeUnsealed: true).dataEnd
        try patchFile(activePath, at: dataEnd, with: [UInt8](repeating: 0xAB, count: 2000))
        let checked = try StoreChecker.check(directory: h.directory.path)
        #expect(checked.isConsistent, "\(checked.problems)")

        let store = try EmbeddedStore.open(h.configuration)
        #expect(store.recoveryNotes.contains { $0.contains("torn") }, "\(store.recoveryNotes)")
        #expect(store.activeSegment == active + 1, "the log continues in the started segment")
        for (key, version) in versions {
            #expect(try await store.get(partition: "p", key: key)?.version == version)
        }
        try await store.put(partition: "p", key: "after", value: [1])
        try await store.close()
        #expect(try StoreChecker.check(directory: h.directory.path).isConsistent)
        h.directory.remove()
    }
}

@Suite struct RecyclingAndDurabilityTests {
    /// After compaction recycles full segment files, the active segment is a reused file whose
    /// tail holds blocks of the segment it used to be. A crash there must recover every
    /// acknowledged write and must not report those old blocks as a torn write.
    @Test func crashInARecycledSegment() async throws {
        let h = try EmbeddedStoreHarness { config in
            config.compaction.automatic = true
            config.compaction.checkIntervalMilliseconds = 5
        }
        var last: [String: UInt64] = [:]
        var recycledSeen = false
        for round in 0..<40 {
            for k in 0..<20 {
                last["k\(k)"] = try await h.store.put(partition: "p", key: "k\(k)", value: [UInt8](repeating: UInt8(round), count: 3000))
            }
            let names = try PosixStorage().listDirectory(h.directory.path)
            if names.contains(where: { $0.hasSuffix(".recycled") }) { recycledSeen = true }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        #expect(recycledSeen, "compaction recycled a segment file")
        #expect(h.embedded.info().segmentsCompacted > 0)
        h.embedded.crashForTesting()
        let store = try EmbeddedStore.open(h.configuration)
        #expect(!store.recoveryNotes.contains { $0.contains("torn") }, "old blocks of a recycled file are not a torn write: \(store.recoveryNotes)")
        for (key, version) in last {
            #expect(try await store.get(partition: "p", key: key)?.version == version)
        }
        try await store.close()
        #expect(try StoreChecker.check(directory: h.directory.path).isConsistent)
        h.directory.remove()
    }

    /// Builds before session 7 renamed a spare file into place before writing the new
    /// segment's header. A crash in between left, under the new segment's name, a recycled file
    /// still holding the old segment's header and records. Open and `jelly check` must not read
    /// those as the new segment's records: objects deleted since would come back.
    @Test func aRecycledSpareRenamedBeforeItsHeaderIsNotReadAsTheSegment() async throws {
        let h = try EmbeddedStoreHarness()
        for round in 0..<3 {
            for k in 0..<40 {
                try await h.store.put(partition: "p", key: "d\(k)", value: [UInt8](repeating: UInt8(round), count: 3000))
            }
        }
        for k in 0..<40 { try await h.store.delete(partition: "p", key: "d\(k)") }
        var kept: [String: UInt64] = [:]
        for i in 0..<100 {
            kept["f\(i % 10)"] = try await h.store.put(partition: "p", key: "f\(i % 10)", value: [UInt8](repeating: 1, count: 3000))
        }
        _ = try await h.embedded.compact(force: true)
        _ = try await h.embedded.compact(force: true)
        try await h.embedded.close()

        // A recycled spare that still holds puts of the deleted objects.
        let storage = PosixStorage()
        let dir = h.directory.path
        let names = try storage.listDirectory(dir)
        let spare = try names.filter { $0.hasSuffix(".recycled") }.first { name in
            let bytes = try SegmentFiles.readAll(storage, path: dir + "/" + name)
            let scan = try SegmentFiles.scan(bytes, path: name, mayBeUnsealed: false)
            return scan.entries.contains { $0.kind == .put && $0.key.hasPrefix("d") }
        }
        guard let spare else {
            Issue.record("no recycled spare holding deleted objects: \(names.sorted())")
            return
        }
        // What the crash left: the spare under the next log segment's name, its header unwritten.
        guard let lastLog = names.compactMap({ parseSegmentName($0, suffix: ".log") }).filter({ !isCompactionOutput($0) }).max() else {
            Issue.record("no log segment: \(names.sorted())")
            return
        }
        let renamed = segmentFileName(lastLog + 1)
        try storage.rename(dir + "/" + spare, dir + "/" + renamed)

        let checked = try StoreChecker.check(directory: dir)
        #expect(checked.isConsistent, "\(checked.problems)")
        #expect(checked.notes.contains { $0.contains(renamed) && $0.contains("before its header was written") }, "\(checked.notes)")

        let store = try EmbeddedStore.open(h.configuration)
        #expect(store.recoveryNotes.contains { $0.contains("removed \(renamed)") }, "\(store.recoveryNotes)")
        for k in 0..<40 {
            #expect(try await store.get(partition: "p", key: "d\(k)") == nil, "d\(k) was deleted")
        }
        for (key, version) in kept {
            #expect(try await store.get(partition: "p", key: key)?.version == version)
        }
        try await store.close()
        #expect(try StoreChecker.check(directory: dir).isConsistent)
        h.directory.remove()
    }

    /// A segment is started by writing and syncing its header into a spare file, then renaming
    /// that into place: when the header cannot be made durable, no file takes the segment's name.
    @Test func aSegmentTakesItsNameOnlyWithItsHeaderDurable() async throws {
        let directory = try TemporaryDirectory()
        let (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: directory.path, clock: ManualClock())
        let store = try EmbeddedStore.open(config)
        try await store.put(partition: "p", key: "k", value: [1])
        // Wait for the worker to start the next segment ahead and to prepare a spare file, so
        // that the start below takes the spare (making one would already fail on its sync).
        let next = directory.path + "/" + segmentFileName(store.activeSegment + 1)
        func spareReady() throws -> Bool {
            try PosixStorage().fileExists(next) && PosixStorage().listDirectory(directory.path).contains { $0.hasSuffix(".zero") }
        }
        for _ in 0..<1000 where try !spareReady() { try await Task.sleep(nanoseconds: 5_000_000) }
        try await Task.sleep(nanoseconds: 50_000_000)
        #expect(try spareReady(), "a spare file was prepared")
        let id = store.activeSegment + 10
        fault.failSyncs()
        #expect(throws: JellyError.self) { _ = try store.maintenance.startSegment(id: id) }
        #expect(!PosixStorage().fileExists(directory.path + "/" + segmentFileName(id)))
        store.crashForTesting()
        directory.remove()
    }

    /// `interval`: saves return before they are synced; a power loss may lose the last ones,
    /// but never a lock operation, and what survives is a consistent prefix.
    @Test func intervalDurabilityLosesOnlyUnsyncedSaves() async throws {
        let clock = ManualClock()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: clock)
        config.durability = .interval(milliseconds: 60_000)
        let store = try EmbeddedStore.open(config)
        let log = segmentFileName(store.activeSegment)
        let syncsBefore = fault.syncCount(pathSuffix: log)
        for i in 0..<20 { try await store.put(partition: "p", key: "k\(i)", value: bytes("v\(i)")) }
        #expect(fault.syncCount(pathSuffix: log) == syncsBefore, "saves in interval mode do not sync each time")
        let lock = try await store.acquireLock(partition: "q", owner: "s", ttlMilliseconds: 60_000)
        #expect(fault.syncCount(pathSuffix: log) == syncsBefore + 1, "a lock operation syncs")
        for i in 20..<30 { try await store.put(partition: "p", key: "k\(i)", value: bytes("v\(i)")) }
        store.crashForTesting()
        try fault.crash { _ in 0 } // lose everything not synced
        let reopened = try EmbeddedStore.open(config)
        #expect(try await reopened.inspectLock(partition: "q") == lock, "the lock survived: it was synced")
        for i in 0..<20 {
            #expect(try await reopened.get(partition: "p", key: "k\(i)")?.value == bytes("v\(i)"), "saved before the lock's sync")
        }
        let after = try await reopened.list(partition: "p", after: nil, limit: 100).objects.count
        #expect(after == 20, "the 10 saves after the last sync were lost with the power, and only they: \(after)")
        try await reopened.close()
    }
}
