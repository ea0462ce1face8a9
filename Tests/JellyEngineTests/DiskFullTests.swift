#if canImport(Glibc)
import Glibc
#endif
import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// A full disk is not a failed disk: writes are refused with `diskFull` (nothing acknowledged is
/// lost, nothing half written), reads go on, and writes resume by themselves once space is
/// freed. A store opens on a full disk for reads.
@Suite struct DiskFullTests {
    func makeStore(_ dir: TemporaryDirectory) throws -> (EmbeddedStoreConfiguration, FaultInjectingStorage, EmbeddedStore) {
        let made = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: ManualClock())
        var config = made.0
        config.durability = .always
        return (config, made.1, try EmbeddedStore.open(config))
    }

    /// Saves through `lock` until the store refuses one; returns what was acknowledged.
    func saveUntilRefused(_ store: EmbeddedStore, lock: LockInfo, from start: Int, count: Int = 3_000) async throws -> (acked: [String: [UInt8]], refusal: JellyError?) {
        var acked: [String: [UInt8]] = [:]
        for n in start..<(start + count) {
            let key = "slot-\(n % 50)", value = [UInt8](repeating: UInt8(n & 0xFF), count: 3_000) + Array("save \(n)".utf8)
            do {
                try await store.put(partition: "player", key: key, value: value, lockToken: lock.token)
                acked[key] = value
            } catch let e as JellyError {
                return (acked, e)
            }
        }
        return (acked, nil)
    }

    @Test func writesAreRefusedThenResumeByThemselvesOnceSpaceIsFreed() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (config, fault, store) = try makeStore(dir)
        let lock = try await store.acquireLock(partition: "player", owner: "gs-1", ttlMilliseconds: 600_000)
        var (acked, refusal) = try await saveUntilRefused(store, lock: lock, from: 0, count: 150)
        #expect(refusal == nil)

        // The disk fills: less than a segment is left.
        fault.limitSpace(freeBytes: 100 << 10)
        let full = try await saveUntilRefused(store, lock: lock, from: 10_000)
        acked.merge(full.acked) { _, new in new }
        refusal = full.refusal
        let e = try #require(refusal, "the store never refused a write on a full disk")
        #expect(e.code == .diskFull && e.message.contains("free"), "\(e)")
        #expect(store.writeRefusal?.code == .diskFull)
        // Every later write is refused at once, lock operations included, and what they would
        // have changed is not changed: the lease is still ours.
        let again = try await expectJellyError { try await store.put(partition: "other", key: "k", value: [1]) }
        #expect(again.code == .diskFull)
        let renew = try await expectJellyError { try await store.renewLock(partition: "player", token: lock.token, ttlMilliseconds: 600_000) }
        #expect(renew.code == .diskFull)
        #expect(try await store.inspectLock(partition: "player")?.token == lock.token)
        // A release and a final save that releases, refused: the lock is still held, and a
        // second server still cannot take it.
        let release = try await expectJellyError { try await store.releaseLock(partition: "player", token: lock.token) }
        #expect(release.code == .diskFull)
        let final = try await expectJellyError { try await store.saveAndRelease(partition: "player", [.put(key: "slot-0", value: [0])], lockToken: lock.token) }
        #expect(final.code == .diskFull)
        #expect(try await store.inspectLock(partition: "player")?.token == lock.token, "a refused release let go of the lock")
        // Reads go on, and every acknowledged save is there.
        for (key, value) in acked { #expect(try await store.get(partition: "player", key: key)?.value == value, "\(key)") }

        // Space is freed: writes resume without a restart (the store looks every second).
        fault.limitSpace(freeBytes: nil)
        var resumed = false
        for _ in 0..<100 where !resumed {
            do {
                try await store.put(partition: "player", key: "after", value: [7], lockToken: lock.token)
                resumed = true
            } catch let e as JellyError where e.code == .diskFull {
                try await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        #expect(resumed, "writes did not resume within 5 s of space being freed")
        #expect(store.writeRefusal == nil)
        let more = try await saveUntilRefused(store, lock: lock, from: 20_000, count: 150)
        #expect(more.refusal == nil)
        acked.merge(more.acked) { _, new in new }
        try await store.close()

        let reopened = try EmbeddedStore.open(config)
        for (key, value) in acked { #expect(try await reopened.get(partition: "player", key: key)?.value == value, "\(key) after the restart") }
        try await reopened.close()
        #expect(try StoreChecker.check(directory: dir.path).isConsistent)
    }

    @Test func aStoreOpensOnAFullDiskForReadsAndSaysWhy() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (config, fault, store) = try makeStore(dir)
        for i in 0..<200 { try await store.put(partition: "p", key: "k\(i)", value: [UInt8](repeating: 1, count: 2_000)) }
        try await store.close()
        // No spare segment file left (the spares and the segment started ahead are the store's
        // reserve: with them it opens and writes on a full disk), and no byte free.
        let files = try PosixStorage().listDirectory(dir.path)
        for name in files where name.hasPrefix("prepared-") { try PosixStorage().remove(dir.path + "/" + name) }
        if let last = files.filter({ $0.hasSuffix(".log") }).max(), try readFile(dir.path + "/" + last).count == config.segmentBytes {
            try PosixStorage().remove(dir.path + "/" + last)
        }
        fault.limitSpace(freeBytes: 0)

        let opened = try EmbeddedStore.open(config)
        #expect(opened.recoveryNotes.contains { $0.contains("disk is full") }, "\(opened.recoveryNotes)")
        #expect(opened.writeRefusal?.code == .diskFull)
        #expect(try await opened.get(partition: "p", key: "k7")?.value == [UInt8](repeating: 1, count: 2_000))
        let e = try await expectJellyError { try await opened.put(partition: "p", key: "new", value: [1]) }
        #expect(e.code == .diskFull)
        fault.limitSpace(freeBytes: nil)
        var resumed = false
        for _ in 0..<100 where !resumed {
            do { try await opened.put(partition: "p", key: "new", value: [2]); resumed = true } catch let e as JellyError where e.code == .diskFull {
                try await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        #expect(resumed, "writes did not resume after the disk had room")
        try await opened.close()
        #expect(try StoreChecker.check(directory: dir.path).isConsistent)
    }

    @Test func aFailedSyncIsNotAFullDisk() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (_, fault, store) = try makeStore(dir)
        try await store.put(partition: "p", key: "k", value: [1])
        fault.failSyncs()
        _ = try await expectJellyError { try await store.put(partition: "p", key: "k", value: [2]) }
        fault.failSyncs(false)
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let e = try await expectJellyError { try await store.put(partition: "p", key: "k", value: [3]) }
        #expect(e.code == .unavailable && e.message.contains("restart"), "a failed device must keep refusing until a restart: \(e)")
        #expect(store.writeRefusal?.code == .unavailable)
        try? await store.close()
    }
}

extension DiskFullTests {
    /// The refusal as pure state: requests queued ahead of the disk changed the lock table when
    /// they were queued (a release, then another server's acquire); refusing them for a full
    /// disk puts the table back as the last durable commit left it, newest change undone first.
    @Test func refusingQueuedLockChangesPutsTheLockTableBack() {
        var state = EngineState()
        let p = ByteName("player")
        let held = Lease(owner: "gs-1", token: LockToken(5), expiresAtMilliseconds: 10_000)
        state.index.leases[p] = held
        func request(_ version: UInt64, before: Lease?) -> CommitRequest {
            CommitRequest(records: EncodedRecords(capacity: 0), include: [], metas: [], version: version, needsSync: true, completion: .callback { _ in }, leaseBefore: (p, before))
        }
        // gs-1 releases (queued), then gs-2 acquires (queued behind it).
        _ = state.queue.enqueue(request(6, before: state.index.leases[p]))
        state.index.leases[p] = nil
        _ = state.queue.enqueue(request(7, before: state.index.leases[p]))
        state.index.leases[p] = Lease(owner: "gs-2", token: LockToken(7), expiresAtMilliseconds: 20_000)

        let refused = state.refuseForDiskFull(JellyError(.diskFull, "full"), group: [])
        #expect(refused.count == 2)
        #expect(state.index.leases[p] == held, "the refused release and acquire left \(String(describing: state.index.leases[p]))")
        #expect(state.writeBlocker?.code == .diskFull)
        #expect(state.overlay.isEmpty)
    }
}
