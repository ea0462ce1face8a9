import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Synchronization
import Testing

/// A write returns only once its block is durable, and no read sees it before then: the log's
/// sync is frozen (held by the fault-injecting storage) while the test looks at the store.
@Suite struct AcknowledgementTests {
    /// A store over the fault-injecting storage with `p/k` durable at the returned version, then
    /// `write` started while the log's syncs are held, and returned once its block waits at its
    /// sync.
    func writeHeldAtItsSync<T: Sendable>(
        _ dir: TemporaryDirectory, _ write: @escaping @Sendable (EmbeddedStore) async throws -> T
    ) async throws -> (EmbeddedStore, EmbeddedStoreConfiguration, FaultInjectingStorage, durable: UInt64, Task<T, any Error>) {
        let (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: ManualClock())
        let store = try EmbeddedStore.open(config)
        let durable = try await store.put(partition: "p", key: "k", value: bytes("durable"))
        fault.holdSyncs(pathSuffix: ".log")
        let writer = Task { try await write(store) }
        for _ in 0..<2500 where fault.heldSyncs == 0 { try await Task.sleep(nanoseconds: 2_000_000) }
        try #require(fault.heldSyncs == 1, "the committer reached the sync of the block")
        return (store, config, fault, durable, writer)
    }

    @Test func noWriteReturnsAndNoReadSeesItWhileItsSyncIsPending() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let returned = Flag()
        let (store, _, fault, durable, writer) = try await writeHeldAtItsSync(dir) { store in
            let version = try await store.put(partition: "p", key: "k", value: bytes("pending"))
            returned.set()
            return version
        }
        // Time for a writer resumed too early to return.
        try await Task.sleep(nanoseconds: 100_000_000)
        #expect(!returned.isSet, "a write returned while its block's sync was pending")

        // The value is queued (and in the value cache) but not durable: reads answer the durable one.
        let seen = try await store.get(partition: "p", key: "k")
        #expect(seen?.version == durable && seen?.value == bytes("durable"), "a read saw a value not yet durable: v\(String(describing: seen?.version))")
        let listed = try await store.list(partition: "p", after: nil, limit: 10).objects
        #expect(listed.map(\.version) == [durable], "the listing names only the durable version")

        fault.stopHoldingSyncs()
        let version = try await writer.value
        #expect(version > durable)
        let after = try await store.get(partition: "p", key: "k")
        #expect(after?.version == version && after?.value == bytes("pending"))
        try await store.close()
    }

    /// The power goes off the moment the block's sync starts: the writer must get an error, never
    /// a success, and after the crash the store holds the durable value.
    @Test func aPowerCutAtTheSyncFailsTheWriteItCarried() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (store, config, fault, durable, writer) = try await writeHeldAtItsSync(dir) { store in
            try await store.put(partition: "p", key: "k", value: bytes("lost with the power"))
        }
        fault.cutPower()
        fault.stopHoldingSyncs()
        let result = await writer.result
        #expect((try? result.get()) == nil, "a write whose sync never happened was acknowledged: \(result)")
        store.crashForTesting()
        try fault.crash { _, _ in 0 }

        let reopened = try EmbeddedStore.open(config)
        let got = try await reopened.get(partition: "p", key: "k")
        #expect(got?.version == durable && got?.value == bytes("durable"))
        try await reopened.close()
    }
}

/// A flag set by one task and read by another.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
