import JellyCore
import Synchronization

/// Recently written (and recently read) values, kept in memory so that loading them again does
/// not go to the disk.
///
/// The log is written with direct I/O, which bypasses the operating system's page cache: without
/// this cache every read — a session's lock-and-load of a player saved seconds ago on another
/// server, a client polling a public object — is a disk read competing with the log's writes.
///
/// The index stays the only truth. An entry is (object, version, value); a read uses it only when
/// the index's current version of that object is the entry's version, so the cache can hold a
/// value before its commit is durable (writers insert it when they queue the commit, off the
/// committer thread), a value whose commit failed, or an old value after a delete: none of them
/// is ever returned. A version names one record of one object (versions are store-wide and a
/// batch names each key once), so an equal version means the same bytes as on disk.
///
/// Bounded by `capacityBytes` (each entry costs its value, its names and a fixed overhead);
/// values over `entryBytesMax` are not kept. Eviction is least recently used: an entry is used
/// when it is written, replaced or read.
struct ValueCacheState: Sendable {
    struct Entry: Sendable {
        var ref: ObjectRef
        var version: UInt64
        var contentType: String
        var value: [UInt8]
        var access: ObjectAccess
        var cost: Int
        /// Neighbours in the recency list (slot numbers; -1 at the ends).
        var older = -1
        var newer = -1
    }

    /// Counted per entry besides its value and names: its slot, two dictionary buckets (the
    /// table is between three quarters and three eighths full) and the value array's header and
    /// allocation (48 bytes).
    static let entryOverheadBytes = MemoryLayout<Entry>.stride + 2 * (MemoryLayout<ObjectRef>.stride + MemoryLayout<Int>.stride) + 48

    let capacityBytes: Int
    let entryBytesMax: Int
    /// Entries live in slots (reused through `freeSlots`) linked from oldest to newest use;
    /// `slotOf` finds an object's slot.
    private var slots: [Entry] = []
    private var freeSlots: [Int] = []
    private var slotOf: [ObjectRef: Int] = [:]
    private var oldest = -1
    private var newest = -1
    private(set) var bytes = 0
    private(set) var hits = 0
    private(set) var misses = 0
    private(set) var evictions = 0

    init(capacityBytes: Int, entryBytesMax: Int) {
        self.capacityBytes = max(0, capacityBytes)
        self.entryBytesMax = max(0, entryBytesMax)
    }

    var count: Int { slotOf.count }
    /// Slots allocated, used or free (for tests of their bound).
    var slotCount: Int { slots.count }

    static func cost(_ ref: ObjectRef, contentType: String, valueBytes: Int) -> Int {
        entryOverheadBytes + ref.partition.string.utf8.count + ref.key.string.utf8.count + contentType.utf8.count + valueBytes
    }

    /// Keeps `value` as `ref`'s value at `version`, unless the cache already holds a newer one.
    mutating func insert(_ ref: ObjectRef, version: UInt64, contentType: String, value: [UInt8], access: ObjectAccess) {
        let cost = Self.cost(ref, contentType: contentType, valueBytes: value.count)
        let fits = value.count <= entryBytesMax && cost <= capacityBytes
        if let slot = slotOf[ref] {
            if slots[slot].version >= version { return }
            guard fits else { return drop(slot) }
            bytes += cost - slots[slot].cost
            slots[slot].version = version
            slots[slot].contentType = contentType
            slots[slot].value = value
            slots[slot].access = access
            slots[slot].cost = cost
            touch(slot)
        } else {
            guard fits else { return }
            let entry = Entry(ref: ref, version: version, contentType: contentType, value: value, access: access, cost: cost)
            let slot: Int
            if let reused = freeSlots.popLast() {
                slot = reused
                slots[slot] = entry
            } else {
                slot = slots.count
                slots.append(entry)
            }
            slotOf[ref] = slot
            bytes += cost
            link(slot)
        }
        while bytes > capacityBytes && oldest >= 0 {
            drop(oldest)
            evictions += 1
        }
    }

    /// Forgets `ref`'s value if it is older than `version` (a delete at `version`).
    mutating func remove(_ ref: ObjectRef, before version: UInt64) {
        guard let slot = slotOf[ref], slots[slot].version < version else { return }
        drop(slot)
    }

    /// `ref`'s object if the cache holds it at exactly `version` (the index's current version).
    mutating func value(_ ref: ObjectRef, version: UInt64) -> StoredObject? {
        if let slot = slotOf[ref], slots[slot].version == version {
            hits += 1
            touch(slot)
            let entry = slots[slot]
            return StoredObject(key: ref.key.string, version: version, contentType: entry.contentType, value: entry.value, access: entry.access)
        }
        misses += 1
        return nil
    }

    private mutating func drop(_ slot: Int) {
        unlink(slot)
        slotOf[slots[slot].ref] = nil
        bytes -= slots[slot].cost
        slots[slot].value = []
        slots[slot].cost = 0
        freeSlots.append(slot)
    }

    /// Makes `slot` the newest.
    private mutating func touch(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        link(slot)
    }

    private mutating func link(_ slot: Int) {
        slots[slot].older = newest
        slots[slot].newer = -1
        if newest >= 0 { slots[newest].newer = slot } else { oldest = slot }
        newest = slot
    }

    private mutating func unlink(_ slot: Int) {
        let (older, newer) = (slots[slot].older, slots[slot].newer)
        if older >= 0 { slots[older].newer = newer } else { oldest = newer }
        if newer >= 0 { slots[newer].older = older } else { newest = older }
        slots[slot].older = -1
        slots[slot].newer = -1
    }

    /// The entries from least to most recently used (for tests).
    var keysByRecency: [ObjectRef] {
        var keys: [ObjectRef] = []
        var at = oldest
        while at >= 0 {
            keys.append(slots[at].ref)
            at = slots[at].newer
        }
        return keys
    }
}

/// The store's value cache: `ValueCacheState` behind its own lock (never the store's).
final class ValueCache: Sendable {
    private let state: Mutex<ValueCacheState>
    let enabled: Bool

    init(capacityBytes: Int, entryBytesMax: Int) {
        state = Mutex(ValueCacheState(capacityBytes: capacityBytes, entryBytesMax: entryBytesMax))
        enabled = capacityBytes > 0
    }

    /// The puts and deletes of a queued commit at `version`.
    func recordCommit(_ refs: [ObjectRef], _ operations: [WriteOperation], included: [Bool], version: UInt64) {
        guard enabled else { return }
        state.withLock { cache in
            for i in refs.indices where included[i] {
                switch operations[i] {
                case .put(_, let value, let contentType, _, let access):
                    cache.insert(refs[i], version: version, contentType: contentType ?? defaultContentType, value: value, access: access)
                case .delete:
                    cache.remove(refs[i], before: version)
                }
            }
        }
    }

    /// A value read from disk at the index's version.
    func recordRead(_ ref: ObjectRef, _ object: StoredObject) {
        guard enabled else { return }
        state.withLock { $0.insert(ref, version: object.version, contentType: object.contentType, value: object.value, access: object.access) }
    }

    /// For each (ref, version), the cached object, or nil where the cache does not hold that
    /// version. One lock for all.
    func objects(_ wanted: [(ref: ObjectRef, version: UInt64)]) -> [StoredObject?] {
        guard enabled else { return [StoredObject?](repeating: nil, count: wanted.count) }
        return state.withLock { cache in wanted.map { cache.value($0.ref, version: $0.version) } }
    }

    func object(_ ref: ObjectRef, version: UInt64) -> StoredObject? {
        guard enabled else { return nil }
        return state.withLock { $0.value(ref, version: version) }
    }

    var statistics: ValueCacheStatistics {
        state.withLock {
            ValueCacheStatistics(
                capacityBytes: $0.capacityBytes, bytes: $0.bytes, entries: $0.count,
                hits: $0.hits, misses: $0.misses, evictions: $0.evictions
            )
        }
    }
}

/// The value cache's size and use since open (`EmbeddedStore.info()`, `/metrics`).
public struct ValueCacheStatistics: Sendable, Equatable {
    public var capacityBytes: Int
    public var bytes: Int
    public var entries: Int
    /// Reads answered from memory, and reads that went to the disk.
    public var hits: Int
    public var misses: Int
    public var evictions: Int
}
