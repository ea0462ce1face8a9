import JellyCore

/// Where the latest record of a slot is, and what it says. 24 bytes.
///
/// A slot is an object key of a partition, or the partition's lease (the reserved empty key,
/// which no object can have). The index holds only the latest record of each slot, found by
/// highest version, so log replay order does not matter (compaction moves records forward
/// with their versions unchanged).
struct SlotEntry: Equatable, Sendable {
    var version: UInt64
    var segment: UInt32
    var offset: UInt32
    var recordLength: UInt32
    /// Bits 14–15: kind (0 put, 1 delete, 2 lease, 3 unlease); bits 0–13: the id of the put's
    /// (content type, access) pair in `ContentTypeTable`.
    var meta: UInt16
    /// Superseded records of this slot still on disk (saturating). A tombstone may be dropped
    /// only when this is zero, or an older value would come back on the next open.
    var deadCount: UInt16

    enum Kind: UInt16 { case put = 0, delete = 1, lease = 2, unlease = 3 }

    var kind: Kind { Kind(rawValue: meta >> 14) ?? .put }
    var contentTypeID: UInt16 { meta & 0x3FFF }

    static func meta(kind: Kind, contentTypeID: UInt16) -> UInt16 { kind.rawValue << 14 | (contentTypeID & 0x3FFF) }

    /// A put or a lease: something that must be kept. Tombstones are kept only while they hide
    /// older records.
    var isLiveData: Bool { kind == .put || kind == .lease }
}

extension SlotEntry.Kind {
    init(_ kind: RecordKind) {
        switch kind {
        case .put: self = .put
        case .delete: self = .delete
        case .lease: self = .lease
        case .unlease, .seal: self = .unlease
        }
    }
}

/// (content type, access flags) pairs interned to 14-bit ids; id 0 is the default type with
/// server-only access. When the table is full, new pairs are read from their record on disk
/// (id `uncached`). Interning keeps the per-object index entry at 24 bytes.
struct ContentTypeTable: Sendable {
    static let uncached: UInt16 = 0x3FFF
    struct Pair: Hashable, Sendable {
        var contentType: ByteName
        var flags: UInt8
    }
    private(set) var pairs: [(contentType: String, flags: UInt8)] = [(defaultContentType, 0)]
    private var ids: [Pair: UInt16] = [Pair(contentType: ByteName(defaultContentType), flags: 0): 0]

    mutating func id(for name: String, flags: UInt8) -> UInt16 {
        if flags == 0 && name == defaultContentType { return 0 }
        let key = Pair(contentType: ByteName(name), flags: flags)
        if let id = ids[key] { return id }
        guard pairs.count < Int(ContentTypeTable.uncached) else { return ContentTypeTable.uncached }
        let id = UInt16(pairs.count)
        pairs.append((name, flags))
        ids[key] = id
        return id
    }

    func pair(for id: UInt16) -> (contentType: String, flags: UInt8)? {
        id == ContentTypeTable.uncached ? nil : pairs[Int(id)]
    }
}

/// What a record tells the index (a record's metadata without its value).
struct RecordMeta: Sendable {
    var kind: RecordKind
    var partition: ByteName
    /// The object key, or the lease owner.
    var key: String
    var contentType: String
    var recordLength: UInt32
    var version: UInt64
    var token: UInt64
    var expiresAtMilliseconds: Int64
    /// A put's access flags (`ObjectAccess.flags`); zero otherwise.
    var flags: UInt8
    /// A lease's TTL as granted (`RecordView.leaseTTLUnits`); zero otherwise.
    var leaseTTLUnits: UInt16

    /// The slot this record sets (the key, or the lease slot), made when the record is made.
    let slot: ByteName

    init(kind: RecordKind, partition: ByteName, key: String, contentType: String, recordLength: UInt32, version: UInt64, token: UInt64, expiresAtMilliseconds: Int64, flags: UInt8 = 0, leaseTTLUnits: UInt16 = 0) {
        self.flags = flags
        self.leaseTTLUnits = leaseTTLUnits
        self.kind = kind
        self.partition = partition
        self.key = key
        self.contentType = contentType
        self.recordLength = recordLength
        self.version = version
        self.token = token
        self.expiresAtMilliseconds = expiresAtMilliseconds
        self.slot = (kind == .lease || kind == .unlease) ? leaseSlot : ByteName(key)
    }
}

/// The reserved slot of a partition's lease.
let leaseSlot = ByteName("")

/// The key of a partition's feed floor record: a delete record (never a user key: control
/// characters are not allowed in keys) whose version is the highest tombstone version
/// compaction dropped from the partition. Kept by compaction like live data (docs/format.md).
let floorSlotKey = "\u{0}floor"
let floorSlot = ByteName(floorSlotKey)

struct SegmentStats: Sendable, Equatable {
    /// Bytes of records written to the segment.
    var recordBytes: Int64 = 0
    /// Bytes of records that are the latest of their slot.
    var liveBytes: Int64 = 0
    /// The segment's file size (its data end once sealed).
    var fileBytes: Int64 = 0
    var sealed = false
}

/// The in-memory index: latest record per slot, per partition; the leases; per-segment space.
struct StoreIndex: Sendable {
    var partitions: [ByteName: [ByteName: SlotEntry]] = [:]
    /// The latest lease record of each partition whose lease was not released (live or expired).
    var leases: [ByteName: Lease] = [:]
    /// Recovery only: the TTL each recovered lease was granted with (0: unknown), to bound what
    /// is left of it when the clock at open is behind the one that granted it.
    var leaseTTLUnits: [ByteName: UInt16] = [:]
    var contentTypes = ContentTypeTable()
    var segments: [UInt32: SegmentStats] = [:]
    /// Number of objects (puts that are the latest of their slot).
    var objectCount = 0
    var maxVersion: UInt64 = 0

    func entry(partition: ByteName, slot: ByteName) -> SlotEntry? {
        partitions[partition]?[slot]
    }

    /// Applies a record found at (segment, offset), by highest version. `moveOf` names the
    /// location a compaction copied it from: an equal-version entry there is repointed.
    /// Returns true when the record became its slot's latest.
    @discardableResult
    mutating func apply(
        _ record: RecordMeta, segment: UInt32, offset: UInt32,
        moveOf: (segment: UInt32, offset: UInt32)? = nil, updateLeases: Bool = true
    ) -> Bool {
        apply(record, version: record.version, segment: segment, offset: offset, moveOf: moveOf, updateLeases: updateLeases)
    }

    /// `apply` with the record's version given apart (a commit's records carry their commit's).
    /// The partition and the slot are each hashed once.
    @discardableResult
    mutating func apply(
        _ record: RecordMeta, version: UInt64, segment: UInt32, offset: UInt32,
        moveOf: (segment: UInt32, offset: UInt32)? = nil, updateLeases: Bool
    ) -> Bool {
        maxVersion = max(maxVersion, version)
        let slot = record.slot
        let kind = SlotEntry.Kind(record.kind)
        let ctID: UInt16 = kind == .put ? contentTypes.id(for: record.contentType, flags: record.flags) : 0
        var newEntry = SlotEntry(
            version: version, segment: segment, offset: offset, recordLength: record.recordLength,
            meta: SlotEntry.meta(kind: kind, contentTypeID: ctID), deadCount: 0
        )
        // The entry it replaces, if it became the latest; (nil, true) when the slot was new.
        let (replaced, became): (SlotEntry?, Bool) = Self.update(&partitions[record.partition, default: [:]], slot: slot) { old in
            guard let old else { return (newEntry, nil, true) }
            let isMove = moveOf.map { old.version == version && old.segment == $0.segment && old.offset == $0.offset } ?? false
            if version > old.version || isMove {
                newEntry.deadCount = old.deadCount == .max ? .max : old.deadCount + 1
                return (newEntry, old, true)
            }
            var kept = old
            if old.deadCount != .max { kept.deadCount += 1 }
            return (kept, nil, false)
        }
        if let replaced {
            segments[replaced.segment]?.liveBytes -= Int64(replaced.recordLength)
            if replaced.kind == .put { objectCount -= 1 }
        }
        segments[segment, default: SegmentStats()].recordBytes += Int64(record.recordLength)
        if became {
            segments[segment, default: SegmentStats()].liveBytes += Int64(record.recordLength)
            if kind == .put { objectCount += 1 }
            // While the store runs, the lease table is decided when requests are queued; only
            // recovery derives it from the records.
            switch updateLeases ? record.kind : .seal {
            case .lease:
                leases[record.partition] = Lease(
                    owner: record.key, token: LockToken(record.token),
                    expiresAtMilliseconds: record.expiresAtMilliseconds
                )
                if record.leaseTTLUnits != 0 { leaseTTLUnits[record.partition] = record.leaseTTLUnits } else { leaseTTLUnits[record.partition] = nil }
            case .unlease:
                leases[record.partition] = nil
                leaseTTLUnits[record.partition] = nil
            default: break
            }
        }
        return became
    }

    /// Replaces (or inserts) one slot's entry with what `decide` makes of the old one, hashing
    /// the slot once. `decide` returns the entry to store, the entry replaced (if any) and
    /// whether the new record became the latest.
    private static func update(
        _ slots: inout [ByteName: SlotEntry], slot: ByteName,
        _ decide: (SlotEntry?) -> (store: SlotEntry, replaced: SlotEntry?, became: Bool)
    ) -> (SlotEntry?, Bool) {
        if let i = slots.index(forKey: slot) {
            let (store, replaced, became) = decide(slots.values[i])
            slots.values[i] = store
            return (replaced, became)
        }
        let (store, _, became) = decide(nil)
        slots[slot] = store
        return (nil, became)
    }

    /// Segment `id` is sealed; its data ends at `dataEnd` (and a full segment's file keeps its
    /// size only until compaction removes or recycles it).
    mutating func markSealed(_ id: UInt32, dataEnd: Int) {
        segments[id, default: SegmentStats()].sealed = true
        segments[id, default: SegmentStats()].fileBytes = Int64(dataEnd)
    }

    /// Accounts for a record that compaction removes from disk with its segment: a superseded
    /// record lowers its slot's dead count; a slot whose latest record it is (a tombstone with
    /// nothing left to hide) is dropped.
    mutating func forget(partition: ByteName, slot: ByteName, segment: UInt32, offset: UInt32) {
        guard var slots = partitions[partition], var entry = slots[slot] else { return }
        if entry.segment == segment && entry.offset == offset {
            slots[slot] = nil
            if entry.kind == .put { objectCount -= 1 }
        } else {
            if entry.deadCount != .max && entry.deadCount > 0 { entry.deadCount -= 1 }
            slots[slot] = entry
        }
        partitions[partition] = slots.isEmpty ? nil : slots
    }

    /// Whether the record at (segment, offset) must be kept by compaction, and if so whether it
    /// can be dropped instead (a tombstone hiding nothing).
    enum Liveness { case dead, keep, drop }

    func liveness(partition: ByteName, slot: ByteName, segment: UInt32, offset: UInt32) -> Liveness {
        guard let entry = partitions[partition]?[slot], entry.segment == segment, entry.offset == offset else {
            return .dead
        }
        if entry.isLiveData || entry.deadCount != 0 || slot == floorSlot { return .keep }
        return .drop
    }

    /// How many tombstones of `partition` are newer than `version` (its floor record aside),
    /// counting up to `limit`.
    func newerTombstones(partition: ByteName, than version: UInt64, limit: Int) -> Int {
        guard let slots = partitions[partition], slots.count > limit else { return 0 }
        var n = 0
        for (slot, e) in slots where e.kind == .delete && e.version > version && slot != floorSlot {
            n += 1
            if n >= limit { break }
        }
        return n
    }

    /// The partition's feed floor (0 when compaction never dropped one of its tombstones).
    func floor(partition: ByteName) -> UInt64 {
        partitions[partition]?[floorSlot]?.version ?? 0
    }
}
