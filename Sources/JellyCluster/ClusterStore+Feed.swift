import JellyCore
import NATSClient

/// The change feed, waiting for changes and client pushes (docs/sync.md) on the cluster store.
///
/// The feed reads every object subject's last message of the partition at one point of the
/// stream, proven fresh (ClusterStore+FreshReads; tombstones are kept: a deleted object's
/// subject keeps its delete marker, so the floor is 0); the epoch is the shard stream's `jelly_epoch`, new whenever the stream is made. A wait
/// subscribes to the partition's subjects, so a commit through any node wakes it.
extension ClusterStore {
    public func changes(partition: String, since: UInt64, limit: Int, epoch: String?, role: SyncRole) async throws -> ChangeBatch {
        try ChangeFeed.validate(partition: partition, limit: limit, limits: limits)
        try checkReady()
        let s = subjects(partition)
        let storeEpoch = self.epoch(of: partition)
        let (entries, highest, lease) = try await partitionState(s)
        var slots: [ChangeFeed.Slot] = []
        var objects: [String: StoredObject] = [:]
        for (key, state, object) in entries where !SystemKeys.isSystem(key) {
            if let object {
                objects[key] = object
                slots.append(ChangeFeed.Slot(key: key, version: object.version, deleted: false))
            } else {
                slots.append(ChangeFeed.Slot(key: key, version: state.tombstone ?? state.sequence, deleted: true))
            }
        }
        let page = ChangeFeed.page(slots: slots, highest: highest, since: since, floor: 0, epoch: storeEpoch, callerEpoch: epoch, limit: limit)
        var changes: [Change] = []
        for slot in page.slots {
            if slot.deleted {
                changes.append(Change(key: slot.key, version: slot.version, object: nil))
            } else if let object = objects[slot.key], role.mayRead(object.access) {
                changes.append(Change(key: slot.key, version: slot.version, object: object))
            }
        }
        let live = lease.flatMap { $0.isLive(at: clock.nowMilliseconds()) ? $0.info(partition: partition) : nil }
        return ChangeBatch(epoch: storeEpoch, floor: 0, next: page.next, reset: page.reset, changes: changes, more: page.more, lock: live)
    }

    public func waitForChanges(partition: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool {
        try ChangeFeed.validateWait(partition: partition, timeoutMilliseconds: timeoutMilliseconds, limits: limits)
        try checkReady()
        let s = subjects(partition)
        // The partition's objects and its lock (not its fence or its frames, which change
        // without a change to the feed).
        let objects = try connection.subscribe(s.objectPrefix + ">")
        defer { objects.unsubscribe() }
        let lock = try connection.subscribe(s.lock)
        defer { lock.unsubscribe() }
        // Subscribed first, then read, so a commit in between is not missed.
        if try await partitionState(s).highest > after { return true }
        return await Self.firstMessage([objects, lock], timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Waits until one of `subscriptions` delivers a message (true) or the time is up (false).
    static func firstMessage(_ subscriptions: [NATSSubscription], timeoutMilliseconds: Int) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for subscription in subscriptions {
                group.addTask {
                    for await _ in subscription.messages { return true }
                    return false
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(timeoutMilliseconds))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Every object subject of the partition with its last message (system keys included), the
    /// highest version of anything in it (its objects', tombstones' and progress records'
    /// commits and its lock's last message), and its lease. The feed's `next` and a wait's
    /// "has it changed" both come from here, so they agree: a push that wrote only its
    /// progress moves both.
    /// Read at one point, proven fresh by a barrier: a client never sees its feed go back.
    func partitionState(_ s: PartitionSubjects) async throws -> (entries: [(key: String, state: PartitionCache.Object, object: StoredObject?)], highest: UInt64, lease: Lease?) {
        let snapshot = try await partitionSnapshot(s, atLeast: try await barrier(s))
        var highest = snapshot.lockSequence
        for entry in snapshot.objects { highest = max(highest, entry.object?.version ?? entry.state.tombstone ?? entry.state.sequence) }
        return (snapshot.objects, highest, snapshot.lease)
    }

    public func sync(partition: String, clientID: String, mutations: [ClientMutation], role: SyncRole) async throws -> SyncResult {
        try checkReady()
        return try await ClientSync.push(SyncBackend(store: self), gate: syncGate, partition: partition, clientID: clientID, mutations: mutations, role: role)
    }

    /// The cluster store as `ClientSync` sees it: reads and writes of system keys allowed.
    struct SyncBackend: ClientSyncBackend {
        let store: ClusterStore
        var limits: JellyLimits { store.limits }
        var clock: any JellyClock { store.clock }

        func syncRead(partition: String, keys: [String]) async throws -> [String: StoredObject] {
            var out: [String: StoredObject] = [:]
            for (key, (_, object)) in zip(keys, try await store.readObjects(store.subjects(partition), keys: keys)) {
                if let object { out[key] = object }
            }
            return out
        }

        func syncWrite(partition: String, _ operations: [WriteOperation]) async throws -> WriteResult {
            try await store.write(partition: partition, operations, lockToken: nil, releaseLock: false, allowSystemKeys: true)
        }
    }
}
