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

/// A stream over a WebSocket (docs/streams.md, "WebSocket"): `GET /v1/partitions/{p}/streams/{s}`
/// with an upgrade.
///
/// - `?mode=append`: the client sends each frame as a binary message and waits for nothing.
///   The server appends them in order, in batches (one append in flight at a time; what
///   arrives meanwhile is the next batch), and answers only refusals, as text
///   `{"error", "message", "refused", "acked"}`, plus, with `acks=committed|durable`,
///   `{"acked": N, "seq": S}` after each batch (N frames of this socket acknowledged so far, S
///   the last one's sequence). A text message `{"base_version": V}` sets the base version of
///   the frames after it, `{"token": T}` the lock token. When more than `queueBytesMax` bytes
///   wait for the disk the server stops reading the socket (backpressure) until half is written.
/// - otherwise (tail, replay): the server sends the frames from `from` as binary messages,
///   `seq u64 | time_ms i64 | base_version u64 | value` (little-endian, 24 bytes of header), as
///   fast as the client takes them or, with `pace=original`, at their original spacing divided
///   by `speed`; then follows new frames as they are appended (`follow=false` closes instead,
///   with 1000). Frames dropped before the client read them are announced as
///   `{"gap": {"from": F, "first": S}}`.
struct StreamSocket: Sendable {
    let api: API

    /// Bytes of received frames a socket holds while its previous batch is appended.
    static let queueBytesMax = 1 << 20
    static let pingSeconds = 20
    /// Fastest replay speed factor.
    static let speedMax = 1000.0

    enum Acks: String, Sendable { case none, committed, durable }

    enum Mode: Sendable {
        case append(token: LockToken?, base: UInt64, retention: StreamRetention?, acks: Acks)
        case tail(from: UInt64, speed: Double?, follow: Bool)
    }

    struct Session: Sendable {
        var partition: String
        var stream: String
        var mode: Mode
    }

    static func isStreamPath(_ uri: String) -> Bool {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        return Route.streamPath.match(path) != nil
    }

    func accept(_ head: HTTPRequestHead) async -> Result<Session, APIError> {
        do {
            let uri = URI(head.uri)
            guard let raw = Route.streamPath.match(uri.path), raw.count == 2 else { throw APIError.notFound("not a stream path") }
            let (partition, stream) = try api.streamNames(rawPartition: String(raw[0]), rawStream: String(raw[1]))
            let get: (String) -> String? = { uri.queryParameters.get($0) }
            let query = try StreamQuery(get: get, limits: api.store.limits)
            var fields = HTTPFields()
            for name in ["Authorization", "Jelly-Lock-Token"] {
                if let value = head.headers.first(name: name), let field = HTTPField.Name(name) { fields[field] = value }
            }
            let identity = try await api.auth.identify(headers: fields)
            switch get("mode") ?? "tail" {
            case "append":
                try identity.requireServer("append to streams")
                var token = try api.lockToken(fields)
                if let text = get("token") {
                    guard let v = WholeNumbers.parse(text) else { throw APIError.badRequest("token must be a whole number (a lock token), not \(Names.quoted(text))") }
                    token = LockToken(v)
                }
                var base: UInt64 = 0
                if let text = get("base_version") {
                    guard let v = WholeNumbers.parse(text) else { throw APIError.badRequest("base_version must be a whole number, not \(Names.quoted(text))") }
                    base = v
                }
                let acksText = get("acks") ?? (query.durable ? "durable" : "none")
                guard let acks = Acks(rawValue: acksText) else { throw APIError.badRequest("acks must be none, committed or durable") }
                return .success(Session(partition: partition, stream: stream, mode: .append(token: token, base: base, retention: query.retention, acks: acks)))
            case "tail":
                try identity.requireServer("read streams")
                var speed: Double?
                switch get("pace") ?? "none" {
                case "none": break
                case "original":
                    speed = 1
                    if let text = get("speed") {
                        guard let v = Double(text), v > 0, v <= Self.speedMax else { throw APIError.badRequest("speed must be a number above 0 and at most \(Int(Self.speedMax))") }
                        speed = v
                    }
                default: throw APIError.badRequest("pace must be none or original")
                }
                let follow = get("follow") ?? "true"
                guard follow == "true" || follow == "false" else { throw APIError.badRequest("follow must be true or false") }
                return .success(Session(partition: partition, stream: stream, mode: .tail(from: query.from, speed: speed, follow: follow == "true")))
            case let other:
                throw APIError.badRequest("mode must be append or tail, not \(Names.quoted(other))")
            }
        } catch {
            return .failure(APIError(error))
        }
    }

    func run(_ socket: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, session: Session, logger: Logger) async {
        do {
            try await socket.executeThenClose { inbound, outbound in
                // Appending sockets are served by `StreamAppendHandler` on their event loop.
                if case .tail(let from, let speed, let follow) = session.mode {
                    try await tail(inbound, outbound, session, from: from, speed: speed, follow: follow)
                }
            }
        } catch {
            logger.debug("stream socket ended", metadata: ["error": "\(error)"])
        }
    }

    static func text(_ object: [String: Any]) -> WebSocketFrame {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: data))
    }

    // MARK: Tail and replay

    private func tail(
        _ inbound: NIOAsyncChannelInboundStream<WebSocketFrame>, _ outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>, _ session: Session,
        from: UInt64, speed: Double?, follow: Bool
    ) async throws {
        let store = api.store
        let limits = store.limits
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The client's side: pings and the close.
                for try await message in inbound {
                    if message.opcode == .ping { try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: message.unmaskedData)) }
                    if message.opcode == .connectionClose { break }
                }
                throw CancellationError()
            }
            group.addTask {
                var cursor = from
                var origin: (time: Int64, at: ContinuousClock.Instant)?
                while !Task.isCancelled {
                    let page = try await store.readFrames(partition: session.partition, stream: session.stream, from: cursor, limit: limits.framesPageMax)
                    if cursor > 0, page.first > cursor {
                        try await outbound.write(Self.text(["gap": ["from": cursor, "first": page.first]]))
                    }
                    if page.frames.isEmpty {
                        cursor = max(cursor, page.next)
                        if !follow { break }
                        if !(try await store.waitForFrames(partition: session.partition, stream: session.stream, after: max(cursor, 1) - 1, timeoutMilliseconds: Self.pingSeconds * 1000)) {
                            try await outbound.write(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "jelly")))
                        }
                        continue
                    }
                    var out: [WebSocketFrame] = []
                    out.reserveCapacity(page.frames.count)
                    for f in page.frames {
                        if let speed {
                            let o = origin ?? (f.timeMilliseconds, ContinuousClock.now)
                            origin = o
                            let due = o.at + .milliseconds(Double(f.timeMilliseconds - o.time) / speed)
                            if due > ContinuousClock.now {
                                if !out.isEmpty { try await outbound.write(contentsOf: out); out.removeAll(keepingCapacity: true) }
                                try await Task.sleep(until: due, clock: .continuous)
                            }
                        }
                        var buffer = ByteBuffer()
                        buffer.reserveCapacity(24 + f.value.count)
                        buffer.writeInteger(f.seq, endianness: .little)
                        buffer.writeInteger(f.timeMilliseconds, endianness: .little)
                        buffer.writeInteger(f.baseVersion, endianness: .little)
                        buffer.writeBytes(f.value)
                        out.append(WebSocketFrame(fin: true, opcode: .binary, data: buffer))
                    }
                    try await outbound.write(contentsOf: out)
                    cursor = page.next
                }
                // The closing handshake: the client closes after it read the close, so it has read
                // every frame before it (closing here could drop writes still queued).
                try await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8])))
                try await Task.sleep(for: .seconds(Self.pingSeconds))
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }
}
