import Dispatch
import JellyCore
import Synchronization

/// The embedded Jelly store: a log-structured engine in this process, like SQLite.
///
/// ```swift
/// let store = try EmbeddedStore.open(EmbeddedStoreConfiguration(directory: "./jelly-data"))
/// let (lock, objects) = try await store.acquireLockAndLoad(partition: "player-42", owner: "server-1", ttlMilliseconds: 30_000)
/// try await store.put(partition: "player-42", key: "inventory", value: bytes, lockToken: lock.token)
/// try await store.saveAndRelease(partition: "player-42", [.put(key: "inventory", value: bytes)], lockToken: lock.token)
/// try await store.close()
/// ```
///
/// Guarantees: with `Durability.always`, a write returns only after it is on disk; a batch is
/// atomic (all of it survives a crash or none); reads see only writes that were committed;
/// lock tokens are durable before they are returned and never reused.
public final class EmbeddedStore: JellyStore, Sendable {
    public let configuration: EmbeddedStoreConfiguration
    public var limits: JellyLimits { configuration.limits }
    let shared: EngineShared
    let committer: Committer
    let maintenance: Maintenance
    /// The stream log (frames), apart from the object log.
    let frames: FrameLog
    let readers: BlockingIOPool
    /// Recent values in memory (see `ValueCache`).
    let values: ValueCache
    /// What recovery found (torn tails truncated and so on), for `jelly info` and logs.
    public let recoveryNotes: [String]
    let leaseClock: StepSafeClock

    init(configuration: EmbeddedStoreConfiguration, shared: EngineShared, committer: Committer, maintenance: Maintenance, frames: FrameLog, notes: [String]) {
        self.configuration = configuration
        self.frames = frames
        self.shared = shared
        self.committer = committer
        self.maintenance = maintenance
        self.readers = BlockingIOPool(threads: configuration.readThreads, name: "jelly-read")
        self.values = ValueCache(capacityBytes: configuration.valueCacheBytes, entryBytesMax: configuration.valueCacheEntryBytesMax)
        self.recoveryNotes = notes
        self.leaseClock = StepSafeClock(configuration.clock)
    }

    /// Lease time: the configured clock, never going back (`StepSafeClock`).
    var clock: any JellyClock { leaseClock }

    // MARK: Writes

    @discardableResult
    public func write(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool
    ) async throws -> WriteResult {
        try await withUnsafeThrowingContinuation { continuation in
            write(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock) { continuation.resume(with: $0) }
        }
    }

    /// `write` for callers outside Swift concurrency (the HTTP server's event loops): the same
    /// checks and commit, with `completion` called once — on the caller's thread for a write
    /// refused before it was queued, otherwise on the committer's thread after the commit is
    /// durable (per the durability mode). `completion` must not block.
    public func write(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool,
        completion: @escaping @Sendable (Result<WriteResult, any Error>) -> Void
    ) {
        write(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock, allowSystemKeys: false, completion: completion)
    }

    /// `write`, also for the store's own system keys (`SystemKeys`) when `allowSystemKeys`.
    func write(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool, allowSystemKeys: Bool,
        completion: @escaping @Sendable (Result<WriteResult, any Error>) -> Void
    ) {
        let limits = self.limits
        let total: Int
        do {
            total = try WriteRules.validateWrite(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock, limits: limits, allowSystemKeys: allowSystemKeys)
        } catch {
            return completion(.failure(error))
        }
        let partitionBytes = partition.utf8.count
        let pk = ByteName(partition)
        // Names and conditions are prepared here, outside the store's lock.
        var refs: [ObjectRef] = []
        refs.reserveCapacity(operations.count)
        var conditions: [WriteCondition] = []
        conditions.reserveCapacity(operations.count)
        for op in operations {
            refs.append(ObjectRef(partition: pk, key: ByteName(op.key)))
            switch op {
            case .put(_, _, _, let condition, _), .delete(_, let condition): conditions.append(condition)
            }
        }

        var records = EncodedRecords(capacity: total + Format.recordOverheadBytes * 2 + partitionBytes)
        var metas: [RecordMeta] = []
        metas.reserveCapacity(operations.count + 1)
        // A tombstone carries when it was made, for its retention (docs/format.md).
        var deletedAt: Int64 = 0
        for op in operations {
            switch op {
            case .put(let key, let value, let contentType, _, let access):
                let ct = contentType ?? defaultContentType
                records.append(kind: .put, partition: partition, key: key, contentType: ct, value: value, flags: access.flags)
                metas.append(RecordMeta(kind: .put, partition: pk, key: key, contentType: ct, recordLength: UInt32(records.records[records.records.count - 1].length), version: 0, token: 0, expiresAtMilliseconds: 0, flags: access.flags))
            case .delete(let key, _):
                if deletedAt == 0 { deletedAt = max(1, clock.nowMilliseconds()) }
                records.append(kind: .delete, partition: partition, key: key, expiresAtMilliseconds: deletedAt)
                metas.append(RecordMeta(kind: .delete, partition: pk, key: key, contentType: "", recordLength: UInt32(records.records[records.records.count - 1].length), version: 0, token: 0, expiresAtMilliseconds: deletedAt))
            }
        }
        if releaseLock, let lockToken {
            records.append(kind: .unlease, partition: partition, key: "", token: lockToken.rawValue)
            metas.append(RecordMeta(kind: .unlease, partition: pk, key: "", contentType: "", recordLength: UInt32(records.records[records.records.count - 1].length), version: 0, token: lockToken.rawValue, expiresAtMilliseconds: 0))
        }

        var applied = [Bool](repeating: true, count: operations.count)
        var previous = [UInt64?](repeating: nil, count: operations.count)
        var include = [Bool](repeating: true, count: metas.count)
        let requireLocks = configuration.requireLocks
        let clock = self.clock
        let shared = self.shared
        var queuedVersion: UInt64 = 0
        let outcome: Outcome = shared.state.withLock { state in
            if let blocker = state.writeBlocker { return .fail(blocker) }
            let now = clock.nowMilliseconds()
            if let error = LeaseRules.checkWrite(token: lockToken, current: state.index.leases[pk], partition: partition, now: now, requireLocks: requireLocks) {
                return .fail(error)
            }
            var anything = releaseLock
            for i in refs.indices {
                let current = state.currentVersion(refs[i])
                previous[i] = current
                if let error = WriteRules.conditionError(conditions[i], current: current, key: refs[i].key.string, partition: partition) {
                    return .fail(error)
                }
                if metas[i].kind == .delete && current == nil {
                    include[i] = false
                    applied[i] = false
                } else {
                    anything = true
                }
            }
            if !anything { return .nothing }
            let version = state.nextVersion
            state.nextVersion += 1
            queuedVersion = version
            records.seal(version: version)
            for i in refs.indices where include[i] {
                state.overlay[refs[i], default: PendingObject()].push(version: metas[i].kind == .put ? version : nil)
            }
            let leaseBefore = releaseLock ? (pk, state.index.leases[pk]) : nil
            if releaseLock { state.index.leases[pk] = nil }
            let (applied, previous) = (applied, previous)
            let request = CommitRequest(
                records: records, include: include, metas: metas, version: version, needsSync: releaseLock,
                completion: .callback { result in
                    completion(result.map { WriteResult(version: $0, applied: applied, previousVersions: previous) }.mapError { $0 })
                },
                leaseBefore: leaseBefore
            )
            return state.queue.enqueue(request) == .wakeCommitter ? .queuedWake : .queued
        }
        switch outcome {
        case .fail(let error): completion(.failure(error))
        case .nothing: completion(.success(WriteResult(version: nil, applied: applied, previousVersions: previous)))
        case .queued: values.recordCommit(refs, operations, included: include, version: queuedVersion)
        case .queuedWake:
            shared.committerWake.signal()
            values.recordCommit(refs, operations, included: include, version: queuedVersion)
        }
    }

    enum Outcome { case fail(JellyError), nothing, queued, queuedWake }

    // MARK: Locks

    public func acquireLock(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> LockInfo {
        try await grantedLease(partition, .acquire(owner: owner, ttlMilliseconds: ttlMilliseconds))
    }

    public func acquireLockAndLoad(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> (lock: LockInfo, objects: [StoredObject]) {
        let lock = try await acquireLock(partition: partition, owner: owner, ttlMilliseconds: ttlMilliseconds)
        return (lock, try await loadAll(partition: partition))
    }

    public func renewLock(partition: String, token: LockToken, ttlMilliseconds: Int64) async throws -> LockInfo {
        try await grantedLease(partition, .renew(token: token, ttlMilliseconds: ttlMilliseconds))
    }

    public func transferLock(partition: String, token: LockToken, to owner: String, ttlMilliseconds: Int64) async throws -> LockInfo {
        try await grantedLease(partition, .transfer(token: token, toOwner: owner, ttlMilliseconds: ttlMilliseconds))
    }

    public func releaseLock(partition: String, token: LockToken) async throws {
        _ = try await leaseOperation(partition: partition, .release(token: token))
    }

    public func inspectLock(partition: String) async throws -> LockInfo? {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        let now = clock.nowMilliseconds()
        return shared.state.withLock { state in
            state.index.leases[ByteName(partition)].flatMap { $0.isLive(at: now) ? $0.info(partition: partition) : nil }
        }
    }

    @discardableResult
    public func breakLock(partition: String) async throws -> LockInfo? {
        try await leaseOperation(partition: partition, .breakLock)
    }

    /// `leaseOperation` for requests that always leave a lease (acquire, renew, transfer).
    private func grantedLease(_ partition: String, _ request: LeaseRequest) async throws -> LockInfo {
        guard let info = try await leaseOperation(partition: partition, request) else {
            throw JellyError(.io, "internal error: \(request) left no lease")
        }
        return info
    }

    /// Decides a lease request under the lock, writes its record, waits until it is durable.
    /// Returns the lease after the operation (nil after a release or break, or the broken
    /// lease for `.breakLock`).
    private func leaseOperation(partition: String, _ request: LeaseRequest) async throws -> LockInfo? {
        try request.validate(partition: partition, limits: limits)
        let pk = ByteName(partition)
        let clock = self.clock
        let shared = self.shared
        var result: LockInfo? = nil
        _ = try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<UInt64, any Error>) in
            let outcome: Outcome = shared.state.withLock { state in
                if let blocker = state.writeBlocker { return .fail(blocker) }
                let now = clock.nowMilliseconds()
                let current = state.index.leases[pk]
                var records = EncodedRecords(capacity: 256)
                let version = state.nextVersion
                let meta: RecordMeta
                switch LeaseRules.decide(request, current: current, partition: partition, now: now) {
                case .reject(let error):
                    return .fail(error)
                case .grantNewToken(let owner, let expires):
                    let lease = Lease(owner: owner, token: LockToken(version), expiresAtMilliseconds: expires)
                    let ttl = Format.leaseTTLUnits(expires - now)
                    records.append(kind: .lease, partition: partition, key: owner, token: version, expiresAtMilliseconds: expires, leaseTTLUnits: ttl)
                    meta = RecordMeta(kind: .lease, partition: pk, key: owner, contentType: "", recordLength: 0, version: version, token: version, expiresAtMilliseconds: expires, leaseTTLUnits: ttl)
                    state.index.leases[pk] = lease
                    result = lease.info(partition: partition)
                case .extend(let lease):
                    let ttl = Format.leaseTTLUnits(lease.expiresAtMilliseconds - now)
                    records.append(kind: .lease, partition: partition, key: lease.owner, token: lease.token.rawValue, expiresAtMilliseconds: lease.expiresAtMilliseconds, leaseTTLUnits: ttl)
                    meta = RecordMeta(kind: .lease, partition: pk, key: lease.owner, contentType: "", recordLength: 0, version: version, token: lease.token.rawValue, expiresAtMilliseconds: lease.expiresAtMilliseconds, leaseTTLUnits: ttl)
                    state.index.leases[pk] = lease
                    result = lease.info(partition: partition)
                case .clear(let previous):
                    guard let previous else { return .nothing }
                    records.append(kind: .unlease, partition: partition, key: "", token: previous.token.rawValue)
                    meta = RecordMeta(kind: .unlease, partition: pk, key: "", contentType: "", recordLength: 0, version: version, token: previous.token.rawValue, expiresAtMilliseconds: 0)
                    state.index.leases[pk] = nil
                    if case .breakLock = request { result = previous.info(partition: partition) }
                }
                state.nextVersion += 1
                records.seal(version: version)
                var m = meta
                m.recordLength = UInt32(records.records[0].length)
                let request = CommitRequest(
                    records: records, include: [true], metas: [m], version: version,
                    needsSync: true, completion: .continuation(continuation), leaseBefore: (pk, current)
                )
                return state.queue.enqueue(request) == .wakeCommitter ? .queuedWake : .queued
            }
            switch outcome {
            case .fail(let error): continuation.resume(throwing: error)
            case .nothing: continuation.resume(returning: 0)
            case .queued: break
            case .queuedWake: shared.committerWake.signal()
            }
        }
        return result
    }

    // MARK: Reads

    public func get(partition: String, key: String) async throws -> StoredObject? {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        try Names.validate(key, as: .key, maxBytes: limits.keyBytesMax)
        let ref = ObjectRef(partition: ByteName(partition), key: ByteName(key))
        guard let (entry, reader) = try lookup(ref) else { return nil }
        if let cached = values.object(ref, version: entry.version) { return cached }
        let object = try await readers.run { [self] in try readCurrent(entry: entry, reader: reader, partition: partition, key: key) }
        if let object { values.recordRead(ref, object) }
        return object
    }

    public func listPartitions(prefix: String?, after: String?, limit: Int) async throws -> PartitionListing {
        // `after` and `prefix` are compared byte by byte: any text will do.
        let limit = max(1, min(limit, limits.listLimitMax))
        let now = clock.nowMilliseconds()
        // One pass over the index under its lock: each partition's live objects and live lock.
        let summaries: [String: PartitionSummary] = try shared.state.withLock { state in
            if state.closed { throw JellyError(.unavailable, "the store is closed") }
            var out: [String: PartitionSummary] = [:]
            for (p, slots) in state.index.partitions {
                let name = p.string
                if let prefix, !name.utf8.starts(with: prefix.utf8) { continue }
                var objects = 0
                for (k, e) in slots where e.kind == .put && !SystemKeys.isSystem(k.string) { objects += 1 }
                let lock = state.index.leases[p].flatMap { $0.isLive(at: now) ? $0.info(partition: name) : nil }
                if objects > 0 || lock != nil { out[name] = PartitionSummary(partition: name, objects: objects, lock: lock) }
            }
            for (p, lease) in state.index.leases where lease.isLive(at: now) && out[p.string] == nil {
                if let prefix, !p.string.utf8.starts(with: prefix.utf8) { continue }
                out[p.string] = PartitionSummary(partition: p.string, objects: 0, lock: lease.info(partition: p.string))
            }
            return out
        }
        return await PartitionListing.page(summaries.keys, prefix: prefix, after: after, limit: limit) { summaries[$0] }
    }

    public func list(partition: String, after: String?, limit: Int) async throws -> ObjectListing {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        if let after { try Names.validate(after, as: .key, maxBytes: limits.keyBytesMax) }
        let limit = max(1, min(limit, limits.listLimitMax))
        let cursor = after.map(ByteName.init)
        let partitionBytes = partition.utf8.count
        let (page, more, contentTypes): ([(ByteName, SlotEntry)], Bool, ContentTypeTable) = try shared.state.withLock { state in
            if state.closed { throw JellyError(.unavailable, "the store is closed") }
            guard let slots = state.index.partitions[ByteName(partition)] else { return ([], false, state.index.contentTypes) }
            var keys: [(ByteName, SlotEntry)] = []
            keys.reserveCapacity(slots.count)
            for (k, e) in slots where e.kind == .put && !SystemKeys.isSystem(k.string) {
                if let cursor, !(cursor < k) { continue }
                keys.append((k, e))
            }
            keys.sort { $0.0 < $1.0 }
            let more = keys.count > limit
            return (Array(keys.prefix(limit)), more, state.index.contentTypes)
        }
        var summaries: [ObjectSummary] = []
        summaries.reserveCapacity(page.count)
        for (key, entry) in page {
            let contentType: String
            let access: ObjectAccess
            if let pair = contentTypes.pair(for: entry.contentTypeID) {
                contentType = pair.contentType
                access = ObjectAccess(flags: pair.flags) ?? .serverOnly
            } else {
                // A pair beyond the in-memory table: read it from the record.
                let object = try lookup(partition: partition, key: key.string).map { entry, reader in
                    try readObject(entry: entry, reader: reader, partition: partition, key: key.string)
                }
                contentType = object?.contentType ?? defaultContentType
                access = object?.access ?? .serverOnly
            }
            let size = Int(entry.recordLength) - Format.recordOverheadBytes - partitionBytes - key.string.utf8.count - contentType.utf8.count
            summaries.append(ObjectSummary(key: key.string, version: entry.version, size: size, contentType: contentType, access: access))
        }
        return ObjectListing(objects: summaries, next: more ? page.last?.0.string : nil)
    }

    /// The index entry of a live object and the file holding it, or nil when it does not exist.
    func lookup(partition: String, key: String) throws -> (SlotEntry, SegmentReader?)? {
        try lookup(ObjectRef(partition: ByteName(partition), key: ByteName(key)))
    }

    func lookup(_ ref: ObjectRef) throws -> (SlotEntry, SegmentReader?)? {
        try shared.state.withLock { state in
            if state.closed { throw JellyError(.unavailable, "the store is closed") }
            guard let entry = state.index.entry(partition: ref.partition, slot: ref.key), entry.kind == .put else { return nil }
            return (entry, state.readers[entry.segment])
        }
    }

    /// Every object of a partition with its value, in ascending key order.
    func loadAll(partition: String) async throws -> [StoredObject] {
        let pk = ByteName(partition)
        let entries = try shared.state.withLock { state -> [(ByteName, SlotEntry, SegmentReader?)] in
            if state.closed { throw JellyError(.unavailable, "the store is closed") }
            guard let slots = state.index.partitions[pk] else { return [] }
            return slots.filter { $0.value.kind == .put && !SystemKeys.isSystem($0.key.string) }.map { ($0.key, $0.value, state.readers[$0.value.segment]) }
        }.sorted { $0.0 < $1.0 }
        return try await readValues(partition: partition, entries).compactMap { $0 }
    }

    /// The objects index entries point at, in their order (nil for one deleted meanwhile): from
    /// the value cache where it holds the entry's version, the rest in one trip to the read
    /// threads, each then remembered in the cache. Loads, feed pages and pushes read through it.
    func readValues(partition: String, _ entries: [(ByteName, SlotEntry, SegmentReader?)]) async throws -> [StoredObject?] {
        let pk = ByteName(partition)
        var objects = values.objects(entries.map { (ObjectRef(partition: pk, key: $0.0), $0.1.version) })
        let missing = entries.indices.filter { objects[$0] == nil }
        if missing.isEmpty { return objects }
        let read = try await readers.run { [self] in
            try missing.map { i in try readCurrent(entry: entries[i].1, reader: entries[i].2, partition: partition, key: entries[i].0.string) }
        }
        for (n, i) in missing.enumerated() {
            objects[i] = read[n]
            if let object = read[n] { values.recordRead(ObjectRef(partition: pk, key: entries[i].0), object) }
        }
        return objects
    }

    /// Reads the record an index entry points at. If it fails verification and the index no
    /// longer points there, compaction moved the record and reused the file between the lookup
    /// and the read: read it where it is now (nil if it was deleted meanwhile). Damage at an
    /// unchanged location is reported.
    func readCurrent(entry: SlotEntry, reader: SegmentReader?, partition: String, key: String) throws -> StoredObject? {
        do {
            return try readObject(entry: entry, reader: reader, partition: partition, key: key)
        } catch let error as JellyError where error.code == .corruption {
            guard let (now, nowReader) = try lookup(partition: partition, key: key) else { return nil }
            if now.segment == entry.segment && now.offset == entry.offset { throw error }
            return try readObject(entry: now, reader: nowReader, partition: partition, key: key)
        }
    }

    /// Reads a record and checks it is the one the index promised: checksum, kind, names, version.
    func readObject(entry: SlotEntry, reader: SegmentReader?, partition: String, key: String) throws -> StoredObject {
        guard let reader else {
            throw JellyError(.io, "internal error: segment \(entry.segment) is not open for reading")
        }
        let (bytes, view) = try reader.readRecord(at: UInt64(entry.offset), length: Int(entry.recordLength), version: entry.version, what: "of key \(Names.quoted(key))")
        return try bytes.withUnsafeBytes { raw in
            guard view.kind == .put, raw[view.partition].elementsEqual(partition.utf8), raw[view.key].elementsEqual(key.utf8) else {
                throw JellyError(.corruption, "\(reader.file.path) at offset \(entry.offset): record does not match the index entry for key \(Names.quoted(key)); run `jelly check`")
            }
            return StoredObject(
                key: key, version: view.version,
                contentType: String(decoding: raw[view.contentType], as: UTF8.self),
                value: Array(raw[view.value]),
                access: ObjectAccess(flags: view.flags) ?? .serverOnly
            )
        }
    }

    // MARK: Lifecycle

    public func close() async throws {
        try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Void, any Error>) in
            committer.close { result in
                switch result {
                case .success: c.resume()
                case .failure(let e): c.resume(throwing: e)
                }
            }
        }
        frames.close()
        maintenance.stop()
        readers.stop()
        shared.releaseDirectory()
        shared.changeWaiters.wakeAll()
    }

    /// Stops the store as a crash would: no seal, no final sync, queued writes fail. For tests of
    /// recovery; the data on disk is whatever the writes so far left there.
    public func crashForTesting() {
        maintenance.stop(crash: true)
        frames.crash()
        committer.crash()
        readers.stop()
        shared.releaseDirectory()
    }
}
