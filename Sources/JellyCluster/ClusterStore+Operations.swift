import Foundation
import JellyCore
import NATSClient
import NIOCore

extension ClusterStore {
    // MARK: Reads (proven fresh: they see every acknowledged write, ClusterStore+FreshReads)

    public func get(partition: String, key: String) async throws -> StoredObject? {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        try Names.validate(key, as: .key, maxBytes: limits.keyBytesMax)
        try checkReady()
        let s = subjects(partition)
        guard let m = try await freshLastMessage(s, subject: s.object(key)) else { return nil }
        return try Self.object(of: m, key: key).1
    }

    public func list(partition: String, after: String?, limit: Int) async throws -> ObjectListing {
        let limits = self.limits
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        if let after { try Names.validate(after, as: .key, maxBytes: limits.keyBytesMax) }
        try checkReady()
        let limit = max(1, min(limit, limits.listLimitMax))
        let s = subjects(partition)
        let snapshot = try await partitionSnapshot(s, atLeast: try await barrier(s))
        var objects: [ObjectSummary] = []
        for entry in snapshot.objects where !SystemKeys.isSystem(entry.key) {
            guard let object = entry.object, after.map({ $0.utf8.lexicographicallyPrecedes(entry.key.utf8) }) ?? true else { continue }
            if objects.count == limit { return ObjectListing(objects: objects, next: objects.last?.key) }
            objects.append(ObjectSummary(key: object.key, version: object.version, size: object.value.count, contentType: object.contentType, access: object.access))
        }
        return ObjectListing(objects: objects, next: nil)
    }

    /// Candidates from every shard stream's lock and object subjects (`STREAM.INFO` with a
    /// subjects filter), then each page's partitions counted from one proven read each (its
    /// objects and lock at a point after one barrier per shard, taken when the listing began):
    /// a round trip per partition listed, for operators.
    public func listPartitions(prefix: String?, after: String?, limit: Int) async throws -> PartitionListing {
        let limits = self.limits
        try checkReady()
        let limit = max(1, min(limit, limits.listLimitMax))
        var names = Set<String>()
        var barriers: [String: UInt64] = [:]
        let partitionToken = configuration.subjectPrefix.split(separator: ".").count + 1
        for shard in 0..<configuration.shards {
            let stream = "\(configuration.streamPrefix)_\(shard)"
            for filter in ["\(configuration.subjectPrefix).\(shard).*.l", "\(configuration.subjectPrefix).\(shard).*.o.*"] {
                let subjects = try await call("listing \(stream)", { try await js.subjects(stream: stream, filter: filter) })
                for subject in subjects.keys {
                    let tokens = subject.split(separator: ".")
                    guard tokens.count > partitionToken + 1, let bytes = Base64URL.decode(tokens[partitionToken]) else { continue }
                    names.insert(String(decoding: bytes, as: UTF8.self))
                }
            }
        }
        return try await PartitionListing.page(names, prefix: prefix, after: after, limit: limit) { name in
            let s = subjects(name)
            if barriers[s.stream] == nil { barriers[s.stream] = try await barrier(s) }
            let snapshot = try await partitionSnapshot(s, atLeast: barriers[s.stream] ?? 0)
            let objects = snapshot.objects.filter { $0.object != nil && !SystemKeys.isSystem($0.key) }.count
            let lock = snapshot.lease.flatMap { $0.isLive(at: clock.nowMilliseconds()) ? $0.info(partition: name) : nil }
            return objects > 0 || lock != nil ? PartitionSummary(partition: name, objects: objects, lock: lock) : nil
        }
    }

    public func inspectLock(partition: String) async throws -> LockInfo? {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        try checkReady()
        let s = subjects(partition)
        guard let m = try await freshLastMessage(s, subject: s.lock),
              let lease = try Self.lease(of: m, now: clock.nowMilliseconds(), limits: limits),
              lease.isLive(at: clock.nowMilliseconds()) else { return nil }
        return lease.info(partition: partition)
    }

    // MARK: Locks

    public func acquireLock(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> LockInfo {
        try await grantedLease(partition, .acquire(owner: owner, ttlMilliseconds: ttlMilliseconds))
    }

    public func acquireLockAndLoad(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> (lock: LockInfo, objects: [StoredObject]) {
        let (info, granted) = try await leaseOperationAndSequence(partition, .acquire(owner: owner, ttlMilliseconds: ttlMilliseconds))
        guard let info else { throw JellyError(.io, "internal error: acquiring a lock left no lease") }
        // Read at a point at or after the grant: every write acknowledged before it is seen (the
        // lock is a quorum write; the replica that answers the read must have reached it).
        let s = subjects(partition)
        let snapshot = try await partitionSnapshot(s, atLeast: granted)
        try await partitions.exclusive(partition) { cache in
            guard cache != nil else { return }
            for entry in snapshot.objects { cache?.objects[ByteName(entry.key)] = entry.state }
            cache?.complete = true
        }
        return (info, snapshot.objects.compactMap { SystemKeys.isSystem($0.key) ? nil : $0.object })
    }

    public func renewLock(partition: String, token: LockToken, ttlMilliseconds: Int64) async throws -> LockInfo {
        try await grantedLease(partition, .renew(token: token, ttlMilliseconds: ttlMilliseconds))
    }

    public func transferLock(partition: String, token: LockToken, to owner: String, ttlMilliseconds: Int64) async throws -> LockInfo {
        try await grantedLease(partition, .transfer(token: token, toOwner: owner, ttlMilliseconds: ttlMilliseconds))
    }

    /// `leaseOperation` for requests that always leave a lease (acquire, renew, transfer).
    private func grantedLease(_ partition: String, _ request: LeaseRequest) async throws -> LockInfo {
        guard let info = try await leaseOperation(partition, request) else {
            throw JellyError(.io, "internal error: \(request) left no lease")
        }
        return info
    }

    public func releaseLock(partition: String, token: LockToken) async throws {
        _ = try await leaseOperation(partition, .release(token: token))
    }

    @discardableResult
    public func breakLock(partition: String) async throws -> LockInfo? {
        try await leaseOperation(partition, .breakLock)
    }

    /// Decides a lease request on the lock subject's last message and publishes the result
    /// with that message's sequence as the expectation: if anyone changed the lock meanwhile,
    /// JetStream refuses it and the request is decided again on the new state.
    func leaseOperation(_ partition: String, _ request: LeaseRequest) async throws -> LockInfo? {
        try await leaseOperationAndSequence(partition, request).info
    }

    /// `leaseOperation`, and the lock subject's sequence after it (what it wrote, or what it read
    /// when it wrote nothing).
    func leaseOperationAndSequence(_ partition: String, _ request: LeaseRequest) async throws -> (info: LockInfo?, sequence: UInt64) {
        try request.validate(partition: partition, limits: limits)
        try checkReady()
        let s = subjects(partition)
        return try await decided(partition, what: "the lock of partition \(Names.quoted(partition))") { cache in
            let (state, fromCache) = try await lockState(s, cached: cache)
            cache = state
            var headers = NATSHeaders()
            headers[Header.expectedSequence] = String(state.lockSequence)
            let record: LockRecord?
            var lease: Lease?
            var result: LockInfo?
            let now = clock.nowMilliseconds()
            switch LeaseRules.decide(request, current: state.lease, partition: partition, now: now) {
            case .reject(let error):
                throw fromCache ? StaleCache() : error
            case .grantNewToken(let owner, let expires):
                headers[Header.lock] = "grant"
                record = LockRecord(owner: owner, expires: expires, token: nil, ttl: expires - now)
                lease = Lease(owner: owner, token: LockToken(0), expiresAtMilliseconds: expires) // token: the grant's sequence
            case .extend(let extended):
                headers[Header.lock] = "held"
                record = LockRecord(owner: extended.owner, expires: extended.expiresAtMilliseconds, token: extended.token.rawValue, ttl: extended.expiresAtMilliseconds - now)
                lease = extended
            case .clear(let previous):
                if case .breakLock = request { result = previous?.info(partition: partition) }
                guard previous != nil else { return (result, state.lockSequence) }
                headers[Header.lock] = "free"
                record = nil
            }
            let body = try record.map { ByteBuffer(bytes: try JSONEncoder().encode($0)) } ?? ByteBuffer()
            let ack = try await whileElecting { try await js.publish(s.lock, payload: body, headers: headers) }
            if lease?.token.rawValue == 0 { lease?.token = LockToken(ack.seq) }
            cache?.lockSequence = ack.seq
            cache?.lease = lease
            return (lease?.info(partition: partition) ?? result, ack.seq)
        }
    }

    // MARK: Writes

    /// One atomic batch: each object message carries its own subject's last sequence as an
    /// expectation (compare-and-set on every object), and the last message fences the batch on
    /// the lock subject: the lock's release (expecting the lock's last sequence) or a fence
    /// marker (expecting it through `Nats-Expected-Last-Subject-Sequence-Subject`).
    @discardableResult
    public func write(partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool) async throws -> WriteResult {
        try await write(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock, allowSystemKeys: false)
    }

    /// `write`, also for the store's own system keys (`SystemKeys`) when `allowSystemKeys`.
    func write(partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool, allowSystemKeys: Bool) async throws -> WriteResult {
        let limits = self.limits
        try WriteRules.validateWrite(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock, limits: limits, allowSystemKeys: allowSystemKeys)
        try checkReady()
        let s = subjects(partition)
        return try await decided(partition, what: "partition \(Names.quoted(partition))") { cache in
            var (c, fromCache) = try await lockState(s, cached: cache)
            // Objects this node has not seen yet are read from the leader.
            let missing = c.complete ? [] : operations.map(\.key).filter { c.objects[ByteName($0)] == nil }
            for (key, (state, _)) in zip(missing, try await readObjects(s, keys: missing)) { c.objects[ByteName(key)] = state }
            cache = c
            if let error = LeaseRules.checkWrite(token: lockToken, current: c.lease, partition: partition, now: clock.nowMilliseconds(), requireLocks: false) {
                throw fromCache ? StaleCache() : error
            }
            var messages: [JetStream.BatchMessage] = []
            var applied = [Bool](repeating: true, count: operations.count)
            var previous = [UInt64?](repeating: nil, count: operations.count)
            var written: [(key: String, isPut: Bool)] = [] // one per object message, in order
            for (i, op) in operations.enumerated() {
                let state = c.objects[ByteName(op.key)] ?? .init(sequence: 0, version: nil)
                previous[i] = state.version
                let condition: WriteCondition
                switch op {
                case .put(_, _, _, let cond, _), .delete(_, let cond): condition = cond
                }
                if let error = WriteRules.conditionError(condition, current: state.version, key: op.key, partition: partition) {
                    throw fromCache ? StaleCache() : error
                }
                var headers = NATSHeaders()
                headers[Header.expectedSequence] = String(state.sequence)
                switch op {
                case .put(_, let value, let contentType, _, let access):
                    headers[Header.contentType] = contentType ?? defaultContentType
                    headers[Header.access] = String(access.flags)
                    messages.append(.init(subject: s.object(op.key), headers: headers, payload: ByteBuffer(bytes: value)))
                    written.append((op.key, true))
                case .delete where state.version == nil:
                    applied[i] = false
                case .delete:
                    headers[Header.deleted] = "1"
                    messages.append(.init(subject: s.object(op.key), headers: headers))
                    written.append((op.key, false))
                }
            }
            if messages.isEmpty && !releaseLock {
                return WriteResult(version: nil, applied: applied, previousVersions: previous)
            }
            var last = NATSHeaders()
            last[Header.expectedSequence] = String(c.lockSequence)
            if releaseLock {
                last[Header.lock] = "free"
                messages.append(.init(subject: s.lock, headers: last))
            } else {
                last[Header.expectedSubject] = s.lock
                messages.append(.init(subject: s.fence, headers: last))
            }
            let n = messages.count
            for i in 0..<(n - 1) { messages[i].headers[Header.commitOffset] = String(n - 1 - i) }
            let ack = try await whileElecting { try await js.publishAtomic(messages) }
            let first = ack.seq - UInt64(n - 1)
            for (position, w) in written.enumerated() {
                c.objects[ByteName(w.key)] = .init(sequence: first + UInt64(position), version: w.isPut ? ack.seq : nil)
            }
            if releaseLock {
                c.lockSequence = ack.seq
                c.lease = nil
            }
            cache = c
            return WriteResult(version: ack.seq, applied: applied, previousVersions: previous)
        }
    }

    // MARK: Deciding on cached state

    /// Thrown by a decision that refused a request on cached state: it is decided again on
    /// state read from the stream leader before the refusal is reported.
    struct StaleCache: Error {}

    /// The partition's lock state: the cached one when there is one, else read from the leader.
    func lockState(_ s: PartitionSubjects, cached: PartitionCache?) async throws -> (PartitionCache, fromCache: Bool) {
        if let cached { return (cached, true) }
        let (sequence, lease) = try await readLock(s)
        return (PartitionCache(lockSequence: sequence, lease: lease), false)
    }

    /// Runs `decide` alone among this node's operations on `partition`, with its cache, until
    /// it returns: after a refusal on cached state (`StaleCache`), after JetStream refused a
    /// stale expectation (10071) or a busy fence (10164, after a short backoff), at most
    /// `conflictRetries` times. Any failure drops the partition's cache.
    func decided<T: Sendable>(_ partition: String, what: String, _ decide: (inout PartitionCache?) async throws -> T) async throws -> T {
        try await partitions.exclusive(partition) { cache in
            var attempt = 0
            while true {
                attempt += 1
                do {
                    return try await decide(&cache)
                } catch is StaleCache {
                    cache = nil
                } catch let e as JetStreamAPIError where e.errCode == JetStreamAPIError.wrongLastSequence || e.errCode == JetStreamAPIError.expectedSequenceBusy {
                    cache = nil
                    if attempt >= configuration.conflictRetries {
                        throw JellyError(.unavailable, "\(what) kept changing while this request was decided; retry")
                    }
                    if e.errCode == JetStreamAPIError.expectedSequenceBusy { try await Task.sleep(for: .milliseconds(min(attempt, 20))) }
                } catch {
                    cache = nil
                    throw Self.mapped(error, "writing \(what)")
                }
            }
        }
    }
}
