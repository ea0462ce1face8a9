import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A NATS client connection: publish, subscribe, request/reply through one inbox, headers,
/// keep-alive pings, and reconnection across the server list with backoff and resubscription.
///
/// Publishing and requests fail at once with `.notConnected` while the connection is down:
/// nothing is buffered for later, so a caller never mistakes a queued message for a sent one.
/// Subscriptions survive reconnects (they are sent again on every new connection).
public final class NATSConnection: Sendable {
    public let options: NATSOptions
    let logger: Logger
    let group: any EventLoopGroup
    let sslContext: NIOSSLContext?
    let inboxPrefix: String
    private let state: Mutex<State>
    /// When anything last arrived from the server (monotonic nanoseconds): written on every
    /// inbound operation without a lock, read by the stall watchdog.
    private let lastInbound = Atomic<UInt64>(0)
    private let supervisor: Mutex<Task<Void, Never>?> = Mutex(nil)

    enum Status: Sendable { case connecting, connected, closed }

    struct Subscription: Sendable {
        var subject: String
        var queue: String?
        var continuation: AsyncStream<NATSMessage>.Continuation
    }

    struct PendingRequest: Sendable {
        var subject: String
        /// Resumed with the reply, or with every reply of a `requestMany` (the status message last).
        var continuation: CheckedContinuation<[NATSMessage], any Error>
        var timeout: Scheduled<Void>?
        /// When it was sent (monotonic nanoseconds), for the stall watchdog.
        var sentAt: UInt64 = 0
        /// A `requestMany`: replies without a status are kept here until one with a status ends it.
        var collecting = false
        var replies: [NATSMessage] = []
    }

    struct State: Sendable {
        var status: Status = .connecting
        var channel: (any Channel)?
        var servers: [NATSServerAddress]
        var nextServer = 0
        var nextSID: UInt64 = 2
        var subscriptions: [UInt64: Subscription] = [:]
        var requests: [UInt64: PendingRequest] = [:]
        var nextRequest: UInt64 = 1
        var info: ServerInfo?
        var connectedServer: NATSServerAddress?
        var lastError: String = "connecting"
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiter: UInt64 = 1
        var pingsOutstanding = 0
        /// The stall watchdog's PING in flight: when it was sent.
        var stallProbeSentAt: UInt64?
        /// Since when the connected server has not answered a waiting request (nil: it answers).
        var stalledSince: UInt64?
        /// When the earliest request that timed out with nothing at all heard after it was sent
        /// was sent: evidence of a silent server that outlives the request (its caller gave up,
        /// no other request may be waiting), until something arrives.
        var unansweredSince: UInt64?
        /// A server just left for not answering: tried last for a while (a paused server still
        /// accepts TCP connections, and each attempt would cost a handshake timeout).
        var avoid: (server: NATSServerAddress, until: UInt64)?
        var dropped: UInt64 = 0
        var reconnects: UInt64 = 0
    }

    static let inboxSID: UInt64 = 1

    /// Creates the connection and starts connecting in the background; see `waitUntilConnected`.
    public init(options: NATSOptions, logger: Logger = Logger(label: "nats"), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        guard !options.servers.isEmpty else { throw NATSError.invalidOption("no NATS servers configured") }
        self.options = options
        self.logger = logger
        self.group = group
        var random = SystemRandomNumberGenerator()
        self.inboxPrefix = "_INBOX." + String(random.next(), radix: 36) + String(random.next(), radix: 36) + "."
        if let tls = options.tls {
            var config = TLSConfiguration.makeClientConfiguration()
            do {
                if let ca = tls.caFile { config.trustRoots = .file(ca) }
                if let cert = tls.certificateFile {
                    config.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                }
                if let key = tls.privateKeyFile { config.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)) }
                self.sslContext = try NIOSSLContext(configuration: config)
            } catch {
                throw NATSError.invalidOption("NATS TLS settings are unusable: \(error)")
            }
        } else {
            self.sslContext = nil
        }
        var initial = State(servers: options.servers)
        // Clients of one cluster spread over its servers instead of all on the first.
        if options.randomizeServers { initial.nextServer = Int.random(in: 0..<options.servers.count) }
        self.state = Mutex(initial)
        let task = Task { [weak self] in
            guard let self else { return }
            await self.superviseConnection()
        }
        supervisor.withLock { $0 = task }
    }

    /// Connects, waiting up to `timeout` for the first connection.
    public static func connect(options: NATSOptions, logger: Logger = Logger(label: "nats"), timeout: Duration = .seconds(5)) async throws -> NATSConnection {
        let connection = try NATSConnection(options: options, logger: logger)
        do {
            try await connection.waitUntilConnected(timeout: timeout)
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// Whether the connection is up now, and the last error otherwise.
    public var status: (connected: Bool, server: NATSServerAddress?, lastError: String) {
        state.withLock { ($0.status == .connected, $0.connectedServer, $0.lastError) }
    }

    /// The INFO of the server connected to (max payload, version…).
    public var serverInfo: ServerInfo? { state.withLock { $0.info } }

    /// Messages dropped because a subscriber did not keep up, and reconnections so far.
    public var counters: (dropped: UInt64, reconnects: UInt64) { state.withLock { ($0.dropped, $0.reconnects) } }

    /// Waits until connected (returns at once when already connected).
    public func waitUntilConnected(timeout: Duration) async throws {
        let id: UInt64? = state.withLock { s in
            if s.status == .connected { return nil }
            let id = s.nextWaiter
            s.nextWaiter += 1
            return id
        }
        guard let id else { return }
        let timer = group.next().scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak self] in
            guard let self else { return }
            let waiter = self.state.withLock { s in s.waiters.removeValue(forKey: id).map { ($0, s.lastError) } }
            waiter?.0.resume(throwing: NATSError.notConnected(waiter?.1 ?? "timed out"))
        }
        defer { timer.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, NATSError>? = state.withLock { s in
                switch s.status {
                case .connected: return .success(())
                case .closed: return .failure(.closed)
                case .connecting:
                    s.waiters[id] = continuation
                    return nil
                }
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    // MARK: Publish, subscribe, request

    public func publish(_ subject: String, payload: ByteBuffer = ByteBuffer(), headers: NATSHeaders? = nil, replyTo: String? = nil) throws {
        let channel = try connectedChannel()
        var pieces: [ByteBuffer] = []
        ClientOp.pub(into: &pieces, allocator: channel.allocator, subject: subject, reply: replyTo, headers: headers, payload: payload)
        _ = Self.send(pieces, on: channel)
    }

    /// Subscribes to `subject` (wildcards allowed). The stream ends when the subscription is
    /// removed or the connection closed.
    public func subscribe(_ subject: String, queue: String? = nil) throws -> NATSSubscription {
        let (stream, continuation) = AsyncStream.makeStream(of: NATSMessage.self, bufferingPolicy: .bufferingOldest(options.subscriptionBufferLimit))
        let (sid, channel): (UInt64, (any Channel)?) = try state.withLock { s in
            if s.status == .closed { throw NATSError.closed }
            let sid = s.nextSID
            s.nextSID += 1
            s.subscriptions[sid] = Subscription(subject: subject, queue: queue, continuation: continuation)
            return (sid, s.status == .connected ? s.channel : nil)
        }
        if let channel {
            var buffer = channel.allocator.buffer(capacity: subject.utf8.count + 32)
            ClientOp.sub(&buffer, subject: subject, queue: queue, sid: sid)
            channel.writeAndFlush(buffer, promise: nil)
        }
        return NATSSubscription(sid: sid, subject: subject, messages: stream, connection: self)
    }

    func unsubscribe(sid: UInt64) {
        let (sub, channel) = state.withLock { s in (s.subscriptions.removeValue(forKey: sid), s.channel) }
        sub?.continuation.finish()
        if let channel {
            var buffer = channel.allocator.buffer(capacity: 32)
            ClientOp.unsub(&buffer, sid: sid)
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    /// Publishes a request and waits for the first reply (through the connection's inbox).
    /// A 503 status reply (nobody listening) throws `.noResponders`. `preceding` messages are
    /// published first, without replies, in the same write (the leading messages of an atomic
    /// batch whose last message is the request: one write and one flush per batch).
    public func request(
        _ subject: String, payload: ByteBuffer = ByteBuffer(), headers: NATSHeaders? = nil, timeout: Duration? = nil,
        preceding: [(subject: String, headers: NATSHeaders?, payload: ByteBuffer)] = []
    ) async throws -> NATSMessage {
        let replies = try await sendRequest(subject, payload: payload, headers: headers, timeout: timeout, preceding: preceding, collecting: false)
        guard let message = replies.last else { throw NATSError.timeout(subject: subject) }
        return message
    }

    /// Publishes a request whose answer is several messages ended by a status message (JetStream's
    /// batched direct gets end with `204 EOB`, or answer with one status such as `404`): returns
    /// them all, the status message last. The time limit is for the whole answer.
    public func requestMany(_ subject: String, payload: ByteBuffer = ByteBuffer(), timeout: Duration? = nil) async throws -> [NATSMessage] {
        try await sendRequest(subject, payload: payload, headers: nil, timeout: timeout, preceding: [], collecting: true)
    }

    /// One request and its inbox registration, for `request` and `requestMany`.
    private func sendRequest(
        _ subject: String, payload: ByteBuffer, headers: NATSHeaders?, timeout: Duration?,
        preceding: [(subject: String, headers: NATSHeaders?, payload: ByteBuffer)], collecting: Bool
    ) async throws -> [NATSMessage] {
        let timeout = timeout ?? options.requestTimeout
        let loop = group.next()
        let replies = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[NATSMessage], any Error>) in
            let registered: Result<(UInt64, any Channel), NATSError> = state.withLock { s in
                guard s.status == .connected, let channel = s.channel else {
                    return .failure(s.status == .closed ? .closed : .notConnected(s.lastError))
                }
                let id = s.nextRequest
                s.nextRequest += 1
                s.requests[id] = PendingRequest(subject: subject, continuation: continuation, timeout: nil, sentAt: monotonicNow(), collecting: collecting)
                return .success((id, channel))
            }
            switch registered {
            case .failure(let error):
                continuation.resume(throwing: error)
            case .success(let (id, channel)):
                let timer = loop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak self] () -> Void in
                    self?.requestTimedOut(id, subject: subject)
                }
                let stillPending = state.withLock { s -> Bool in
                    guard s.requests[id] != nil else { return false }
                    s.requests[id]?.timeout = timer
                    return true
                }
                if !stillPending { timer.cancel() }
                var pieces: [ByteBuffer] = []
                pieces.reserveCapacity((preceding.count + 1) * 3)
                for m in preceding {
                    ClientOp.pub(into: &pieces, allocator: channel.allocator, subject: m.subject, reply: nil, headers: m.headers, payload: m.payload)
                }
                ClientOp.pub(into: &pieces, allocator: channel.allocator, subject: subject, reply: inboxPrefix + String(id), headers: headers, payload: payload)
                Self.send(pieces, on: channel).whenFailure { [weak self] error in
                    self?.finishRequest(id, with: .failure(NATSError.notConnected("write failed: \(error)")))
                }
            }
        }
        if let last = replies.last, last.status == 503 && last.payload.readableBytes == 0 {
            throw NATSError.noResponders(subject: subject)
        }
        return replies
    }

    /// A reply reached the inbox: it answers its request, or (a `requestMany`) is kept until the
    /// status message that ends the answer.
    private func replied(_ id: UInt64, _ message: NATSMessage) {
        let done: PendingRequest? = state.withLock { s in
            guard let pending = s.requests[id] else { return nil }
            if pending.collecting && message.status == nil {
                s.requests[id]?.replies.append(message)
                return nil
            }
            return s.requests.removeValue(forKey: id)
        }
        guard let done else { return }
        done.timeout?.cancel()
        done.continuation.resume(returning: done.replies + [message])
    }

    /// A request's time ran out: if nothing at all came from the server since it was sent, the
    /// stall watchdog keeps that in mind (`unansweredSince`) after the request is gone.
    private func requestTimedOut(_ id: UInt64, subject: String) {
        let inbound = lastInbound.load(ordering: .relaxed)
        state.withLock { s in
            guard let sent = s.requests[id]?.sentAt, inbound < sent else { return }
            s.unansweredSince = min(s.unansweredSince ?? sent, sent)
        }
        finishRequest(id, with: .failure(NATSError.timeout(subject: subject)))
    }

    private func finishRequest(_ id: UInt64, with result: Result<[NATSMessage], any Error>) {
        guard let pending = state.withLock({ $0.requests.removeValue(forKey: id) }) else { return }
        pending.timeout?.cancel()
        pending.continuation.resume(with: result)
    }

    private func connectedChannel() throws -> any Channel {
        try state.withLock { s in
            guard s.status == .connected, let channel = s.channel else {
                throw s.status == .closed ? NATSError.closed : NATSError.notConnected(s.lastError)
            }
            return channel
        }
    }

    /// Writes `pieces` and flushes once, in one task on the channel's loop, so that pieces of
    /// concurrent publishers never interleave.
    static func send(_ pieces: [ByteBuffer], on channel: any Channel) -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.eventLoop.execute {
            for piece in pieces.dropLast() { channel.write(piece, promise: nil) }
            channel.writeAndFlush(pieces.last ?? ByteBuffer(), promise: promise)
        }
        return promise.futureResult
    }

    /// Closes the connection: pending requests fail with `.closed`, subscriptions end.
    public func close() async {
        let (channel, requests, subs, waiters) = state.withLock { s in
            s.status = .closed
            defer { s.requests = [:]; s.subscriptions = [:]; s.waiters = [:]; s.channel = nil }
            return (s.channel, s.requests, s.subscriptions, s.waiters)
        }
        supervisor.withLock { $0?.cancel() }
        for r in requests.values { r.timeout?.cancel(); r.continuation.resume(throwing: NATSError.closed) }
        for s in subs.values { s.continuation.finish() }
        for w in waiters.values { w.resume(throwing: NATSError.closed) }
        if let channel { try? await channel.close() }
    }

    // MARK: Connection lifecycle

    /// Connects, waits for the connection to drop, reconnects: until `close()`.
    private func superviseConnection() async {
        var wait = options.reconnectWait
        var failuresInRound = 0
        while !Task.isCancelled {
            let next: NATSServerAddress? = state.withLock { s in
                if s.status == .closed { return nil }
                var server = s.servers[s.nextServer % s.servers.count]
                s.nextServer += 1
                if let avoid = s.avoid, monotonicNow() < avoid.until {
                    for _ in 0..<s.servers.count where server == avoid.server {
                        server = s.servers[s.nextServer % s.servers.count]
                        s.nextServer += 1
                    }
                }
                return server
            }
            guard let server = next else { return }
            do {
                let channel = try await connectOnce(to: server)
                wait = options.reconnectWait
                failuresInRound = 0
                try? await channel.closeFuture.get()
                let (requests, wasClosed): ([PendingRequest], Bool) = state.withLock { s in
                    let wasClosed = s.status == .closed
                    if !wasClosed {
                        s.status = .connecting
                        s.lastError = "connection to \(server) lost; reconnecting"
                        s.reconnects += 1
                    }
                    s.channel = nil
                    s.connectedServer = nil
                    let pending = Array(s.requests.values)
                    s.requests = [:]
                    return (pending, wasClosed)
                }
                for r in requests {
                    r.timeout?.cancel()
                    r.continuation.resume(throwing: NATSError.notConnected("connection to \(server) lost while waiting for a reply on \(r.subject)"))
                }
                if wasClosed { return }
                logger.warning("NATS connection lost; reconnecting", metadata: ["server": "\(server)"])
            } catch {
                let message = "cannot connect to \(server): \(error)"
                state.withLock { $0.lastError = message }
                logger.debug("\(message)")
                failuresInRound += 1
                let serverCount = state.withLock { $0.servers.count }
                if failuresInRound >= serverCount {
                    failuresInRound = 0
                    logger.warning("no NATS server reachable; retrying", metadata: ["error": "\(message)", "retry_in": "\(wait)"])
                    try? await Task.sleep(for: wait)
                    wait = min(wait * 2, options.reconnectWaitMax)
                }
            }
        }
    }

    /// One connection attempt: TCP, INFO, (TLS), CONNECT, PING/PONG, then resubscribe.
    private func connectOnce(to server: NATSServerAddress) async throws -> any Channel {
        let loop = group.next()
        let handshake = loop.makePromise(of: ServerInfo.self)
        let handler = ConnectionHandler(connection: self, server: server, handshake: handshake)
        let connecting = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(options.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ServerOpDecoder()))
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescer())
                }
            }
            .connect(host: server.host, port: server.port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            // The handler never ran (or ran without finishing): settle the promise on its loop.
            loop.execute { handler.fail(NATSError.notConnected("\(server): \(error)")) }
            throw error
        }
        let timer = loop.scheduleTask(in: .nanoseconds(options.connectTimeout.nanoseconds)) {
            handler.fail(NATSError.notConnected("handshake with \(server) timed out"))
            channel.close(promise: nil)
        }
        let info: ServerInfo
        do {
            info = try await handshake.futureResult.get()
            timer.cancel()
        } catch {
            timer.cancel()
            try? await channel.close()
            throw error
        }
        let waiters: [CheckedContinuation<Void, any Error>] = state.withLock { s in
            if s.status == .closed { return [] }
            s.status = .connected
            s.channel = channel
            s.connectedServer = server
            s.info = info
            s.pingsOutstanding = 0
            s.stallProbeSentAt = nil
            s.stalledSince = nil
            s.unansweredSince = nil
            s.lastError = ""
            discover(from: info, tls: server.tls, into: &s)
            var buffer = channel.allocator.buffer(capacity: 256)
            ClientOp.sub(&buffer, subject: inboxPrefix + "*", queue: nil, sid: Self.inboxSID)
            for (sid, sub) in s.subscriptions { ClientOp.sub(&buffer, subject: sub.subject, queue: sub.queue, sid: sid) }
            channel.writeAndFlush(buffer, promise: nil)
            let w = Array(s.waiters.values)
            s.waiters = [:]
            return w
        }
        for w in waiters { w.resume() }
        lastInbound.store(monotonicNow(), ordering: .relaxed)
        schedulePing(channel: channel)
        scheduleStallCheck(channel: channel)
        logger.info("connected to NATS", metadata: ["server": "\(server)", "version": "\(info.version ?? "?")"])
        return channel
    }

    private func schedulePing(channel: any Channel) {
        let interval = options.pingInterval
        let maxOut = options.maxPingsOutstanding
        channel.eventLoop.scheduleTask(in: .nanoseconds(interval.nanoseconds)) { [weak self] in
            guard let self, channel.isActive else { return }
            let stale = self.state.withLock { s -> Bool in
                guard s.channel === channel else { return true }
                if s.pingsOutstanding >= maxOut { return true }
                s.pingsOutstanding += 1
                return false
            }
            if stale {
                self.logger.warning("NATS server stopped answering PING; dropping the connection")
                channel.close(promise: nil)
                return
            }
            channel.writeAndFlush(channel.allocator.buffer(string: "PING\r\n"), promise: nil)
            self.schedulePing(channel: channel)
        }
    }

    /// Every eighth of `stallTimeout`: is a request waiting on a server that sends nothing? Half
    /// of it with nothing inbound sends a PING; the other half with no answer drops the
    /// connection, so a silent server costs `stallTimeout` (and a check's granularity).
    private func scheduleStallCheck(channel: any Channel) {
        let limit = options.stallTimeout.nanoseconds / 2
        channel.eventLoop.scheduleTask(in: .nanoseconds(max(1, limit / 4))) { [weak self] in
            guard let self, channel.isActive else { return }
            let inbound = self.lastInbound.load(ordering: .relaxed)
            let action = self.state.withLock { s -> StallAction in
                guard s.channel === channel else { return .stop }
                // Read under the lock: a request registered meanwhile is never newer than `now`.
                let now = monotonicNow()
                if let probe = s.stallProbeSentAt {
                    if inbound >= probe { s.stallProbeSentAt = nil; s.stalledSince = nil; s.unansweredSince = nil; return .none }
                    return now > probe && now - probe > UInt64(limit) ? .drop : .none
                }
                // The oldest request sent after the last thing heard (an earlier one may have been
                // overtaken by an answer to another), or one that timed out unanswered.
                var oldest = s.requests.values.lazy.map(\.sentAt).filter { $0 > inbound }.min()
                if let unanswered = s.unansweredSince {
                    if inbound >= unanswered { s.unansweredSince = nil } else { oldest = min(oldest ?? unanswered, unanswered) }
                }
                guard let oldest, now > oldest, now - oldest > UInt64(limit) else { return .none }
                s.stallProbeSentAt = now
                s.stalledSince = oldest
                return .probe
            }
            switch action {
            case .stop: return
            case .none: break
            case .probe: channel.writeAndFlush(channel.allocator.buffer(string: "PING\r\n"), promise: nil)
            case .drop:
                let server = self.state.withLock { s -> String in
                    s.lastError = "\(s.connectedServer.map { "\($0)" } ?? "the NATS server") stopped answering (requests waited, a PING went unanswered); trying another server"
                    if let stalled = s.connectedServer { s.avoid = (stalled, monotonicNow() + 30_000_000_000) }
                    return s.connectedServer.map { "\($0)" } ?? "?"
                }
                self.logger.warning("NATS server stopped answering; dropping the connection", metadata: ["server": "\(server)"])
                channel.close(promise: nil)
                return
            }
            self.scheduleStallCheck(channel: channel)
        }
    }

    enum StallAction { case stop, none, probe, drop }

    /// Since when the connected server has left a waiting request unanswered, in milliseconds,
    /// or nil while it answers: a paused or cut-off server, before the connection is dropped.
    public var stalledMilliseconds: UInt64? {
        state.withLock { s in s.stalledSince.map { (monotonicNow() &- $0) / 1_000_000 } }
    }

    /// Something arrived from the server (the stall watchdog's evidence of life).
    func noteInbound() { lastInbound.store(monotonicNow(), ordering: .relaxed) }

    // MARK: Inbound

    func connectPayload(info: ServerInfo) -> String {
        var fields: [String: ConnectValue] = [
            "verbose": .bool(false), "pedantic": .bool(false), "headers": .bool(true),
            "no_responders": .bool(true), "protocol": .int(1), "lang": .string("swift"),
            "version": .string("0.1.0"), "name": .string(options.name),
            "tls_required": .bool(sslContext != nil),
        ]
        if let user = options.user { fields["user"] = .string(user) }
        if let password = options.password { fields["pass"] = .string(password) }
        if let token = options.token { fields["auth_token"] = .string(token) }
        let data = (try? JSONEncoder().encode(fields)) ?? Data("{}".utf8)
        return "CONNECT " + String(decoding: data, as: UTF8.self) + "\r\n"
    }

    func received(_ message: NATSMessage, sid: UInt64) {
        if sid == Self.inboxSID {
            guard message.subject.hasPrefix(inboxPrefix), let id = UInt64(message.subject.dropFirst(inboxPrefix.count)) else { return }
            replied(id, message)
            return
        }
        guard let sub = state.withLock({ $0.subscriptions[sid] }) else { return }
        if case .dropped = sub.continuation.yield(message) {
            let n = state.withLock { s -> UInt64 in s.dropped += 1; return s.dropped }
            if n == 1 || n % 10_000 == 0 {
                logger.warning("slow consumer: dropping messages", metadata: ["subject": "\(sub.subject)", "dropped": "\(n)"])
            }
        }
    }

    func receivedPong() { state.withLock { $0.pingsOutstanding = 0 } }

    func receivedInfo(_ info: ServerInfo, server: NATSServerAddress) {
        state.withLock { discover(from: info, tls: server.tls, into: &$0) }
    }

    /// Adds the servers a cluster announces (INFO `connect_urls`) to the list, with the TLS
    /// setting of the server that announced them.
    private func discover(from info: ServerInfo, tls: Bool, into s: inout State) {
        guard options.discoverServers, let urls = info.connect_urls else { return }
        for url in urls {
            if let a = try? NATSServerAddress(url: url), !s.servers.contains(where: { $0.host == a.host && $0.port == a.port }) {
                s.servers.append(NATSServerAddress(host: a.host, port: a.port, tls: tls))
            }
        }
    }

    func receivedError(_ text: String) {
        state.withLock { $0.lastError = "server said -ERR \(text)" }
        logger.warning("NATS server error", metadata: ["error": "\(text)"])
    }
}

enum ConnectValue: Encodable {
    case bool(Bool), int(Int), string(String)
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }
}

/// A live subscription; iterate `messages`. Ends on `unsubscribe()` or when the connection closes.
public struct NATSSubscription: Sendable {
    public let sid: UInt64
    public let subject: String
    public let messages: AsyncStream<NATSMessage>
    let connection: NATSConnection

    public func unsubscribe() { connection.unsubscribe(sid: sid) }
}

/// Turns the flushes asked for in one turn of the event loop into one, at its end. NATS writes
/// are small and many (a request, a publish, each its own `send`), and a flush is a `writev`
/// system call: under load, the dozens of requests queued on the loop at once go out in one.
/// Outermost in the pipeline, so every flush of the channel passes here first.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = bound.value
            coalescer.scheduled = false
            context.flush()
        }
    }
}

/// The pipeline end of one connection: the handshake, then forwarding to `NATSConnection`.
///
/// `@unchecked Sendable`: NIO calls a handler only on its channel's event loop, and every
/// mutable property (`phase`, `info`, `handshakeDone`) is touched only from those callbacks;
/// the rest is immutable. It is Sendable only so that the connection can keep a reference.
final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ServerOp
    typealias OutboundOut = ByteBuffer

    enum Phase { case awaitingInfo, awaitingPong, ready }
    private var phase = Phase.awaitingInfo
    private let connection: NATSConnection
    private let server: NATSServerAddress
    private let handshake: EventLoopPromise<ServerInfo>
    private var info: ServerInfo?
    private var handshakeDone = false

    /// Fails the handshake once; later calls (after success or failure) do nothing.
    func fail(_ error: any Error) {
        guard !handshakeDone else { return }
        handshakeDone = true
        handshake.fail(error)
    }

    init(connection: NATSConnection, server: NATSServerAddress, handshake: EventLoopPromise<ServerInfo>) {
        self.connection = connection
        self.server = server
        self.handshake = handshake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let op = unwrapInboundIn(data)
        connection.noteInbound()
        switch (phase, op) {
        case (.awaitingInfo, .info(let info)):
            self.info = info
            let wantTLS = connection.sslContext != nil || server.tls
            if info.tls_required == true && !wantTLS {
                fail(NATSError.notConnected("\(server) requires TLS; configure NATS TLS (a CA file) or use tls://"))
                context.close(promise: nil)
                return
            }
            if wantTLS {
                do {
                    let ssl = try connection.sslContext ?? NIOSSLContext(configuration: .makeClientConfiguration())
                    let tlsHandler = try NIOSSLClientHandler(context: ssl, serverHostname: server.host.first?.isNumber == true ? nil : server.host)
                    try context.pipeline.syncOperations.addHandler(tlsHandler, position: .first)
                } catch {
                    fail(NATSError.notConnected("TLS setup for \(server) failed: \(error)"))
                    context.close(promise: nil)
                    return
                }
            }
            phase = .awaitingPong
            var buffer = context.channel.allocator.buffer(capacity: 256)
            buffer.writeString(connection.connectPayload(info: info))
            buffer.writeString("PING\r\n")
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case (.awaitingPong, .pong):
            phase = .ready
            if let info, !handshakeDone {
                handshakeDone = true
                handshake.succeed(info)
            }
        case (.awaitingPong, .err(let text)), (.awaitingInfo, .err(let text)):
            fail(NATSError.serverError(text))
            context.close(promise: nil)
        case (_, .ping):
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: "PONG\r\n")), promise: nil)
        case (.ready, .pong):
            connection.receivedPong()
        case (.ready, .msg(let sid, let message)):
            connection.received(message, sid: sid)
        case (.ready, .info(let info)):
            connection.receivedInfo(info, server: server)
        case (.ready, .err(let text)):
            connection.receivedError(text)
        default: // +OK (never asked for: verbose is off), and ops out of phase
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(NATSError.notConnected("\(server): \(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(NATSError.notConnected("\(server) closed the connection during the handshake"))
        context.fireChannelInactive()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, attos) = components
        return s * 1_000_000_000 + attos / 1_000_000_000
    }
}

enum JSONCoding {
    static let decoder = JSONDecoder()
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC through Dispatch).
func monotonicNow() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
