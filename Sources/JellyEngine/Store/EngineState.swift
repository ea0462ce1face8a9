import Dispatch
import JellyCore
import Synchronization

// The engine's shared state: what the store's API, the committer, the maintenance worker and
// recovery hand each other. Changes that touch several parts of it (a commit applied, a
// segment opened) are named operations here, so every caller keeps the same rules (every
// indexed segment has a reader; the overlay forgets a write once the index has it).

/// An object key of a partition, for the pending overlay.
struct ObjectRef: Hashable, Sendable {
    var partition: ByteName
    var key: ByteName
}

/// Writes queued but not yet durable, for condition checks (reads never see them).
struct PendingObject: Sendable {
    /// The newest pending version; nil when the newest pending write is a delete.
    var version: UInt64?
    var count = 0

    mutating func push(version: UInt64?) {
        self.version = version
        count += 1
    }
}

/// The store's mutable state, behind one mutex (held briefly, never across I/O).
struct EngineState: Sendable {
    var index = StoreIndex()
    var overlay: [ObjectRef: PendingObject] = [:]
    var queue = CommitQueue()
    var nextVersion: UInt64 = 1
    /// Set when a write or sync failed: the store refuses writes from then on.
    var failure: JellyError?
    /// Set while the disk is full: writes are refused with it until the maintenance worker
    /// sees room again (`Maintenance.checkDiskSpace`). Unlike `failure`, it passes.
    var diskFull: JellyError?
    /// The lowest version a backup taken now can be restored to: compaction (which drops
    /// records superseded before it ran) has not run since. Set at open (what compaction did
    /// before is not known) and at the end of every compaction round.
    var restorableFrom: UInt64 = 1
    var closed = false
    var readers: [UInt32: SegmentReader] = [:]
    var activeSegment: UInt32 = 0

    init() {}

    var writeBlocker: JellyError? {
        if let failure { return failure }
        if closed { return JellyError(.unavailable, "the store is closed") }
        if let diskFull { return diskFull }
        return nil
    }

    // MARK: Named operations
    //
    // The committer, the maintenance worker and recovery change the state only through these,
    // so the rules between its parts hold in one place: every indexed segment has a reader and
    // loses it with its index entry; the queue, the failure and `closed` change together.

    /// The committer's next step: a group of queued requests, sleep, or exit.
    mutating func takeGroup(maxBytes: Int) -> CommitQueue.NextStep { queue.next(maxBytes: maxBytes) }

    /// The highest version issued so far (queued or committed): what a seal block records.
    var highestIssuedVersion: UInt64 { nextVersion - 1 }

    /// A write or sync failed: the store refuses writes from now on. Returns the requests still
    /// queued, to be failed, and the failure they get (the first one, if it failed before).
    mutating func poison(_ error: JellyError) -> (queued: [CommitRequest], failure: JellyError) {
        if failure == nil { failure = error }
        overlay.removeAll()
        return (queue.drain(), failure ?? error)
    }

    /// The disk is full: `refusal` is answered to every write until it passes. The requests
    /// queued (and the group being written, `group`) fail with it; what their queuing decided
    /// ahead of the disk (lease changes, pending values) is undone newest first, so the state
    /// is again that of the last durable commit. Returns the queued requests, to be failed.
    mutating func refuseForDiskFull(_ refusal: JellyError, group: [CommitRequest]) -> [CommitRequest] {
        diskFull = refusal
        let queued = queue.drain()
        overlay.removeAll()
        for request in (group + queued).sorted(by: { $0.version > $1.version }) {
            if let undo = request.leaseBefore { index.leases[undo.partition] = undo.lease }
        }
        return queued
    }

    /// Closing: no more writes are taken; the committer drains the queue, then exits.
    mutating func beginClose() -> CommitQueue.EnqueueAction {
        closed = true
        return queue.close()
    }

    /// A simulated crash: closed and failed at once; returns the queued requests to fail.
    mutating func crash(_ error: JellyError) -> [CommitRequest] {
        closed = true
        failure = error
        return queue.drain()
    }

    /// Segment `id` is the log's active one.
    mutating func activate(segment id: UInt32) { activeSegment = id }

    /// Segment `id` is sealed with its data ending at `dataEnd`.
    mutating func markSealed(_ id: UInt32, dataEnd: Int) { index.markSealed(id, dataEnd: dataEnd) }

    /// The unsealed segment `id` (the compaction output) is durable through `dataEnd`.
    mutating func setDataEnd(_ id: UInt32, _ dataEnd: Int64) {
        index.segments[id, default: SegmentStats()].fileBytes = dataEnd
    }

    /// Every segment's reader is closed (the store stopped).
    mutating func closeReaders() { readers.removeAll() }

    /// The reader of segment `id`, if it is indexed.
    func reader(_ id: UInt32) -> SegmentReader? { readers[id] }

    /// Sealed segments compaction may take (not the active one, not those in `excluded`), by id.
    func compactableSegments(excluding excluded: Set<UInt32>) -> [(id: UInt32, stats: SegmentStats)] {
        index.segments
            .filter { $0.value.sealed && $0.key != activeSegment && !excluded.contains($0.key) }
            .map { (id: $0.key, stats: $0.value) }
            .sorted { $0.id < $1.id }
    }

    /// Whether compaction must copy the record at (segment, offset).
    func mustCopy(_ meta: RecordMeta, segment: UInt32, offset: UInt32) -> Bool {
        index.liveness(partition: meta.partition, slot: meta.slot, segment: segment, offset: offset) == .keep
    }

    /// What compaction does with a record: copy it, leave it (superseded), or drop it as a
    /// tombstone past its retention (raising its partition's feed floor).
    enum Fate { case copy, leave, dropTombstone }

    func fate(_ meta: RecordMeta, version: UInt64, segment: UInt32, offset: UInt32, now: Int64, policy: CompactionPolicy) -> Fate {
        switch index.liveness(partition: meta.partition, slot: meta.slot, segment: segment, offset: offset) {
        case .dead: return .leave
        case .keep: return .copy
        case .drop:
            // A tombstone hiding nothing: kept for the change feed while young and among the
            // partition's newest (a time of 0 is a tombstone from before retention existed).
            let young = meta.expiresAtMilliseconds > 0 && now - meta.expiresAtMilliseconds < policy.tombstoneRetentionMilliseconds
            if young && index.newerTombstones(partition: meta.partition, than: version, limit: policy.tombstonesPerPartitionMax) < policy.tombstonesPerPartitionMax {
                return .copy
            }
            return .dropTombstone
        }
    }

    /// Compaction wrote a partition's new floor record at (segment, offset).
    mutating func recordFloor(_ meta: RecordMeta, segment: UInt32, offset: UInt32) {
        index.apply(meta, segment: segment, offset: offset, updateLeases: false)
    }

    /// Compaction copied a record from `from` to (segment, offset): the index points at the copy.
    mutating func recordMoved(_ meta: RecordMeta, to segment: UInt32, offset: UInt32, from: (segment: UInt32, offset: UInt32)) {
        index.apply(meta, segment: segment, offset: offset, moveOf: from, updateLeases: false)
    }

    /// A record of segment `id` leaves the disk with it.
    mutating func forgetRecord(_ meta: RecordMeta, segment id: UInt32, offset: UInt32) {
        index.forget(partition: meta.partition, slot: meta.slot, segment: id, offset: offset)
    }

    /// Segment `id` was compacted away: its index entry and its reader go together.
    mutating func removeSegment(_ id: UInt32) {
        index.segments[id] = nil
        readers[id] = nil
    }

    /// Recovery's result: the index, every indexed segment's reader, and the next version.
    init(recovered index: StoreIndex, readers: [UInt32: SegmentReader], nextVersion: UInt64) {
        self.index = index
        self.readers = readers
        self.nextVersion = nextVersion
    }

    /// A group commit is durable (as its durability mode asks) at `locations` of `segment`, whose
    /// data now ends at `blockEnd`: its records go into the index, so reads see them, and the
    /// pending overlay forgets them. Leases were decided when the requests were queued.
    mutating func applyCommitted(_ group: [CommitRequest], segment: UInt32, locations: [UInt32], blockEnd: Int64) {
        var li = 0
        for request in group {
            for (i, meta) in request.metas.enumerated() where request.include[i] {
                index.apply(meta, version: request.version, segment: segment, offset: locations[li], updateLeases: false)
                li += 1
                if meta.kind != .lease && meta.kind != .unlease {
                    settlePending(ObjectRef(partition: meta.partition, key: meta.slot))
                }
            }
        }
        index.segments[segment, default: SegmentStats()].fileBytes = blockEnd
    }

    /// One queued write of `ref` is now in the index: the overlay forgets it once none is left.
    /// One hash lookup.
    mutating func settlePending(_ ref: ObjectRef) {
        guard let i = overlay.index(forKey: ref) else { return }
        if overlay.values[i].count <= 1 {
            overlay.remove(at: i)
        } else {
            overlay.values[i].count -= 1
        }
    }

    /// The version a condition sees: the newest queued write, else the committed object.
    func currentVersion(_ ref: ObjectRef) -> UInt64? {
        if let pending = overlay[ref] { return pending.version }
        guard let entry = index.entry(partition: ref.partition, slot: ref.key), entry.kind == .put else { return nil }
        return entry.version
    }
}

/// What the store's threads share.
final class EngineShared: Sendable {
    let state: Mutex<EngineState>
    let committerWake = DispatchSemaphore(value: 0)
    let directory: String
    let storage: any StorageSystem
    let directoryLock: Mutex<(any StorageFile)?>
    /// The store's history identifier (`Epoch`), for the change feed.
    let epoch: String
    /// Change feed callers waiting for a commit; the committer wakes them.
    let changeWaiters = ChangeWaiters()
    /// Pushes to one partition run one at a time.
    let syncGate = PartitionGate()

    init(state: EngineState, directory: String, storage: any StorageSystem, directoryLock: any StorageFile, epoch: String) {
        self.epoch = epoch
        self.state = Mutex(state)
        self.directory = directory
        self.storage = storage
        self.directoryLock = Mutex(directoryLock)
    }

    func releaseDirectory() {
        let lock = directoryLock.withLock { l -> (any StorageFile)? in
            let v = l
            l = nil
            return v
        }
        lock?.close()
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// Makes a started segment (the log's next one, or a compaction output) readable and known
    /// to the index, still unsealed. On failure its file is closed.
    func openForReads(_ started: StartedSegment) throws {
        let reader: SegmentReader
        do {
            reader = SegmentReader(id: started.id, file: try storage.openRead(path: started.path))
        } catch {
            started.file.close()
            throw error
        }
        state.withLock { state in
            state.readers[started.id] = reader
            state.index.segments[started.id] = SegmentStats(recordBytes: 0, liveBytes: 0, fileBytes: Int64(Format.segmentHeaderBytes), sealed: false)
        }
    }
}
