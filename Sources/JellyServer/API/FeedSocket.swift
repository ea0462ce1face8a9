import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import JellyCore
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization

/// The change feed over a WebSocket (docs/sync.md, "WebSocket"): `GET /v1/partitions/{p}/changes`
/// with an upgrade watches one partition from `since`; `GET /v1/watch` (API keys) watches any
/// partitions the client names. The server sends one text message per batch of commits as they
/// happen — the body of a feed answer with `partition` added — a first message at once (so the
/// client has the cursor and epoch), a reset first when the cursor needs one, and pings every
/// `pingSeconds`. The client may send `{"partition": P, "since": V, "epoch": E}` to (re)subscribe
/// (P is optional on a one-partition socket) and `{"partition": P, "unwatch": true}` to stop.
struct FeedSocket: Sendable {
    let api: API

    /// Largest frame a client may send (its messages are small JSON).
    static let frameBytesMax = 1 << 14
    /// Partitions one socket may watch at once.
    static let watchPartitionsMax = 10_000
    /// A ping this often keeps proxies from closing a quiet socket and finds dead peers.
    static let pingSeconds = 20
    /// Changes per message (a message never splits a commit, so it may hold one batch more).
    static let changesPerMessage = 1000

    static let watchPath = "/v1/watch"

    struct Refused: Error {}

    struct Subscription: Sendable {
        var partition: String
        var since: UInt64
        var epoch: String?
    }

    struct Session: Sendable {
        var role: SyncRole
        /// The partition of a one-partition socket; nil for `/v1/watch`.
        var partition: String?
        var initial: Subscription?
    }

    /// Whether `path` (with its query) is one a feed socket may be opened on; other upgrade
    /// requests are served as plain HTTP (`HTTP1ProtocolHandler` drops their `Upgrade`).
    static func isFeedPath(_ uri: String) -> Bool {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        return path == watchPath || Route.changesPath.match(path) != nil
    }

    /// The session for a feed upgrade, or the error that refuses it (answered as such: a
    /// refused upgrade has used up its request).
    func accept(_ head: HTTPRequestHead) async -> Result<Session, APIError> {
        do {
            let uri = URI(head.uri)
            var fields = HTTPFields()
            if let authorization = head.headers.first(name: "Authorization"), let name = HTTPField.Name("Authorization") {
                fields[name] = authorization
            }
            let path = uri.path
            guard let raw = Route.changesPath.match(path)?.first else {
                // `/v1/watch`: game backends only.
                let identity = try await api.auth.identify(headers: fields)
                try identity.requireServer("watch partitions (a client watches its own with /v1/partitions/{p}/changes)")
                return .success(Session(role: .server, partition: nil, initial: nil))
            }
            let (partition, _) = try api.names(rawPartition: String(raw), rawKey: nil)
            let query = try FeedQuery(get: { uri.queryParameters.get($0) }, limits: api.store.limits)
            let identity = try await api.auth.identify(headers: fields)
            let role: SyncRole
            if identity.isServer {
                role = .server
            } else {
                try identity.requireOwnPartition(partition)
                role = .owner
            }
            return .success(Session(role: role, partition: partition, initial: Subscription(partition: partition, since: query.since, epoch: query.epoch)))
        } catch {
            return .failure(APIError(error))
        }
    }

    /// Serves a socket until the client closes it or the connection ends.
    func run(_ socket: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, session: Session, logger: Logger) async {
        do {
            try await socket.executeThenClose { inbound, outbound in
                let (frames, send) = AsyncStream.makeStream(of: WebSocketFrame.self, bufferingPolicy: .bufferingNewest(100_000))
                let watchers = Watchers()
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await frame in frames {
                            do { try await outbound.write(frame) } catch { return }
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(Self.pingSeconds))
                            send.yield(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "jelly")))
                        }
                    }
                    if let initial = session.initial { watchers.start(initial, feed: self, role: session.role, send: send) }
                    do {
                        for try await frame in inbound {
                            switch frame.opcode {
                            case .text:
                                handle(message: frame.unmaskedData, session: session, watchers: watchers, send: send)
                            case .ping:
                                send.yield(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
                            case .connectionClose:
                                send.yield(WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData))
                                throw CancellationError()
                            default:
                                break
                            }
                        }
                    } catch {}
                    watchers.stopAll()
                    send.finish()
                    group.cancelAll()
                }
            }
        } catch {
            logger.debug("feed socket ended", metadata: ["error": "\(error)"])
        }
    }

    /// A client's message: subscribe, resubscribe or stop.
    private func handle(message: ByteBuffer, session: Session, watchers: Watchers, send: AsyncStream<WebSocketFrame>.Continuation) {
        struct Message: Decodable {
            var partition: String?
            var since: UInt64?
            var epoch: String?
            var unwatch: Bool?
        }
        func fail(_ text: String, partition: String? = nil) {
            var body: [String: String] = ["error": "bad_request", "message": text]
            if let partition { body["partition"] = partition }
            let data = (try? JSONEncoder().encode(body)) ?? Data()
            send.yield(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: data)))
        }
        guard let m = try? JSONDecoder().decode(Message.self, from: Data(message.readableBytesView)) else {
            return fail("a message is JSON {\"partition\": P, \"since\": V, \"epoch\": E} or {\"partition\": P, \"unwatch\": true}")
        }
        guard let partition = m.partition ?? session.partition else { return fail("name the partition to watch") }
        if let own = session.partition, own != partition {
            return fail("this socket watches partition \(Names.quoted(own)); use /v1/watch for others", partition: partition)
        }
        do {
            try Names.validate(partition, as: .partition, maxBytes: api.store.limits.partitionBytesMax)
        } catch let error as JellyError {
            return fail(error.message, partition: partition)
        } catch {
            return fail("\(error)", partition: partition)
        }
        if m.unwatch == true { return watchers.stop(partition) }
        if !watchers.has(partition) && watchers.count >= Self.watchPartitionsMax {
            return fail("a socket watches at most \(Self.watchPartitionsMax) partitions; unwatch some or open another socket", partition: partition)
        }
        watchers.start(Subscription(partition: partition, since: m.since ?? 0, epoch: m.epoch), feed: self, role: session.role, send: send)
    }

    /// Sends a partition's changes as they commit, from `subscription.since`, until cancelled.
    /// A store that calls back on commits (`ChangeListening`) is listened to: one callback per
    /// commit; any other is waited on (`waitForChanges`) once per batch.
    func watch(_ subscription: Subscription, role: SyncRole, send: AsyncStream<WebSocketFrame>.Continuation) async {
        let store = api.store
        var since = subscription.since
        var epoch = subscription.epoch
        var sentLock: Bool?
        // Registered before the first read, so no commit after it goes unnoticed.
        let (commits, noticed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let listener = (store as? any ChangeListening)?.listenForChanges(partition: subscription.partition) { _ in noticed.yield() }
        defer { listener?.stop() }
        var notices = commits.makeAsyncIterator()
        while !Task.isCancelled {
            do {
                let batch = try await store.changes(partition: subscription.partition, since: since, limit: Self.changesPerMessage, epoch: epoch, role: role)
                let locked = batch.lock != nil
                if sentLock == nil || !batch.changes.isEmpty || batch.reset || locked != sentLock {
                    send.yield(WebSocketFrame(fin: true, opcode: .text, data: ChangesResponseBody(batch, partition: subscription.partition).json))
                    sentLock = locked
                }
                since = batch.next
                epoch = batch.epoch
                if batch.more { continue }
                if listener != nil {
                    if await notices.next() == nil { return } // cancelled
                } else {
                    _ = try await store.waitForChanges(partition: subscription.partition, after: since, timeoutMilliseconds: Self.pingSeconds * 1000)
                }
            } catch is CancellationError {
                return
            } catch {
                let e = APIError(error)
                let body = ["error": e.code, "message": e.message, "partition": subscription.partition]
                send.yield(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: (try? JSONEncoder().encode(body)) ?? Data())))
                if e.status == .serviceUnavailable {
                    try? await Task.sleep(for: .seconds(1)) // the store may come back: try again
                    continue
                }
                return
            }
        }
    }

    /// The watching tasks of one socket, by partition.
    final class Watchers: Sendable {
        private let tasks = Mutex<[ByteName: Task<Void, Never>]>([:])

        var count: Int { tasks.withLock { $0.count } }

        func has(_ partition: String) -> Bool { tasks.withLock { $0[ByteName(partition)] != nil } }

        func start(_ subscription: Subscription, feed: FeedSocket, role: SyncRole, send: AsyncStream<WebSocketFrame>.Continuation) {
            let task = Task { await feed.watch(subscription, role: role, send: send) }
            let old = tasks.withLock { $0.updateValue(task, forKey: ByteName(subscription.partition)) }
            old?.cancel()
        }

        func stop(_ partition: String) {
            tasks.withLock { $0.removeValue(forKey: ByteName(partition)) }?.cancel()
        }

        func stopAll() {
            for task in tasks.withLock({ t -> [Task<Void, Never>] in defer { t = [:] }; return Array(t.values) }) { task.cancel() }
        }
    }
}
