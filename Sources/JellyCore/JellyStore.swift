/// The store contract: partitions of named objects with versions that strictly increase within a
/// partition (store-wide in the embedded store), and one session
/// lease (lock) per partition with fencing tokens. Implemented by the embedded engine
/// (`JellyEngine.EmbeddedStore`) and by the NATS JetStream cluster backend (`JellyCluster.ClusterStore`); the
/// conformance suite in `JellyTestSupport` runs against every implementation.
///
/// Names: partitions 1–128 bytes, keys 1–512 bytes of UTF-8, no control characters, no `/`,
/// not `.` or `..`; compared byte for byte. Every method that takes a name throws
/// `.invalidArgument` for a bad one and writes nothing.
///
/// Lock rule for writes: a write that carries `lockToken` is accepted only if that token is the
/// partition's current, unexpired lock; a write without a token only while the partition is not
/// locked. Otherwise it fails with `.locked` and nothing is written.
public protocol JellyStore: Sendable {
    /// The limits this store enforces.
    var limits: JellyLimits { get }

    /// Reads one object, or nil when it does not exist.
    func get(partition: String, key: String) async throws -> StoredObject?

    /// Lists a partition's objects in ascending byte order of key, starting after `after`.
    /// `limit` is clamped to `limits.listLimitMax`.
    func list(partition: String, after: String?, limit: Int) async throws -> ObjectListing

    /// Lists the store's partitions that hold an object or a live lock, in ascending byte order
    /// of name, starting after `after`, optionally only those starting with `prefix`; each with
    /// its object count and live lock. For operators (the console): it reads the whole index
    /// (embedded) or every shard's subjects (cluster), so it is not for the game's hot path.
    func listPartitions(prefix: String?, after: String?, limit: Int) async throws -> PartitionListing

    /// Commits `operations` on one partition atomically, with one version for every object
    /// written. With `releaseLock`, the lease named by `lockToken` is released in the same
    /// commit: the lock is never free before the final save is durable.
    ///
    /// - Throws: `.locked` (lock rule), `.preconditionFailed` (a condition failed),
    ///   `.invalidArgument` (bad name, a key named twice, release without a token),
    ///   `.tooLarge` (value or batch over its limit), `.unavailable` (store cannot write).
    @discardableResult
    func write(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool
    ) async throws -> WriteResult

    /// `write` for callers outside Swift concurrency, such as the HTTP server's event loops:
    /// `completion` is called exactly once, on any thread, possibly before this returns, and must
    /// not block. The default runs the async `write` in a task; the embedded store queues the
    /// commit directly, without a task.
    func write(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool,
        completion: @escaping @Sendable (Result<WriteResult, any Error>) -> Void
    )

    /// Acquires the partition's lease for `owner`. The same owner again while it holds the lease
    /// gets the same token with the expiry reset to now + ttl; another owner gets `.locked` with the
    /// holder until the lease expires; after expiry anyone gets a new, higher token.
    func acquireLock(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> LockInfo

    /// `acquireLock`, then every object of the partition with its value, in one call: a session
    /// start in one round trip. The objects reflect every write acknowledged before the lock.
    func acquireLockAndLoad(
        partition: String, owner: String, ttlMilliseconds: Int64
    ) async throws -> (lock: LockInfo, objects: [StoredObject])

    /// Extends a live lease. An expired lease cannot be renewed (`.locked`): acquire again.
    func renewLock(partition: String, token: LockToken, ttlMilliseconds: Int64) async throws -> LockInfo

    /// Hands a live lease to `owner` with a new, higher token; the old token is fenced from then on.
    func transferLock(
        partition: String, token: LockToken, to owner: String, ttlMilliseconds: Int64
    ) async throws -> LockInfo

    /// Releases a live lease.
    func releaseLock(partition: String, token: LockToken) async throws

    /// The partition's live lease, or nil when unlocked or expired.
    func inspectLock(partition: String) async throws -> LockInfo?

    /// Administrative: removes the lease whoever holds it; returns what was removed.
    @discardableResult
    func breakLock(partition: String) async throws -> LockInfo?

    /// The partition's changes after cursor `since` (0: the whole state), in version order, at
    /// most `limit` (up to `limits.changesLimitMax`; a page never splits a commit). `epoch` is
    /// the caller's last known epoch: another store's, or `since` below the floor, answers a
    /// reset. `role` `.owner` leaves out objects the partition's client may not read; the
    /// cursor still moves past them. See docs/sync.md.
    func changes(partition: String, since: UInt64, limit: Int, epoch: String?, role: SyncRole) async throws -> ChangeBatch

    /// Waits until a commit on the partition (an object, a tombstone or its lock) has a version
    /// above `after`, or `timeoutMilliseconds` pass (up to `limits.changesWaitMillisecondsMax`).
    /// Woken by the commit, not by polling. Returns whether something changed.
    func waitForChanges(partition: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool

    /// A client replica's push: `mutations` of client `clientID`, decided in order and committed
    /// in one batch with the client's progress (docs/sync.md): a duplicate gets its first result,
    /// a mutation whose base version is not the object's current version a conflict with the
    /// current object, one `role` may not make is rejected, the rest applied. While a game
    /// server holds the lock the whole push fails with `.locked` and nothing is processed.
    func sync(partition: String, clientID: String, mutations: [ClientMutation], role: SyncRole) async throws -> SyncResult

    // MARK: Streams (docs/streams.md)

    /// Appends `frames` to stream `stream` of the partition, atomically and in order, under the
    /// lock rule of writes: a stale holder's frames are refused (`.locked`) exactly like its saves.
    /// The first append makes the stream, with `retention` or `limits.streamRetentionDefault`;
    /// an append that names a different retention replaces it. Returns the frames' sequences
    /// once they are committed: readable and, per the store's stream durability, written (the
    /// embedded store: handed to the OS, synced within its stream interval; the cluster store:
    /// stored by the stream's replicas). With `durable`, returns only once they are on disk.
    @discardableResult
    func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool
    ) async throws -> [UInt64]

    /// `appendFrames` for callers outside Swift concurrency (the server's WebSocket appender):
    /// `completion` is called exactly once, on any thread, and must not block. A caller that
    /// needs its appends in order makes the next one after the previous one completed (the
    /// embedded store also keeps the order of overlapping calls; the default, a task per call,
    /// does not).
    func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool,
        completion: @escaping @Sendable (Result<[UInt64], any Error>) -> Void
    )

    /// Whether overlapping `appendFrames(…, completion:)` calls are committed in the order they
    /// were made (the embedded store: yes, they are queued in call order). A caller that needs
    /// order makes one call at a time when this is false.
    var appendsKeepCallOrder: Bool { get }

    /// The stream's frames with sequence `from` or later, oldest first, at most `limit`
    /// (clamped to `limits.framesPageMax`). A stream nobody appended to reads as empty.
    func readFrames(partition: String, stream: String, from: UInt64, limit: Int) async throws -> FramePage

    /// Waits until the stream holds a frame above `after`, or `timeoutMilliseconds` pass (up to
    /// `limits.changesWaitMillisecondsMax`). Woken by the append. Returns whether one arrived.
    func waitForFrames(partition: String, stream: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool

    /// Drops the stream's frames below `before`; with `before` nil removes the stream (every
    /// frame and its retention). Under the lock rule of writes.
    func trimStream(partition: String, stream: String, before: UInt64?, lockToken: LockToken?) async throws

    /// Finishes in-flight writes, syncs and releases the store.
    func close() async throws
}

extension JellyStore {
    /// `changes` for a game server, without an epoch check.
    public func changes(partition: String, since: UInt64, limit: Int = 1000) async throws -> ChangeBatch {
        try await changes(partition: partition, since: since, limit: limit, epoch: nil, role: .server)
    }

    /// `sync` as a game server (every object writable).
    public func sync(partition: String, clientID: String, mutations: [ClientMutation]) async throws -> SyncResult {
        try await sync(partition: partition, clientID: clientID, mutations: mutations, role: .server)
    }

    public func write(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool,
        completion: @escaping @Sendable (Result<WriteResult, any Error>) -> Void
    ) {
        Task {
            do {
                completion(.success(try await write(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock)))
            } catch {
                completion(.failure(error))
            }
        }
    }

    public func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool,
        completion: @escaping @Sendable (Result<[UInt64], any Error>) -> Void
    ) {
        Task {
            do {
                completion(.success(try await appendFrames(partition: partition, stream: stream, frames, lockToken: lockToken, retention: retention, durable: durable)))
            } catch {
                completion(.failure(error))
            }
        }
    }

    public var appendsKeepCallOrder: Bool { false }

    /// Appends one frame. Returns its sequence.
    @discardableResult
    public func appendFrame(
        partition: String, stream: String, _ value: [UInt8], baseVersion: UInt64 = 0, lockToken: LockToken? = nil, durable: Bool = false
    ) async throws -> UInt64 {
        let seqs = try await appendFrames(partition: partition, stream: stream, [FrameInput(value, baseVersion: baseVersion)], lockToken: lockToken, retention: nil, durable: durable)
        guard let seq = seqs.first else { throw JellyError(.io, "internal error: an append returned no sequence") }
        return seq
    }

    /// Puts one object. Returns its new version.
    @discardableResult
    public func put(
        partition: String, key: String, value: [UInt8], contentType: String? = nil,
        condition: WriteCondition = .none, access: ObjectAccess = .serverOnly, lockToken: LockToken? = nil
    ) async throws -> UInt64 {
        let result = try await write(
            partition: partition,
            [.put(key: key, value: value, contentType: contentType, condition: condition, access: access)],
            lockToken: lockToken, releaseLock: false
        )
        guard let version = result.version else {
            throw JellyError(.io, "internal error: a put committed without a version")
        }
        return version
    }

    /// Deletes one object. Returns whether it existed.
    @discardableResult
    public func delete(
        partition: String, key: String, condition: WriteCondition = .none, lockToken: LockToken? = nil
    ) async throws -> Bool {
        let result = try await write(
            partition: partition, [.delete(key: key, condition: condition)],
            lockToken: lockToken, releaseLock: false
        )
        return result.applied.first ?? false
    }

    /// The final save of a session and the lock's release, in one atomic commit.
    @discardableResult
    public func saveAndRelease(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken
    ) async throws -> WriteResult {
        try await write(partition: partition, operations, lockToken: lockToken, releaseLock: true)
    }

    /// Runs `body` while holding the partition's lease, releasing it afterwards (also on error).
    public func withLock<T: Sendable>(
        partition: String, owner: String, ttlMilliseconds: Int64,
        _ body: (LockInfo) async throws -> T
    ) async throws -> T {
        let lock = try await acquireLock(partition: partition, owner: owner, ttlMilliseconds: ttlMilliseconds)
        do {
            let value = try await body(lock)
            try? await releaseLock(partition: partition, token: lock.token)
            return value
        } catch {
            try? await releaseLock(partition: partition, token: lock.token)
            throw error
        }
    }
}
