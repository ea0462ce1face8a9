import Foundation
import JellyCore
import Logging
import NATSClient
import NIOCore
import Synchronization

/// The NATS JetStream cluster backend: a `JellyStore` whose data, locks and versions live in
/// JetStream streams (docs/cluster.md). The node keeps nothing that matters: any node can
/// serve any partition, and fencing is enforced by the stream leader through expected-sequence
/// headers, not by the node.
///
/// `open` returns at once and connects in the background; until the streams are ready every
/// call fails with `.unavailable` and `health()` says why.
public final class ClusterStore: JellyStore, Sendable {
    public let configuration: ClusterStoreConfiguration
    public let connection: NATSConnection
    let js: JetStream
    let partitions = PartitionTable()
    /// Pushes to one partition through this node run one at a time.
    let syncGate = PartitionGate()
    private let readiness: Mutex<Readiness>
    /// Streams (frames): each frame's unique subject token is this node's tag and a counter;
    /// retentions read recently, and frames appended through this node since the last purge.
    let frameTag = String(UInt64.random(in: 1...UInt64.max), radix: 36)
    let frameCounter = Atomic<UInt64>(0)
    let streamStates = Mutex<[String: StreamNodeState]>([:])
    private let preparer = Mutex<Task<Void, Never>?>(nil)
    /// Each shard stream's shared read barriers (`ClusterStore+FreshReads.swift`).
    let barrierRounds = Mutex<[String: BarrierRounds]>([:])

    struct Readiness: Sendable {
        var ready = false
        var closed = false
        var problem = "connecting to NATS"
        var limits: JellyLimits
        /// Each shard stream's epoch (its `jelly_epoch` metadata), for the change feed.
        var epochs: [String] = []
    }

    /// Lease time: the configured clock, never going back (`StepSafeClock`).
    var clock: any JellyClock { leaseClock }
    let leaseClock: StepSafeClock
    var logger: Logger { configuration.logger }

    public var limits: JellyLimits { readiness.withLock { $0.limits } }

    /// Starts connecting to NATS and preparing the streams; returns at once.
    public static func open(_ configuration: ClusterStoreConfiguration) throws -> ClusterStore {
        try configuration.validate()
        var limits = configuration.limits
        limits.batchOperationsMax = min(limits.batchOperationsMax, JetStream.atomicBatchMessagesMax - 1)
        var nats = configuration.nats
        nats.requestTimeout = configuration.requestTimeout
        let connection: NATSConnection
        do {
            connection = try NATSConnection(options: nats, logger: configuration.logger)
        } catch let error as NATSError {
            throw JellyError(.invalidArgument, error.description)
        }
        let store = ClusterStore(configuration: configuration, connection: connection, limits: limits)
        let task = Task { [store] in await store.prepare() }
        store.preparer.withLock { $0 = task }
        return store
    }

    /// Opens and waits until the streams are ready, or throws `.unavailable` after `timeout`.
    public static func openAndWait(_ configuration: ClusterStoreConfiguration, timeout: Duration = .seconds(30)) async throws -> ClusterStore {
        let store = try open(configuration)
        do {
            try await store.waitUntilReady(timeout: timeout)
        } catch {
            try? await store.close()
            throw error
        }
        return store
    }

    private init(configuration: ClusterStoreConfiguration, connection: NATSConnection, limits: JellyLimits) {
        self.configuration = configuration
        self.leaseClock = StepSafeClock(configuration.clock)
        self.connection = connection
        self.js = JetStream(connection: connection, timeout: configuration.requestTimeout)
        self.readiness = Mutex(Readiness(limits: limits))
    }

    /// Whether the node can serve requests now, and if not, why.
    public func health() -> (ok: Bool, detail: String) {
        let (ready, problem) = readiness.withLock { ($0.ready, $0.problem) }
        let nats = connection.status
        if ready && nats.connected, let stalled = connection.stalledMilliseconds {
            return (false, "\(nats.server.map { "\($0)" } ?? "the NATS server") has not answered for \(stalled) ms (paused or cut off?); the connection is dropped and another server tried within \(connection.options.stallTimeout)")
        }
        if ready && nats.connected { return (true, "connected to \(nats.server.map { "\($0)" } ?? "NATS"); \(configuration.shards) streams ready") }
        if ready { return (false, "NATS connection lost: \(nats.lastError); reconnecting") }
        if !nats.connected { return (false, "NATS is not reachable (\(nats.lastError)); retrying") }
        return (false, problem)
    }

    public func waitUntilReady(timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let (ready, closed) = readiness.withLock { ($0.ready, $0.closed) }
            if closed { throw JellyError(.unavailable, "the cluster store is closed") }
            if ready && connection.status.connected { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw JellyError(.unavailable, "the NATS cluster is not ready after \(timeout): \(health().detail)")
    }

    /// Connects and makes sure every shard's stream exists with Jelly's settings; retries
    /// until it succeeds or the store is closed.
    private func prepare() async {
        var wait = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await connection.waitUntilConnected(timeout: .seconds(2))
                try await ensureStreams()
                let maxPayload = connection.serverInfo?.max_payload ?? (1 << 20)
                readiness.withLock { r in
                    let fit = maxPayload - ClusterStoreConfiguration.headerReserveBytes
                    if r.limits.valueBytesMax > fit {
                        logger.notice("values are limited to \(fit) bytes by the NATS servers' max_payload (\(maxPayload)); raise max_payload in the NATS config for larger values")
                        r.limits.valueBytesMax = max(1, fit)
                    }
                    if r.limits.frameBytesMax > fit {
                        logger.notice("frames are limited to \(fit) bytes by the NATS servers' max_payload (\(maxPayload)); raise max_payload in the NATS config for larger frames")
                        r.limits.frameBytesMax = max(1, fit)
                    }
                    r.ready = true
                    r.problem = ""
                }
                logger.info("cluster store ready", metadata: ["shards": "\(configuration.shards)", "replicas": "\(configuration.replicas)"])
                return
            } catch {
                let why = Self.describe(error)
                readiness.withLock { $0.problem = why }
                logger.warning("the NATS cluster is not ready; retrying", metadata: ["error": "\(why)", "retry_in": "\(wait)"])
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(2))
            }
        }
    }

    func streamConfig(shard: Int) -> StreamConfig {
        var config = StreamConfig(name: "\(configuration.streamPrefix)_\(shard)", subjects: ["\(configuration.subjectPrefix).\(shard).>"])
        config.storage = "file"
        config.numReplicas = configuration.replicas
        config.maxMsgsPerSubject = 1
        config.discard = "old"
        config.allowAtomic = true
        config.allowMsgTTL = true // frames' age retention (`Nats-TTL`)
        // Direct gets (any replica answers) carry the reads that prove their freshness.
        config.allowDirect = true
        // A new random epoch each time a stream is made: a recreated stream is another history.
        config.metadata = ["jelly_shards": String(configuration.shards), "jelly_format": "1", "jelly_epoch": String(UInt64.random(in: 1...UInt64.max), radix: 16)]
        return config
    }

    private func ensureStreams() async throws {
        var epochs: [String] = []
        defer { readiness.withLock { $0.epochs = epochs } }
        for shard in 0..<configuration.shards {
            let wanted = streamConfig(shard: shard)
            if let info = try await js.streamInfo(wanted.name) {
                // Streams made before epochs existed: their name stands for it.
                epochs.append(info.config.metadata?["jelly_epoch"] ?? wanted.name)
                let have = info.config
                if let shards = have.metadata?["jelly_shards"], shards != String(configuration.shards) {
                    throw JellyError(.invalidArgument, "stream \(wanted.name) belongs to a cluster of \(shards) shards, but this node is configured with \(configuration.shards); use the same shards setting on every node")
                }
                guard have.subjects == wanted.subjects, have.maxMsgsPerSubject == 1, have.allowAtomic else {
                    throw JellyError(.invalidArgument, "stream \(wanted.name) exists with settings Jelly did not make (subjects \(have.subjects), max_msgs_per_subject \(have.maxMsgsPerSubject), allow_atomic \(have.allowAtomic)); use another stream prefix or remove it")
                }
                if !have.allowMsgTTL || !have.allowDirect {
                    // Streams made before streams (frames) existed: per-message TTLs carry a
                    // stream's age retention. Streams made before reads proved their freshness:
                    // direct gets carry those reads. Enabling either changes nothing else.
                    var updated = have
                    updated.allowMsgTTL = true
                    updated.allowDirect = true
                    _ = try await js.updateStream(updated)
                    logger.notice("enabled allow_msg_ttl and allow_direct on stream \(wanted.name) (frame retention, fresh reads)")
                }
                if have.numReplicas != configuration.replicas {
                    logger.warning("stream \(wanted.name) has \(have.numReplicas) replicas, the configuration says \(configuration.replicas); change it with `nats stream edit`, Jelly leaves it as it is")
                }
            } else {
                _ = try await js.createStream(wanted)
                epochs.append(wanted.metadata?["jelly_epoch"] ?? wanted.name)
            }
            // A new (or recovering) replicated stream answers only once its Raft group has a leader.
            if configuration.replicas > 1 {
                var led = false
                for _ in 0..<200 where !led {
                    led = try await js.streamInfo(wanted.name)?.cluster?.leader != nil
                    if !led { try await Task.sleep(for: .milliseconds(50)) }
                }
                if !led { throw JellyError(.unavailable, "stream \(wanted.name) has no leader yet") }
            }
        }
    }

    public func close() async throws {
        readiness.withLock { $0.closed = true; $0.ready = false; $0.problem = "closed" }
        preparer.withLock { $0?.cancel() }
        await connection.close()
    }

    /// Deletes every stream of this store's prefix (tests and `jelly` administration only).
    public func destroyStreams() async throws {
        for shard in 0..<configuration.shards {
            do { try await js.deleteStream("\(configuration.streamPrefix)_\(shard)") } catch let e as JetStreamAPIError where e.errCode == JetStreamAPIError.streamNotFound {}
        }
    }

    // MARK: Helpers

    func subjects(_ partition: String) -> PartitionSubjects {
        PartitionSubjects(partition: partition, shards: configuration.shards, streamPrefix: configuration.streamPrefix, subjectPrefix: configuration.subjectPrefix)
    }

    /// The epoch of the shard stream holding `partition` (the change feed's).
    func epoch(of partition: String) -> String {
        let shard = Int(PartitionSubjects.hash(partition) % UInt64(configuration.shards))
        return readiness.withLock { shard < $0.epochs.count ? $0.epochs[shard] : "" }
    }

    func checkReady() throws {
        let (ready, closed, problem) = readiness.withLock { ($0.ready, $0.closed, $0.problem) }
        if closed { throw JellyError(.unavailable, "the cluster store is closed") }
        if !ready { throw JellyError(.unavailable, "the NATS cluster is not ready (\(problem)); retry shortly") }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? JellyError { return e.message }
        if let e = error as? NATSError { return e.description }
        if let e = error as? JetStreamAPIError { return "JetStream error \(e.code)/\(e.errCode): \(e.description)" }
        return "\(error)"
    }

    /// Maps NATS and JetStream failures onto the contract's errors.
    static func mapped(_ error: any Error, _ what: String) -> any Error {
        switch error {
        case let e as JellyError:
            return e
        case let e as NATSError:
            switch e {
            case .timeout:
                return JellyError(.unavailable, "\(what): NATS did not answer in time (a stream leader election, or an overloaded cluster); the outcome is unknown, read back or retry")
            default:
                return JellyError(.unavailable, "\(what): \(e.description); retry shortly")
            }
        case let e as JetStreamAPIError:
            if e.code == 503 {
                return JellyError(.unavailable, "\(what): JetStream is unavailable (\(e.description)), e.g. while a stream leader is elected; retry shortly")
            }
            return JellyError(.unavailable, "\(what): JetStream refused it (\(e.code)/\(e.errCode): \(e.description))")
        default:
            return JellyError(.io, "\(what): \(error)")
        }
    }

    /// Runs a JetStream call, mapping its failures.
    func call<T>(_ what: @autoclosure () -> String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await whileElecting(body)
        } catch {
            throw Self.mapped(error, what())
        }
    }

    /// How long a call waits out "no responders" (a stream without a leader, during an
    /// election) before the node answers `unavailable`.
    static let electionWaitMilliseconds = 3000

    /// Runs `body`, retrying while the stream has no leader: a request nobody received was
    /// not stored, so sending it again is safe.
    func whileElecting<T>(_ body: () async throws -> T) async throws -> T {
        var waited = 0
        while true {
            do {
                return try await body()
            } catch let error where Self.isLeaderless(error) && waited < Self.electionWaitMilliseconds {
                try await Task.sleep(for: .milliseconds(100))
                waited += 100
            }
        }
    }

    static func isLeaderless(_ error: any Error) -> Bool {
        if case NATSError.noResponders = error { return true }
        if let e = error as? JetStreamAPIError, e.code == 503 { return true }
        return false
    }
}

// MARK: Records

/// The lock subject's message: JSON `{"owner":…,"expires":…[,"token":…]}` with `Jelly-Lock:
/// grant` (the token is the message's own sequence) or `held` (renewed; token in the body),
/// or an empty body with `Jelly-Lock: free`.
struct LockRecord: Codable, Sendable {
    var owner: String
    var expires: Int64
    var token: UInt64?
    /// The TTL granted, in milliseconds (absent in locks written before it was kept).
    var ttl: Int64?
}

enum Header {
    static let lock = "Jelly-Lock"
    static let contentType = "Jelly-Type"
    static let access = "Jelly-Access"
    static let commitOffset = "Jelly-Commit"
    static let deleted = "Jelly-Deleted"
    static let expectedSequence = "Nats-Expected-Last-Subject-Sequence"
    static let expectedSubject = "Nats-Expected-Last-Subject-Sequence-Subject"
    static let frameTime = "Jelly-Time"
    static let frameBase = "Jelly-Base"
    static let ttl = "Nats-TTL"
}

extension ClusterStore {
    /// The lock subject's last message: its sequence (0: never written) and the lease it holds.
    func readLock(_ s: PartitionSubjects) async throws -> (sequence: UInt64, lease: Lease?) {
        guard let m = try await call("reading a lock", { try await js.lastMessage(stream: s.stream, subject: s.lock) }) else { return (0, nil) }
        return (m.sequence, try Self.lease(of: m, now: clock.nowMilliseconds(), limits: limits))
    }

    /// The lease a lock message holds. Its expiry is bounded by the TTL it was granted with
    /// from `now`: a node whose clock is behind the granting node's must not see a 30-second lease
    /// live for as long as the clocks differ (leases written before the TTL was kept: the longest
    /// TTL allowed).
    static func lease(of m: StoredMessage, now: Int64, limits: JellyLimits) throws -> Lease? {
        switch m.headers?[Header.lock] {
        case "free": return nil
        case "grant", "held":
            guard let record = try? JSONDecoder().decode(LockRecord.self, from: Data(m.payload)) else {
                throw JellyError(.corruption, "the lock message at sequence \(m.sequence) on \(m.subject) is unreadable")
            }
            let ttl = record.ttl ?? limits.lockTTLMillisecondsMax
            return Lease(owner: record.owner, token: LockToken(record.token ?? m.sequence), expiresAtMilliseconds: min(record.expires, now + ttl))
        default:
            throw JellyError(.corruption, "the message at sequence \(m.sequence) on \(m.subject) is not a Jelly lock")
        }
    }

    /// An object subject's last message as (sequence, object or nil when deleted).
    static func object(of m: StoredMessage, key: String) throws -> (PartitionCache.Object, StoredObject?) {
        let h = m.headers
        let offset = UInt64(h?[Header.commitOffset] ?? "0") ?? 0
        if h?[Header.deleted] != nil { return (.init(sequence: m.sequence, version: nil, tombstone: m.sequence + offset), nil) }
        guard let access = ObjectAccess(flags: UInt8(h?[Header.access] ?? "0") ?? 0xFF) else {
            throw JellyError(.corruption, "the object message at sequence \(m.sequence) on \(m.subject) has unknown access flags")
        }
        let version = m.sequence + offset
        let object = StoredObject(key: key, version: version, contentType: h?[Header.contentType] ?? defaultContentType, value: m.payload, access: access)
        return (.init(sequence: m.sequence, version: version), object)
    }

    func readObject(_ s: PartitionSubjects, key: String) async throws -> (PartitionCache.Object, StoredObject?) {
        guard let m = try await call("reading an object", { try await js.lastMessage(stream: s.stream, subject: s.object(key)) }) else {
            return (.init(sequence: 0, version: nil), nil)
        }
        return try Self.object(of: m, key: key)
    }

    /// Reads `keys` concurrently from the stream leader; the results are in the order of `keys`.
    func readObjects(_ s: PartitionSubjects, keys: [String]) async throws -> [(PartitionCache.Object, StoredObject?)] {
        if keys.count == 1 { return [try await readObject(s, key: keys[0])] }
        return try await withThrowingTaskGroup(of: (Int, PartitionCache.Object, StoredObject?).self) { group in
            for (i, key) in keys.enumerated() {
                group.addTask {
                    let (state, object) = try await self.readObject(s, key: key)
                    return (i, state, object)
                }
            }
            var results = [(PartitionCache.Object, StoredObject?)](repeating: (.init(sequence: 0, version: nil), nil), count: keys.count)
            for try await (i, state, object) in group { results[i] = (state, object) }
            return results
        }
    }
}
