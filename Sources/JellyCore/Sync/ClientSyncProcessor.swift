/// What a backend gives the push algorithm: reads and writes that may name system keys.
public protocol ClientSyncBackend: Sendable {
    var limits: JellyLimits { get }
    var clock: any JellyClock { get }
    /// Reads `keys` (system keys allowed) as committed now; missing and deleted ones are absent.
    func syncRead(partition: String, keys: [String]) async throws -> [String: StoredObject]
    /// Commits `operations` (system keys allowed) without a lock token, so under the lock rule:
    /// `.locked` while a game server holds the partition. Conditions as for `write`.
    func syncWrite(partition: String, _ operations: [WriteOperation]) async throws -> WriteResult
}

/// The push rules (docs/sync.md), the same on every backend: they read the objects and the
/// client's progress, decide every mutation, and commit the applied ones together with the
/// client's new progress in one batch whose conditions are the versions read. A concurrent
/// write between the read and the commit fails a condition and the push is decided again;
/// nothing is half-applied.
public enum ClientSync {
    /// How often a push is decided again after a concurrent write before `.unavailable`.
    public static let attemptsMax = 8

    /// Checks a push's shape before anything is read: the partition, the client id, the count.
    /// A mutation with a bad key or value is not an error of the push: it is rejected alone.
    public static func validate(partition: String, clientID: String, mutations: [ClientMutation], limits: JellyLimits) throws {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        try Names.validate(clientID, as: .clientID, maxBytes: limits.clientIDBytesMax)
        if mutations.count > limits.syncMutationsMax {
            throw JellyError(.tooLarge, "a push has \(mutations.count) mutations; the limit is \(limits.syncMutationsMax); push the queue in parts")
        }
        let partitionBytes = partition.utf8.count
        var total = 0
        for m in mutations {
            if case .put(let value, let contentType) = m.operation {
                total += WriteRules.batchBytes(partitionBytes: partitionBytes, .put(key: m.key, value: value, contentType: contentType))
            } else {
                total += WriteRules.batchBytes(partitionBytes: partitionBytes, .delete(key: m.key))
            }
        }
        let room = limits.batchBytesMax - min(progressBytesReserve, limits.batchBytesMax / 4)
        if total > room {
            throw JellyError(.tooLarge, "a push is \(total) bytes; the limit is \(room) bytes; push fewer mutations at a time")
        }
    }

    /// Room kept in a push's batch for the client's progress and the registry (at most a
    /// quarter of the batch limit).
    static let progressBytesReserve = 256 << 10

    /// Applies a push (see `JellyStore.sync`).
    public static func push(
        _ backend: some ClientSyncBackend, gate: PartitionGate, partition: String, clientID: String,
        mutations: [ClientMutation], role: SyncRole
    ) async throws -> SyncResult {
        try validate(partition: partition, clientID: clientID, mutations: mutations, limits: backend.limits)
        return try await gate.exclusive(partition) {
            for _ in 1...attemptsMax {
                do {
                    return try await attempt(backend, partition: partition, clientID: clientID, mutations: mutations, role: role)
                } catch let error as JellyError where error.code == .preconditionFailed {
                    continue // a write landed between the read and the commit: decide again
                }
            }
            throw JellyError(.unavailable, "partition \(Names.quoted(partition)) kept changing while the push was decided; retry the push (nothing of it was applied)")
        }
    }

    private static func attempt(
        _ backend: some ClientSyncBackend, partition: String, clientID: String, mutations: [ClientMutation], role: SyncRole
    ) async throws -> SyncResult {
        let limits = backend.limits
        let clientKey = SystemKeys.syncClient(clientID)
        var keys = [SystemKeys.syncRegistry, clientKey]
        var seen = Set<ByteName>()
        for m in mutations where (try? Names.validate(m.key, as: .key, maxBytes: limits.keyBytesMax)) != nil {
            if seen.insert(ByteName(m.key)).inserted { keys.append(m.key) }
        }
        let read = try await backend.syncRead(partition: partition, keys: keys)
        let progressObject = read[clientKey]
        var progress = (try? progressObject.map { try ClientProgress(decoding: $0.value, ownVersion: $0.version) }) ?? ClientProgress()
        let registryObject = read[SystemKeys.syncRegistry]
        var registry = (try? registryObject.map { try ClientRegistry(decoding: $0.value) }) ?? ClientRegistry()

        // The kept results by id, made only when a push repeats something (most do not).
        var earlier: [UInt64: ClientProgress.Stored]?
        var operations: [WriteOperation] = []
        var written = Set<ByteName>()
        var results: [SyncResult.Entry] = []
        var stored: [ClientProgress.Stored] = []
        var appliedAt: [Int] = []
        var last = progress.lastID

        for m in mutations {
            if m.id <= last {
                if earlier == nil { earlier = Dictionary(progress.results.map { ($0.id, $0) }, uniquingKeysWith: { _, b in b }) }
                let first = earlier?[m.id].map { result(of: $0, key: m.key, read: read, role: role) }
                results.append(.init(id: m.id, result: .duplicate(first)))
                continue
            }
            let name = ByteName(m.key)
            // One mutation per key per push: its result decides the base of the next one.
            if written.contains(name) { break }
            last = m.id
            if let error = check(m, limits: limits) {
                results.append(.init(id: m.id, result: .rejected(code: error.code, message: error.message)))
                stored.append(.init(id: m.id, status: .rejected, version: 0, code: error.code.name))
                continue
            }
            let current = read[m.key]
            let currentVersion = current?.version ?? 0
            if currentVersion != m.baseVersion {
                let theirs = CurrentObject(version: currentVersion, object: current.flatMap { role.mayRead($0.access) ? $0 : nil }, deleted: current == nil)
                results.append(.init(id: m.id, result: .conflict(theirs)))
                stored.append(.init(id: m.id, status: .conflict, version: currentVersion, deleted: current == nil))
                continue
            }
            if let error = forbidden(m, current: current, role: role) {
                results.append(.init(id: m.id, result: .rejected(code: error.code, message: error.message)))
                stored.append(.init(id: m.id, status: .rejected, version: 0, code: error.code.name))
                continue
            }
            let condition: WriteCondition = m.baseVersion == 0 ? .ifAbsent : .ifVersion(m.baseVersion)
            switch m.operation {
            case .put(let value, let contentType):
                operations.append(.put(key: m.key, value: value, contentType: contentType, condition: condition, access: current?.access ?? .serverOnly))
            case .delete:
                operations.append(.delete(key: m.key, condition: condition))
            }
            written.insert(name)
            appliedAt.append(results.count)
            results.append(.init(id: m.id, result: .applied(version: 0)))
            stored.append(.init(id: m.id, status: .applied, version: 0))
        }

        progress.lastID = last
        progress.results.append(contentsOf: stored)
        if progress.results.count > limits.syncResultsKept {
            progress.results.removeFirst(progress.results.count - limits.syncResultsKept)
        }
        registry.clients[clientID] = backend.clock.nowMilliseconds()
        while registry.clients.count > limits.syncClientsMax {
            // Forget the client that pushed least recently (never this one).
            guard let oldest = registry.clients.filter({ $0.key != clientID }).min(by: { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) })?.key else { break }
            registry.clients[oldest] = nil
            operations.append(.delete(key: SystemKeys.syncClient(oldest)))
        }
        operations.append(.put(key: SystemKeys.syncRegistry, value: registry.encoded(), condition: registryObject.map { .ifVersion($0.version) } ?? .ifAbsent))
        operations.append(.put(key: clientKey, value: progress.encoded(), condition: progressObject.map { .ifVersion($0.version) } ?? .ifAbsent))

        let commit = try await backend.syncWrite(partition: partition, operations)
        guard let version = commit.version else {
            throw JellyError(.io, "internal error: a push committed without a version")
        }
        for i in appliedAt { results[i].result = .applied(version: version) }
        return SyncResult(lastMutationID: last, results: results)
    }

    /// A mutation's own problems: its key, its value's size, its content type.
    private static func check(_ m: ClientMutation, limits: JellyLimits) -> JellyError? {
        let op: WriteOperation
        switch m.operation {
        case .put(let value, let contentType): op = .put(key: m.key, value: value, contentType: contentType)
        case .delete: op = .delete(key: m.key)
        }
        do {
            try WriteRules.validate(op, limits: limits)
            return nil
        } catch let error as JellyError {
            return error
        } catch {
            return JellyError(.invalidArgument, "\(error)")
        }
    }

    /// Whether `role` may make this change: a client only to an object a game server made
    /// client-writable (the rule of a client's PUT and DELETE).
    private static func forbidden(_ m: ClientMutation, current: StoredObject?, role: SyncRole) -> JellyError? {
        guard role == .owner else { return nil }
        guard let current else {
            if case .delete = m.operation { return nil } // deleting nothing changes nothing
            return JellyError(.forbidden, "clients may write only objects a game server created as client-writable (Jelly-Write: owner); \(Names.quoted(m.key)) does not exist")
        }
        if role.mayWrite(current.access) { return nil }
        return JellyError(.forbidden, "object \(Names.quoted(m.key)) is writable by game servers only (Jelly-Write: server)")
    }

    /// A stored result as the answer to a repeated mutation.
    private static func result(of s: ClientProgress.Stored, key: String, read: [String: StoredObject], role: SyncRole) -> MutationResult {
        switch s.status {
        case .applied:
            return .applied(version: s.version)
        case .conflict:
            // The value only when the object is still what the first answer said.
            let now = read[key].flatMap { $0.version == s.version && role.mayRead($0.access) ? $0 : nil }
            return .conflict(CurrentObject(version: s.version, object: now, deleted: s.deleted))
        case .rejected:
            return .rejected(code: JellyError.Code(s.code), message: "rejected when it was first pushed (\(s.code))")
        }
    }
}
