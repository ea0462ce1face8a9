import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Synchronization
import Testing

/// Online backup, verify and restore of the embedded store, on real files.
@Suite struct BackupTests {
    /// One acknowledged save: its version and value.
    struct Ack: Sendable { var version: UInt64; var value: [UInt8] }

    final class Acks: Sendable {
        private let state = Mutex<[String: [Ack]]>([:])
        func add(_ key: String, _ ack: Ack) { state.withLock { $0[key, default: []].append(ack) } }
        var all: [String: [Ack]] { state.withLock { $0 } }
    }

    func openStore(_ dir: TemporaryDirectory) throws -> EmbeddedStore {
        try EmbeddedStore.open(small(directory: dir.path))
    }

    @Test func backupDuringTheSessionWorkloadRestoresExactlyUpToItsVersion() async throws {
        let dir = try TemporaryDirectory(), backup = try TemporaryDirectory(), restored = try TemporaryDirectory()
        defer { dir.remove(); backup.remove(); restored.remove() }
        let store = try openStore(dir)
        let acks = Acks()
        let stop = Flag()
        let backedUp = Flag()
        let report: BackupReport = try await withThrowingTaskGroup(of: BackupReport?.self) { group in
            for p in 0..<4 {
                group.addTask {
                    var n = 0
                    while !stop.isSet {
                        let partition = "player-\(p)"
                        let lock = try await store.acquireLock(partition: partition, owner: "server", ttlMilliseconds: 30_000)
                        for _ in 0..<5 {
                            n += 1
                            let key = "slot-\(n % 7)"
                            let value = Array("p\(p) save \(n) ".utf8) + [UInt8](repeating: UInt8(n & 0xFF), count: 3_000)
                            let v = try await store.put(partition: partition, key: key, value: value, lockToken: lock.token)
                            acks.add(partition + "/" + key, Ack(version: v, value: value))
                        }
                        try await store.releaseLock(partition: partition, token: lock.token)
                        // Keep saving for a while after the backup, so it has something to leave out.
                        if backedUp.isSet && n > 400 { break }
                    }
                    return nil
                }
            }
            group.addTask {
                // Compaction keeps trying during the backup (it must wait, not remove inputs).
                while !backedUp.isSet {
                    _ = try await store.compact(force: true)
                    try await Task.sleep(nanoseconds: 5_000_000)
                }
                return nil
            }
            group.addTask {
                while acks.all.values.reduce(0, { $0 + $1.count }) < 600 { try await Task.sleep(nanoseconds: 2_000_000) }
                let r = try await store.backup(to: backup.path)
                backedUp.set()
                return r
            }
            var report: BackupReport?
            for try await r in group { if let r { report = r } }
            stop.set()
            return try #require(report)
        }
        let acknowledged = acks.all
        let after = acknowledged.values.flatMap { $0 }.filter { $0.version > report.version }.count
        #expect(after > 0, "the workload went on after the backup")
        try await store.close()

        let verification = try Backups.verify(directory: backup.path)
        #expect(verification.isGood, "\(verification.problems)")
        #expect(verification.version == report.version)
        let r = try await Backups.restore(from: backup.path, to: restored.path + "/store", configure: shrink)
        let back = try EmbeddedStore.open(small(directory: r.directory))
        // Every save acknowledged at or below the backup's version, and nothing after it.
        for (path, list) in acknowledged {
            let parts = path.split(separator: "/").map(String.init)
            let expected = list.filter { $0.version <= report.version }.max { $0.version < $1.version }
            let got = try await back.get(partition: parts[0], key: parts[1])
            #expect(got?.version == expected?.version && got?.value == expected?.value, "\(path): restored v\(String(describing: got?.version)), expected v\(String(describing: expected?.version)) (backup at v\(report.version))")
        }
        // A new epoch, no locks, and tokens far above anything the old store could have issued.
        #expect(r.epoch != store.shared.epoch)
        for p in 0..<4 { #expect(try await back.inspectLock(partition: "player-\(p)") == nil) }
        let fresh = try await back.acquireLock(partition: "player-0", owner: "after-restore", ttlMilliseconds: 1_000)
        #expect(fresh.token.rawValue > report.version + Backups.restoreVersionGap - 1)
        try await back.close()
    }

    @Test func aSecondBackupIntoTheSamePlaceCopiesOnlyWhatIsNew() async throws {
        let dir = try TemporaryDirectory(), backup = try TemporaryDirectory(), restored = try TemporaryDirectory()
        defer { dir.remove(); backup.remove(); restored.remove() }
        let store = try openStore(dir)
        for i in 0..<1_000 {
            try await store.put(partition: "p\(i % 10)", key: "k\(i)", value: [UInt8](repeating: UInt8(i & 0xFF), count: 2_000))
        }
        let first = try await store.backup(to: backup.path)
        #expect(first.bytesReused == 0 && first.bytesCopied > 1_900_000)
        // 1% of the data changes.
        for i in 0..<10 {
            try await store.put(partition: "p\(i % 10)", key: "k\(i)", value: [UInt8](repeating: 0xEE, count: 2_000))
        }
        let second = try await store.backup(to: backup.path)
        #expect(second.version > first.version)
        #expect(second.bytesCopied < first.bytesCopied / 10, "the second backup copied \(second.bytesCopied) bytes of \(second.bytesCopied + second.bytesReused)")
        #expect(second.bytesReused > first.bytesCopied * 9 / 10)
        try await store.close()
        let verification = try Backups.verify(directory: backup.path)
        #expect(verification.isGood, "\(verification.problems)")
        _ = try await Backups.restore(from: backup.path, to: restored.path + "/r", configure: shrink)
        let back = try EmbeddedStore.open(small(directory: restored.path + "/r"))
        #expect(try await back.get(partition: "p3", key: "k3")?.value == [UInt8](repeating: 0xEE, count: 2_000))
        #expect(try await back.get(partition: "p3", key: "k13")?.value == [UInt8](repeating: 13, count: 2_000))
        try await back.close()
    }

    @Test func aFlippedByteFailsVerifyWithTheFileAndOffset() async throws {
        let dir = try TemporaryDirectory(), backup = try TemporaryDirectory(), restored = try TemporaryDirectory()
        defer { dir.remove(); backup.remove(); restored.remove() }
        let store = try openStore(dir)
        for i in 0..<400 { try await store.put(partition: "p", key: "k\(i)", value: [UInt8](repeating: 7, count: 2_000)) }
        _ = try await store.backup(to: backup.path)
        try await store.close()
        #expect(try Backups.verify(directory: backup.path).isGood)

        let segment = try #require(try PosixStorage().listDirectory(backup.path).first { $0.hasSuffix(".log") })
        let path = backup.path + "/" + segment
        var bytes = try readFile(path)
        let offset = 4096 + 48 + 100
        bytes[offset] ^= 0x10
        try writeFile(path, bytes)
        let verification = try Backups.verify(directory: backup.path)
        #expect(!verification.isGood)
        #expect(verification.problems.contains { $0.contains(segment) && $0.contains("offset") }, "\(verification.problems)")
        let e = try await expectJellyError { try await Backups.restore(from: backup.path, to: restored.path + "/r", configure: shrink) }
        #expect(e.code == .corruption && e.message.contains("fails verification"))
    }

    @Test func restoreToAVersionKeepsExactlyTheWritesAtOrBelowIt() async throws {
        let dir = try TemporaryDirectory(), backup = try TemporaryDirectory(), restored = try TemporaryDirectory()
        defer { dir.remove(); backup.remove(); restored.remove() }
        var config = small(directory: dir.path)
        config.compaction.automatic = false
        let store = try EmbeddedStore.open(config)
        // Concurrent writers, so that blocks hold several commits and a cut falls inside one;
        // enough of them to fill several segments.
        let acks = Acks()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<8 {
                group.addTask {
                    for i in 0..<120 {
                        let key = "w\(w)-k\(i % 30)", value = Array("w\(w) \(i) ".utf8) + [UInt8](repeating: UInt8(i), count: 1_500)
                        let v = try await store.put(partition: "p\(w % 3)", key: key, value: value)
                        acks.add("p\(w % 3)/" + key, Ack(version: v, value: value))
                    }
                }
            }
            try await group.waitForAll()
        }
        let report = try await store.backup(to: backup.path)
        let verification = try Backups.verify(directory: backup.path)
        #expect(verification.restorableFrom <= 1 && verification.version == report.version)
        let all = acks.all
        let versions = all.values.flatMap { $0.map(\.version) }.sorted()
        for (n, target) in [versions[versions.count / 3], versions[versions.count * 2 / 3] + 0, versions[0]].enumerated() {
            let r = try await Backups.restore(from: backup.path, to: restored.path + "/r\(n)", toVersion: target, configure: shrink)
            #expect(r.version == target)
            let back = try EmbeddedStore.open(small(directory: r.directory))
            for (path, list) in all {
                let parts = path.split(separator: "/").map(String.init)
                let expected = list.filter { $0.version <= target }.max { $0.version < $1.version }
                let got = try await back.get(partition: parts[0], key: parts[1])
                #expect(got?.version == expected?.version && got?.value == expected?.value, "to v\(target): \(path) restored v\(String(describing: got?.version)), expected v\(String(describing: expected?.version))")
            }
            try await back.close()
            #expect(try StoreChecker.check(directory: r.directory).isConsistent)
        }
        // After a compaction, the log no longer holds the old versions: refused, with the range.
        for i in 0..<30 { try await store.put(partition: "p0", key: "w0-k\(i)", value: [9]) }
        _ = try await store.compact(force: true)
        _ = try await store.backup(to: backup.path)
        try await store.close()
        let later = try Backups.verify(directory: backup.path)
        #expect(later.restorableFrom > versions[versions.count / 2])
        let refused = try await expectJellyError { try await Backups.restore(from: backup.path, to: restored.path + "/old", toVersion: versions[versions.count / 2], configure: shrink) }
        #expect(refused.code == .invalidArgument && refused.message.contains("compaction"), "\(refused)")
    }

    @Test func restoreNeverOverwritesAndBackupRefusesForeignDirectories() async throws {
        let dir = try TemporaryDirectory(), backup = try TemporaryDirectory(), other = try TemporaryDirectory()
        defer { dir.remove(); backup.remove(); other.remove() }
        let store = try openStore(dir)
        try await store.put(partition: "p", key: "k", value: [1])
        try writeFile(other.path + "/notes.txt", Array("mine".utf8))
        let foreign = try await expectJellyError { try await store.backup(to: other.path) }
        #expect(foreign.code == .invalidArgument && foreign.message.contains("not empty"))
        let itself = try await expectJellyError { try await store.backup(to: dir.path + "/backup") }
        #expect(itself.code == .invalidArgument && itself.message.contains("into itself"))
        _ = try await store.backup(to: backup.path)
        // Into a live store's directory, or any non-empty one: refused, nothing touched.
        let live = try await expectJellyError { try await Backups.restore(from: backup.path, to: dir.path) }
        #expect(live.code == .invalidArgument && live.message.contains("never overwrites"))
        let nonEmpty = try await expectJellyError { try await Backups.restore(from: backup.path, to: other.path) }
        #expect(nonEmpty.code == .invalidArgument)
        #expect(try readFile(other.path + "/notes.txt") == Array("mine".utf8))
        #expect(try await store.get(partition: "p", key: "k")?.value == [1])
        let notBackup = try await expectJellyError { try await Backups.restore(from: other.path, to: other.path + "/new") }
        #expect(notBackup.code == .invalidArgument && notBackup.message.contains("BACKUP"))
        try await store.close()
    }
}

/// Small segments (so a few hundred saves seal several), with limits that fit them.
func small(directory: String) -> EmbeddedStoreConfiguration {
    var config = EmbeddedStoreConfiguration(directory: directory)
    shrink(&config)
    return config
}

func shrink(_ config: inout EmbeddedStoreConfiguration) {
    config.segmentBytes = 256 << 10
    config.limits.valueBytesMax = 16 << 10
    config.limits.batchBytesMax = 64 << 10
    config.groupCommitBytesMax = 64 << 10
}

func readFile(_ path: String) throws -> [UInt8] {
    try SegmentFiles.readAll(PosixStorage(), path: path)
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let f = try PosixStorage().openWrite(path: path, truncate: true)
    defer { f.close() }
    try bytes.withUnsafeBytes { try f.write($0, at: 0) }
}

extension BackupTests {
    /// A write whose block is written but not yet synced (so not acknowledged, not applied) when
    /// the backup's snapshot is taken is not in the backup, and the backup's version says so.
    @Test func aWriteInFlightDuringTheBackupIsNotInIt() async throws {
        let dir = try TemporaryDirectory(), backup = try TemporaryDirectory(), restored = try TemporaryDirectory()
        defer { dir.remove(); backup.remove(); restored.remove() }
        let made = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: ManualClock())
        var config = made.0
        let fault = made.1
        config.durability = .always
        let store = try EmbeddedStore.open(config)
        let before = try await store.put(partition: "p", key: "before", value: [1])
        let active = dir.path + "/" + segmentFileName(store.activeSegment)
        fault.holdSyncs(pathSuffix: active)
        let inFlight = Task { try await store.put(partition: "p", key: "in-flight", value: [2]) }
        for _ in 0..<2500 where fault.heldSyncs == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        try #require(fault.heldSyncs == 1, "the write reached its sync")
        let report = try await store.backup(to: backup.path)
        fault.stopHoldingSyncs()
        let v = try await inFlight.value
        #expect(report.version >= before && report.version < v, "the backup says it holds v\(report.version); the write in flight is v\(v)")
        try await store.close()
        let r = try await Backups.restore(from: backup.path, to: restored.path + "/r", configure: shrink)
        let back = try EmbeddedStore.open(small(directory: r.directory))
        #expect(try await back.get(partition: "p", key: "before")?.value == [1])
        #expect(try await back.get(partition: "p", key: "in-flight") == nil)
        try await back.close()
    }
}
