import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// The value cache: its state machine alone, then through the store, where a cached value must
/// never stand in for the index's current version.
@Suite struct ValueCacheTests {
    func ref(_ p: String, _ k: String) -> ObjectRef { ObjectRef(partition: ByteName(p), key: ByteName(k)) }

    @Test func anEntryAnswersOnlyForItsVersion() {
        var cache = ValueCacheState(capacityBytes: 1 << 20, entryBytesMax: 1 << 10)
        let a = ref("p", "a")
        cache.insert(a, version: 5, contentType: "t", value: [1], access: .serverOnly)
        #expect(cache.value(a, version: 5)?.value == [1])
        #expect(cache.value(a, version: 6) == nil, "the index names another version: not this value")
        cache.insert(a, version: 4, contentType: "t", value: [9], access: .serverOnly)
        #expect(cache.value(a, version: 5)?.value == [1], "an older value (a slow writer or read) never replaces a newer one")
        cache.insert(a, version: 7, contentType: "t", value: [2], access: ObjectAccess(read: .public, write: .owner))
        #expect(cache.value(a, version: 5) == nil && cache.value(a, version: 7)?.access == ObjectAccess(read: .public, write: .owner))
        cache.remove(a, before: 7)
        #expect(cache.value(a, version: 7) != nil, "a delete older than the value leaves it")
        cache.remove(a, before: 8)
        #expect(cache.value(a, version: 7) == nil && cache.bytes == 0 && cache.count == 0)
        #expect(cache.hits == 4 && cache.misses == 3)
    }

    @Test func itStaysWithinItsBytesAndEvictsTheOldestFirst() {
        let value = [UInt8](repeating: 7, count: 1000)
        let cost = ValueCacheState.cost(ref("p", "k00"), contentType: "t", valueBytes: value.count)
        var cache = ValueCacheState(capacityBytes: cost * 10, entryBytesMax: 1000)
        for i in 0..<25 {
            cache.insert(ref("p", "k\(i < 10 ? "0" : "")\(i)"), version: UInt64(i + 1), contentType: "t", value: value, access: .serverOnly)
            #expect(cache.bytes <= cost * 10)
        }
        #expect(cache.count == 10)
        #expect(cache.value(ref("p", "k14"), version: 15) == nil, "the oldest went first")
        #expect(cache.value(ref("p", "k15"), version: 16) != nil && cache.value(ref("p", "k24"), version: 25) != nil)
        #expect(cache.evictions == 15)
        cache.insert(ref("p", "big"), version: 100, contentType: "t", value: [UInt8](repeating: 1, count: 1001), access: .serverOnly)
        #expect(cache.value(ref("p", "big"), version: 100) == nil, "values over entryBytesMax are not kept")
        #expect((150...300).contains(ValueCacheState.entryOverheadBytes), "docs/limits.md gives the overhead: \(ValueCacheState.entryOverheadBytes)")
        var off = ValueCacheState(capacityBytes: 0, entryBytesMax: 1 << 20)
        off.insert(ref("p", "a"), version: 1, contentType: "t", value: [1], access: .serverOnly)
        #expect(off.count == 0 && off.bytes == 0)
    }

    @Test func aReadKeepsAnEntryAndOverwritesReuseSlots() {
        let value = [UInt8](repeating: 1, count: 100)
        let cost = ValueCacheState.cost(ref("p", "a"), contentType: "t", valueBytes: value.count)
        var cache = ValueCacheState(capacityBytes: cost * 3, entryBytesMax: 1 << 10)
        for (v, k) in ["a", "b", "c"].enumerated() { cache.insert(ref("p", k), version: UInt64(v + 1), contentType: "t", value: value, access: .serverOnly) }
        #expect(cache.value(ref("p", "a"), version: 1) != nil)
        cache.insert(ref("p", "d"), version: 4, contentType: "t", value: value, access: .serverOnly)
        #expect(cache.keysByRecency.map(\.key.string) == ["c", "a", "d"], "b, least recently used, went; a was read")
        for v in 5...100_000 {
            cache.insert(ref("p", ["a", "c", "d", "e"][v % 4]), version: UInt64(v), contentType: "t", value: value, access: .serverOnly)
        }
        #expect(cache.count == 3 && cache.slotCount <= 4, "slots are reused: \(cache.slotCount)")
        #expect(cache.bytes == cost * 3)
        cache.remove(ref("p", "e"), before: 200_000)
        cache.insert(ref("p", "a"), version: 300_000, contentType: "t", value: [UInt8](repeating: 1, count: 2000), access: .serverOnly)
        #expect(cache.value(ref("p", "a"), version: 299_997) == nil && cache.count == 1, "a value too large to keep drops the old one")
        #expect(cache.bytes == cost)
    }

    @Test func aSecondLoadComesFromMemory() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = try EmbeddedStore.open(.testing(directory: dir.path, clock: ManualClock()))
        try await store.put(partition: "player", key: "a", value: bytes("A1"), contentType: "text/plain")
        try await store.put(partition: "player", key: "b", value: bytes("B1"))
        let (lock, loaded) = try await store.acquireLockAndLoad(partition: "player", owner: "s1", ttlMilliseconds: 10_000)
        #expect(loaded.map(\.value) == [bytes("A1"), bytes("B1")] && loaded[0].contentType == "text/plain")
        #expect(store.info().valueCache.hits == 2 && store.info().valueCache.misses == 0, "saved values are loaded from memory")
        try await store.saveAndRelease(partition: "player", [.put(key: "a", value: bytes("A2")), .delete(key: "b")], lockToken: lock.token)
        #expect(try await store.get(partition: "player", key: "a")?.value == bytes("A2"))
        #expect(try await store.get(partition: "player", key: "b") == nil)
        #expect(try await store.acquireLockAndLoad(partition: "player", owner: "s2", ttlMilliseconds: 10_000).objects.map(\.key) == ["a"])
        try await store.close()

        // Reopened: the cache is empty; the first read goes to disk and keeps the value.
        let reopened = try EmbeddedStore.open(.testing(directory: dir.path, clock: ManualClock()))
        #expect(try await reopened.get(partition: "player", key: "a")?.value == bytes("A2"))
        #expect(try await reopened.get(partition: "player", key: "a")?.value == bytes("A2"))
        let stats = reopened.info().valueCache
        #expect(stats.misses == 1 && stats.hits == 1, "\(stats)")
        try await reopened.close()
    }

    /// The value of a commit that failed is in the cache (writers add it when they queue), but
    /// the index never reaches its version: reads must keep answering the durable value.
    @Test func aValueWhoseCommitFailedIsNeverRead() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (config, fault) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: ManualClock())
        let store = try EmbeddedStore.open(config)
        try await store.put(partition: "p", key: "k", value: bytes("durable"))
        fault.failSyncs()
        _ = try await expectJellyError { try await store.put(partition: "p", key: "k", value: bytes("lost")) }
        #expect(try await store.get(partition: "p", key: "k")?.value == bytes("durable"))
        #expect(store.info().valueCache.entries == 1 && store.info().valueCache.hits == 0, "the lost value is cached but never answered")
        store.crashForTesting()
    }

    /// Many keys through a cache that holds a few of them, with compaction moving records and
    /// reopens emptying the cache: every read equals the model.
    @Test(arguments: [0, 3_000, 64 << 10])
    func readsMatchAModelWhateverTheCacheHolds(cacheBytes: Int) async throws {
        var rng = SeededRandom(seed: UInt64(cacheBytes) + 1)
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var config = EmbeddedStoreConfiguration.testing(directory: dir.path, clock: ManualClock())
        config.valueCacheBytes = cacheBytes
        config.segmentBytes = 256 << 10
        config.limits.batchBytesMax = 64 << 10
        config.groupCommitBytesMax = 64 << 10
        config.compaction.garbageBytesAllowance = 0
        var store = try EmbeddedStore.open(config)
        var model: [String: [UInt8]] = [:]
        for step in 0..<600 {
            let key = "k\(rng.below(40))"
            switch rng.below(8) {
            case 0...3:
                let value = [UInt8](repeating: UInt8(rng.below(256)), count: 1 + rng.below(2000))
                try await store.put(partition: "p\(key.count)", key: key, value: value)
                model[key] = value
            case 4:
                _ = try await store.delete(partition: "p\(key.count)", key: key)
                model[key] = nil
            case 5:
                let got = try await store.get(partition: "p\(key.count)", key: key)
                #expect(got?.value == model[key], "step \(step): \(key)")
            case 6:
                if rng.below(10) == 0 { _ = try await store.compact() }
                for p in ["p2", "p3"] {
                    let loaded = try await store.acquireLockAndLoad(partition: p, owner: "o", ttlMilliseconds: 1000)
                    let expected = model.filter { "p\($0.key.count)" == p }.sorted { $0.key < $1.key }
                    #expect(loaded.objects.map(\.key) == expected.map(\.key) && loaded.objects.map(\.value) == expected.map(\.value), "step \(step): load of \(p)")
                    try await store.releaseLock(partition: p, token: loaded.lock.token)
                }
            default:
                if rng.below(8) == 0 {
                    try await store.close()
                    store = try EmbeddedStore.open(config)
                }
            }
            #expect(store.info().valueCache.bytes <= cacheBytes)
        }
        let stats = store.info().valueCache
        if cacheBytes >= 64 << 10 { #expect(stats.hits > 0, "\(stats)") }
        if cacheBytes == 0 { #expect(stats.hits == 0 && stats.entries == 0) }
        try await store.close()
        #expect(try StoreChecker.check(directory: dir.path).isConsistent)
    }
}
