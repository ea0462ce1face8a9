import JellyCore

/// The change feed, waiting for changes, and client pushes (docs/sync.md) on the embedded store.
///
/// The feed reads the index: every object and tombstone of the partition is there with its
/// version, so a page costs one pass over the partition's slots under the store's lock (plus
/// the values, from the cache or the read threads). Tombstones stay in the index while
/// compaction keeps them (`Configuration.tombstoneRetentionMilliseconds`); the partition's floor
/// is its floor record's version (`floorSlot`).
extension EmbeddedStore: ChangeListening {
    public func changes(partition: String, since: UInt64, limit: Int, epoch: String?, role: SyncRole) async throws -> ChangeBatch {
        try ChangeFeed.validate(partition: partition, limit: limit, limits: limits)
        let pk = ByteName(partition)
        let now = clock.nowMilliseconds()
        let storeEpoch = shared.epoch
        let (page, floor, lease, puts) = try shared.state.withLock { state -> (ChangeFeed.Page, UInt64, LockInfo?, [(ByteName, SlotEntry, SegmentReader?)]) in
            if state.closed { throw JellyError(.unavailable, "the store is closed") }
            let lease = state.index.leases[pk].flatMap { $0.isLive(at: now) ? $0.info(partition: partition) : nil }
            let slots = state.index.partitions[pk] ?? [:]
            var feed: [ChangeFeed.Slot] = []
            feed.reserveCapacity(slots.count)
            var highest: UInt64 = 0
            var floor: UInt64 = 0
            for (k, e) in slots {
                highest = max(highest, e.version)
                if k == floorSlot { floor = e.version; continue }
                if k == leaseSlot || SystemKeys.isSystem(k.string) { continue }
                feed.append(ChangeFeed.Slot(key: k.string, version: e.version, deleted: e.kind != .put))
            }
            let page = ChangeFeed.page(slots: feed, highest: highest, since: since, floor: floor, epoch: storeEpoch, callerEpoch: epoch, limit: limit)
            // The page's objects, in its order, for one read of their values.
            let puts: [(ByteName, SlotEntry, SegmentReader?)] = page.slots.compactMap { slot in
                guard !slot.deleted else { return nil }
                let k = ByteName(slot.key)
                return slots[k].map { (k, $0, state.readers[$0.segment]) }
            }
            return (page, floor, lease, puts)
        }
        var objects = try await readValues(partition: partition, puts).makeIterator()
        var changes: [Change] = []
        changes.reserveCapacity(page.slots.count)
        for slot in page.slots {
            if slot.deleted {
                changes.append(Change(key: slot.key, version: slot.version, object: nil))
                continue
            }
            // Deleted since the page was chosen (nil): the tombstone comes with the next page.
            guard let read = objects.next(), let object = read else { continue }
            if role.mayRead(object.access) { changes.append(Change(key: slot.key, version: slot.version, object: object)) }
        }
        return ChangeBatch(epoch: storeEpoch, floor: floor, next: page.next, reset: page.reset, changes: changes, more: page.more, lock: lease)
    }

    public func waitForChanges(partition: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool {
        try ChangeFeed.validateWait(partition: partition, timeoutMilliseconds: timeoutMilliseconds, limits: limits)
        let pk = ByteName(partition)
        let shared = self.shared
        let current: @Sendable () throws -> UInt64 = {
            try shared.state.withLock { state in
                if state.closed { throw JellyError(.unavailable, "the store is closed") }
                return state.index.partitions[pk]?.values.reduce(0) { max($0, $1.version) } ?? 0
            }
        }
        return await shared.changeWaiters.wait(partition: partition, after: after, timeout: .milliseconds(timeoutMilliseconds), currentNow: current)
    }

    public func listenForChanges(partition: String, _ listener: @escaping @Sendable (UInt64) -> Void) -> ChangeListener {
        shared.changeWaiters.listen(partition: partition, listener)
    }

    public func sync(partition: String, clientID: String, mutations: [ClientMutation], role: SyncRole) async throws -> SyncResult {
        try await ClientSync.push(SyncBackend(store: self), gate: shared.syncGate, partition: partition, clientID: clientID, mutations: mutations, role: role)
    }

    /// The embedded store as `ClientSync` sees it: reads and writes of system keys allowed.
    struct SyncBackend: ClientSyncBackend {
        let store: EmbeddedStore
        var limits: JellyLimits { store.limits }
        var clock: any JellyClock { store.clock }

        func syncRead(partition: String, keys: [String]) async throws -> [String: StoredObject] {
            let pk = ByteName(partition)
            let entries = try store.shared.state.withLock { state -> [(ByteName, SlotEntry, SegmentReader?)] in
                if state.closed { throw JellyError(.unavailable, "the store is closed") }
                let slots = state.index.partitions[pk] ?? [:]
                return keys.compactMap { key in
                    let k = ByteName(key)
                    guard let e = slots[k], e.kind == .put else { return nil }
                    return (k, e, state.readers[e.segment])
                }
            }
            var out: [String: StoredObject] = [:]
            for (entry, object) in zip(entries, try await store.readValues(partition: partition, entries)) {
                if let object { out[entry.0.string] = object }
            }
            return out
        }

        func syncWrite(partition: String, _ operations: [WriteOperation]) async throws -> WriteResult {
            try await withUnsafeThrowingContinuation { continuation in
                store.write(partition: partition, operations, lockToken: nil, releaseLock: false, allowSystemKeys: true) { continuation.resume(with: $0) }
            }
        }
    }
}
