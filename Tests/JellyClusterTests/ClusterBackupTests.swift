import Foundation
import JellyCluster
import JellyCore
import JellyTestSupport
import NATSClient
import Testing

/// A cluster backup (a JetStream snapshot of every shard stream) restored into a fresh
/// three-node cluster serves the same data, with a new epoch and no locks.
@Suite struct ClusterBackupTests {
    func configuration(_ nats: NATSTestServers) throws -> ClusterStoreConfiguration {
        var c = ClusterStoreConfiguration(nats: NATSOptions(servers: try NATSServerAddress.list(nats.urls)))
        c.shards = 2
        c.replicas = 3
        c.streamPrefix = "BK"
        c.subjectPrefix = "bk"
        return c
    }

    @Test func aBackupRestoredIntoAFreshClusterServesTheSameData() async throws {
        let first = try await NATSTestServers(count: 3)
        defer { first.finish() }
        let backup = try TemporaryDirectory()
        defer { backup.remove() }
        let store = try await ClusterStore.openAndWait(try configuration(first))
        var saved: [String: (UInt64, [UInt8])] = [:]
        for p in 0..<12 {
            for k in 0..<5 {
                let value = Array("p\(p) k\(k)".utf8) + [UInt8](repeating: UInt8(p), count: 3_000)
                let v = try await store.put(partition: "player-\(p)", key: "slot-\(k)", value: value)
                saved["player-\(p)/slot-\(k)"] = (v, value)
            }
        }
        _ = try await store.delete(partition: "player-0", key: "slot-0")
        saved["player-0/slot-0"] = nil
        let lock = try await store.acquireLock(partition: "player-3", owner: "gs-1", ttlMilliseconds: 600_000)
        try await store.put(partition: "player-3", key: "slot-1", value: [7], lockToken: lock.token)
        saved["player-3/slot-1"] = (0, [7])
        let epoch = try await store.changes(partition: "player-3", since: 0, limit: 10).epoch

        let report = try await store.backup(to: backup.path + "/b")
        #expect(report.streams == 2 && report.messages > 60)
        try await store.close()
        let verified = try ClusterStore.verifyBackup(directory: backup.path + "/b")
        #expect(verified.problems.isEmpty, "\(verified.problems)")

        let second = try await NATSTestServers(count: 3)
        defer { second.finish() }
        let restored = try await ClusterStore.restore(from: backup.path + "/b", configuration: try configuration(second))
        #expect(restored.streams == 2 && restored.locksBroken == 1)
        let back = try await ClusterStore.openAndWait(try configuration(second))
        for (path, (_, value)) in saved {
            let parts = path.split(separator: "/").map(String.init)
            #expect(try await back.get(partition: parts[0], key: parts[1])?.value == value, "\(path)")
        }
        #expect(try await back.get(partition: "player-0", key: "slot-0") == nil)
        #expect(try await back.inspectLock(partition: "player-3") == nil)
        let stale = try await expectError { try await back.put(partition: "player-3", key: "slot-1", value: [8], lockToken: lock.token) }
        #expect(stale.code == .locked)
        #expect(try await back.changes(partition: "player-3", since: 0, limit: 10).epoch != epoch, "a restored cluster keeps the old epoch")
        // Restoring again into a cluster that has the streams is refused.
        let again = try await expectError { try await ClusterStore.restore(from: backup.path + "/b", configuration: try configuration(second)) }
        #expect(again.code == .invalidArgument && again.message.contains("new cluster"))
        try await back.close()

        // A flipped byte in a snapshot fails verify (and so the restore, which verifies first).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: backup.path + "/b/BK_0.snapshot"))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: backup.path + "/b/BK_0.snapshot"))
        #expect(try ClusterStore.verifyBackup(directory: backup.path + "/b").problems.contains { $0.contains("BK_0.snapshot") })
    }

    func expectError<T>(_ body: () async throws -> T) async throws -> JellyError {
        do {
            _ = try await body()
        } catch let e as JellyError {
            return e
        }
        throw ConformanceFailure("expected a JellyError, got success")
    }
}
