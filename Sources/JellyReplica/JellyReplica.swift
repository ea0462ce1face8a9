import Foundation
import JellyCore
import JellyEngine

/// A replica of one partition on a player's device (docs/sync.md): reads and writes answer
/// locally, at once and durably, online or not; `sync()` (or the background loop of `start()`)
/// pulls the server's changes through the change feed and pushes the queued edits. When the
/// server changed an object this device also edited, the game's resolver decides from base,
/// mine and theirs. While a game server holds the partition's session lock, pushes wait.
///
/// ```swift
/// let replica = try await JellyReplica.open(.init(directory: dir, partition: "player-42", remote: client))
/// try await replica.put("settings", ReplicaValue(bytes))   // durable on the device at once
/// await replica.start()                                      // syncs whenever it can
/// ```
///
/// Restart-safe: each step (an edit, marking a push as sent, handling its answer, a pulled page)
/// is one atomic local commit, and a push repeated after a crash is answered as duplicates.
public actor JellyReplica {
    public struct Configuration: Sendable {
        /// The local store's directory (one replica per directory).
        public var directory: String
        public var partition: String
        /// The server: a `JellyClient` (HTTP, with the player's client token), or any store.
        public var remote: any JellyStore
        /// This replica's sync client id; nil makes one on first open and keeps it.
        public var clientID: String?
        /// The role the remote applies when it is in-process (over HTTP the token decides).
        public var role: SyncRole = .owner
        /// Decides conflicts. The default keeps theirs and reports the lost edit.
        public var resolver: ReplicaResolver = { _ in .theirs }
        /// Edits per push, and changes per pulled page.
        public var pushBatch = 100
        public var pullLimit = 100
        /// How long one wait for server changes lasts (a long-poll over HTTP).
        public var waitMilliseconds = 25_000
        /// A push source of change notices for the partition after a cursor (a feed WebSocket,
        /// say): each element means "the server may have changed". Opened again, from the
        /// cursor then, after it ends (with the backoff). Without it the loop waits with
        /// `remote.waitForChanges` (a long-poll).
        public var notices: (@Sendable (_ after: UInt64) async throws -> AsyncStream<Void>)?
        /// The background loop's backoff after a failed round: doubled each time, with jitter.
        public var retryMillisecondsMin = 200
        public var retryMillisecondsMax = 30_000
        public var durability: Durability = .always

        /// Checks the settings against the server's limits: a push or a page over them would be
        /// refused every time, and the background loop would only back off.
        func validate() throws {
            let limits = remote.limits
            try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
            func check(_ ok: Bool, _ message: String) throws {
                if !ok { throw JellyError(.invalidArgument, "invalid replica configuration: \(message)") }
            }
            try check((1...limits.syncMutationsMax).contains(pushBatch), "pushBatch must be 1...\(limits.syncMutationsMax) (the server's mutations per push)")
            try check((1...limits.changesLimitMax).contains(pullLimit), "pullLimit must be 1...\(limits.changesLimitMax) (the server's changes per page)")
            try check((1...limits.changesWaitMillisecondsMax).contains(waitMilliseconds), "waitMilliseconds must be 1...\(limits.changesWaitMillisecondsMax) (the server's longest wait)")
            try check(retryMillisecondsMin >= 1 && retryMillisecondsMin <= retryMillisecondsMax, "retryMillisecondsMin must be at least 1 and at most retryMillisecondsMax")
        }

        public init(directory: String, partition: String, remote: any JellyStore, clientID: String? = nil) {
            self.directory = directory
            self.partition = partition
            self.remote = remote
            self.clientID = clientID
        }
    }

    public let configuration: Configuration
    let storage: ReplicaStorage
    var state: ReplicaState
    var server: [String: ServerObject]
    var pending: [UInt64: PendingMutation]
    /// The session lock's holder as the last pull saw it.
    var lockOwner: String?
    private var subscribers: [UInt64: AsyncStream<ReplicaEvent>.Continuation] = [:]
    private var nextSubscriber: UInt64 = 0
    private var loop: Task<Void, Never>?
    private var relay: Task<Void, Never>?
    /// Local edits and server notices, counted, so the loop waits for "more than I have seen"
    /// (woken by the edit or the notice itself; a cancelled wait loses nothing).
    private let signals = ChangeWaiters()
    private var edits: UInt64 = 0
    private var notices: UInt64 = 0
    private static let editsSignal = "edits"
    private static let noticesSignal = "notices"
    /// Local transitions (an edit, a push's answer, a pulled page) run one at a time, and so
    /// do sync rounds: each gate is a busy flag and its waiters, in order.
    enum Gate { case changing, round }
    private var busy: Set<Gate> = []
    private var waiting: [Gate: [CheckedContinuation<Void, Never>]] = [:]

    func enter(_ gate: Gate) async {
        if busy.insert(gate).inserted { return }
        await withCheckedContinuation { waiting[gate, default: []].append($0) }
    }

    func leave(_ gate: Gate) {
        if var queue = waiting[gate], !queue.isEmpty {
            let next = queue.removeFirst()
            waiting[gate] = queue
            next.resume() // the gate stays busy: handed over
        } else {
            busy.remove(gate)
        }
    }

    public static func open(_ configuration: Configuration) async throws -> JellyReplica {
        try configuration.validate()
        let storage = try ReplicaStorage.open(directory: configuration.directory, durability: configuration.durability, serverValueBytesMax: configuration.remote.limits.valueBytesMax)
        do {
            let (saved, server, pending) = try await storage.load()
            var state = saved ?? ReplicaState(clientID: configuration.clientID ?? UUID().uuidString.lowercased())
            if let wanted = configuration.clientID, wanted != state.clientID, saved != nil {
                throw JellyError(.invalidArgument, "this replica directory belongs to sync client \(Names.quoted(state.clientID)), not \(Names.quoted(wanted)); use another directory")
            }
            try Names.validate(state.clientID, as: .clientID, maxBytes: configuration.remote.limits.clientIDBytesMax)
            if saved == nil {
                try await storage.commit([.state(state)])
            }
            state.nextMutationID = max(state.nextMutationID, (pending.keys.max() ?? 0) + 1)
            return JellyReplica(configuration: configuration, storage: storage, state: state, server: server, pending: pending)
        } catch {
            try? await storage.close()
            throw error
        }
    }

    private init(configuration: Configuration, storage: ReplicaStorage, state: ReplicaState, server: [String: ServerObject], pending: [UInt64: PendingMutation]) {
        self.configuration = configuration
        self.storage = storage
        self.state = state
        self.server = server
        self.pending = pending
    }

    public var clientID: String { state.clientID }
    /// Edits not yet acknowledged by the server.
    public var pendingCount: Int { pending.count }
    /// The feed cursor: everything the server committed up to it is here.
    public var cursor: UInt64 { state.cursor }

    // MARK: Local reads and writes

    public func get(_ key: String) -> ReplicaObject? { visible(key) }

    /// Every object as the game sees it, in byte order of key.
    public func list() -> [ReplicaObject] {
        var keys = Set(server.keys)
        for m in pending.values { keys.insert(m.key) }
        return keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.compactMap(visible)
    }

    public func put(_ key: String, _ value: ReplicaValue) async throws {
        try await edit(key, value)
    }

    public func delete(_ key: String) async throws {
        try await edit(key, nil)
    }

    /// Queues an edit durably: replaces an unsent edit of the same key (its base stays), or
    /// adds one based on the server's object (or on the sent edit it follows).
    private func edit(_ key: String, _ value: ReplicaValue?) async throws {
        try Names.validate(key, as: .key, maxBytes: ReplicaStorage.keyBytesMax)
        if let value {
            let limits = configuration.remote.limits
            if value.value.count > limits.valueBytesMax {
                throw JellyError(.tooLarge, "value of key \(Names.quoted(key)) is \(value.value.count) bytes; the server takes at most \(limits.valueBytesMax)")
            }
            try Names.validateContentType(value.contentType, maxBytes: limits.contentTypeBytesMax)
        }
        await enter(.changing)
        defer { leave(.changing) }
        let latest = latestPending(key)
        var m: PendingMutation
        var newState = state
        if var unsent = latest, !unsent.sent {
            unsent.value = value?.value
            unsent.contentType = value?.contentType
            m = unsent
        } else {
            let base: (UInt64, ReplicaValue?) = latest.map { ($0.baseVersion, $0.mine) } ?? (server[key]?.version ?? 0, server[key]?.value)
            m = PendingMutation(id: newState.nextMutationID, key: key, value: value?.value, contentType: value?.contentType, baseVersion: base.0, baseValue: base.1?.value, baseContentType: base.1?.contentType, sent: false)
            newState.nextMutationID += 1
        }
        try await storage.commit([.pending(m.id, m), .state(newState)])
        pending[m.id] = m
        state = newState
        emit(.changed(key: key, object: visible(key)))
        edits += 1
        signals.notify(partition: ByteName(Self.editsSignal), version: edits)
    }

    private func noticed() {
        notices += 1
        signals.notify(partition: ByteName(Self.noticesSignal), version: notices)
    }

    func latestPending(_ key: String) -> PendingMutation? {
        pending.values.filter { $0.key == key }.max { $0.id < $1.id }
    }

    func visible(_ key: String) -> ReplicaObject? {
        if let m = latestPending(key) {
            guard let mine = m.mine else { return nil }
            return ReplicaObject(key: key, value: mine, serverVersion: server[key]?.version ?? m.baseVersion, pending: true)
        }
        return server[key].map { ReplicaObject(key: key, value: $0.value, serverVersion: $0.version, pending: false) }
    }

    // MARK: Events

    /// A stream of what happens, for the game's UI; each call is a new subscriber.
    public func events() -> AsyncStream<ReplicaEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ReplicaEvent.self, bufferingPolicy: .bufferingNewest(10_000))
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(id) }
        }
        return stream
    }

    private func unsubscribe(_ id: UInt64) { subscribers[id] = nil }

    func emit(_ event: ReplicaEvent) {
        for c in subscribers.values { c.yield(event) }
    }

    // MARK: Background sync

    /// Syncs in the background until `stop()`: a round whenever there are edits to push or the
    /// server has changes (waited for with the feed's long-poll), backing off with jitter while
    /// the server is unreachable.
    public func start() {
        guard loop == nil else { return }
        loop = Task { [weak self] in await self?.run() }
        if let open = configuration.notices {
            let (low, high) = (configuration.retryMillisecondsMin, configuration.retryMillisecondsMax)
            relay = Task { [weak self] in
                var delay = low
                while !Task.isCancelled {
                    guard let cursor = await self?.cursor else { return }
                    if let stream = try? await open(cursor) {
                        delay = low
                        for await _ in stream { await self?.noticed() }
                    }
                    try? await Task.sleep(for: .milliseconds(Int(Double(delay) * Double.random(in: 0.5...1.5))))
                    delay = min(delay * 2, high)
                }
            }
        }
    }

    /// Stops the background loop (the replica keeps working offline).
    public func stop() async {
        let task = loop
        let notices = relay
        loop = nil
        relay = nil
        task?.cancel()
        notices?.cancel()
        await task?.value
        await notices?.value
    }

    private func run() async {
        var delay = configuration.retryMillisecondsMin
        while !Task.isCancelled {
            do {
                try await sync()
                delay = configuration.retryMillisecondsMin
            } catch {
                if Task.isCancelled { return }
                let jittered = Double(delay) * Double.random(in: 0.5...1.5)
                try? await Task.sleep(for: .milliseconds(Int(jittered)))
                delay = min(delay * 2, configuration.retryMillisecondsMax)
                continue
            }
            await waitForWork()
        }
    }

    /// Returns when there is something to do: an unsent edit (while unlocked), a server change
    /// or lock change, or the wait's end.
    private func waitForWork() async {
        if lockOwner == nil && pending.values.contains(where: { !$0.sent }) { return }
        let remote = configuration.remote
        let partition = configuration.partition
        let after = state.cursor
        let wait = configuration.waitMilliseconds
        let signals = self.signals
        let (seenEdits, seenNotices) = (edits, notices)
        let usesNotices = relay != nil
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = await signals.wait(partition: Self.editsSignal, after: seenEdits, timeout: .milliseconds(wait)) { await self.edits }
            }
            if usesNotices {
                group.addTask {
                    _ = await signals.wait(partition: Self.noticesSignal, after: seenNotices, timeout: .milliseconds(wait)) { await self.notices }
                }
            } else {
                group.addTask {
                    // Unreachable: the next round fails and backs off.
                    _ = try? await remote.waitForChanges(partition: partition, after: after, timeoutMilliseconds: wait)
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    public func close() async throws {
        await stop()
        for c in subscribers.values { c.finish() }
        subscribers = [:]
        try await storage.close()
    }
}

