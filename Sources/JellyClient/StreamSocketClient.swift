import Foundation
import JellyCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// A stream over a WebSocket (docs/streams.md, "WebSocket"): an appender that sends frames
/// without waiting (`append`), or a reader that tails or replays a stream (`tail`). Plain
/// `http://` servers only. Sends go straight to the connection's event loop, so thousands of
/// sockets cost no task each.
public final class StreamSocketClient: Sendable {
    /// What the server says on a socket.
    public enum Event: Sendable {
        /// An appender's frames acknowledged so far (with `acks`), and the last one's sequence.
        case acked(count: Int, seq: UInt64)
        /// Frames refused (with the running totals) and why.
        case refused(code: JellyError.Code, message: String, refused: Int, acked: Int)
        /// A tailed frame.
        case frame(Frame)
        /// Frames between `from` and `first` were dropped before they were read.
        case gap(from: UInt64, first: UInt64)
        /// Anything else the server reported.
        case error(code: JellyError.Code, message: String)
    }

    public enum Acks: String, Sendable { case none, committed, durable }

    /// The server's messages as they arrive; ends when the socket closes.
    public let events: AsyncStream<Event>
    let channel: any Channel
    /// Masking keys (RFC 6455 §5.3) from a SplitMix sequence seeded with system randomness: a
    /// system random call per frame cost a syscall each for a sender of thousands of frames/s.
    private let maskState = Atomic<UInt64>(UInt64.random(in: 0...UInt64.max))

    private func maskKey() -> WebSocketMaskingKey {
        var z = maskState.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return WebSocketMaskingKey([UInt8(truncatingIfNeeded: z), UInt8(truncatingIfNeeded: z >> 8), UInt8(truncatingIfNeeded: z >> 16), UInt8(truncatingIfNeeded: z >> 24)]) ?? .random()
    }

    /// The connection's event loop: sends made on it go out without a hop (a load generator
    /// driving thousands of sockets sends on their loops).
    public var eventLoop: any EventLoop { channel.eventLoop }

    init(events: AsyncStream<Event>, channel: any Channel) {
        self.events = events
        self.channel = channel
    }

    /// Opens an appender: frames sent with `send` are appended in order, with `token` (the
    /// partition's lock) and `baseVersion` until changed.
    public static func append(
        url: String, bearerToken: String?, partition: String, stream: String, token: LockToken?, baseVersion: UInt64 = 0,
        acks: Acks = .none, retention: StreamRetention? = nil
    ) async throws -> StreamSocketClient {
        var path = try Self.path(partition, stream) + "?mode=append&acks=\(acks.rawValue)"
        if let token { path += "&token=\(token.rawValue)" }
        if baseVersion != 0 { path += "&base_version=\(baseVersion)" }
        if let r = retention { path += "&retain_frames=\(r.frames)&retain_bytes=\(r.bytes)&retain_ms=\(r.ageMilliseconds)" }
        return try await connect(url: url, bearerToken: bearerToken, path: path)
    }

    /// Opens a reader from `from`: as fast as it reads, or paced at the frames' original
    /// spacing divided by `speed`; then new frames as they come, unless `follow` is false.
    public static func tail(url: String, bearerToken: String?, partition: String, stream: String, from: UInt64, speed: Double? = nil, follow: Bool = true) async throws -> StreamSocketClient {
        var path = try Self.path(partition, stream) + "?mode=tail&from=\(from)&follow=\(follow)"
        if let speed { path += "&pace=original&speed=\(speed)" }
        return try await connect(url: url, bearerToken: bearerToken, path: path)
    }

    static func path(_ partition: String, _ stream: String) throws -> String {
        try StreamRules.validateNames(partition: partition, stream: stream, limits: .default)
        return "/v1/partitions/\(PercentEncoding.escape(partition))/streams/\(PercentEncoding.escape(stream))"
    }

    /// Sends one frame; the future completes when it is written to the connection.
    @discardableResult
    public func send(_ value: [UInt8]) -> EventLoopFuture<Void> {
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, maskKey: maskKey(), data: ByteBuffer(bytes: value)))
    }

    /// Sends several frames with one flush (several entities' frames of one tick, say); with
    /// `thenClose`, the close follows in the same write. The future completes when all are written.
    @discardableResult
    public func send(_ values: [[UInt8]], thenClose: Bool = false) -> EventLoopFuture<Void> {
        var list = values.map { WebSocketFrame(fin: true, opcode: .binary, maskKey: maskKey(), data: ByteBuffer(bytes: $0)) }
        if thenClose { list.append(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: maskKey(), data: ByteBuffer(bytes: [0x03, 0xE8]))) }
        let frames = list
        let channel = self.channel
        return channel.eventLoop.flatSubmit {
            let futures = frames.map { channel.write($0) }
            channel.flush()
            return EventLoopFuture.andAllSucceed(futures, on: channel.eventLoop)
        }
    }

    /// Sends one frame and waits until the connection took it (backpressure for a fast sender).
    public func sendAndWait(_ value: [UInt8]) async throws {
        try await send(value).get()
    }

    /// The base version of the frames sent after this.
    public func setBaseVersion(_ version: UInt64) { control(["base_version": version]) }

    /// The lock token of the frames sent after this.
    public func setToken(_ token: LockToken) { control(["token": token.rawValue]) }

    private func control(_ body: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: data)), promise: nil)
    }

    /// Closes the socket: the server appends every frame it received first, then closes.
    public func close() async {
        try? await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer(bytes: [0x03, 0xE8]))).get()
        try? await channel.closeFuture.get()
    }

    /// Drops the connection without a close (what a crashed game server does).
    public func abort() {
        channel.close(promise: nil)
    }

    static func connect(url: String, bearerToken: String?, path: String) async throws -> StreamSocketClient {
        let (events, deliver) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(1_000_000))
        let channel = try await WebSocketConnect.open(url: url, bearerToken: bearerToken, path: path, what: "stream socket") { channel -> any Channel in
            try channel.pipeline.syncOperations.addHandler(StreamClientHandler(deliver: deliver))
            return channel
        }
        return StreamSocketClient(events: events, channel: channel)
    }
}

/// Turns a stream socket's messages into events.
final class StreamClientHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let deliver: AsyncStream<StreamSocketClient.Event>.Continuation

    init(deliver: AsyncStream<StreamSocketClient.Event>.Continuation) { self.deliver = deliver }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            var b = frame.unmaskedData
            guard let seq = b.readInteger(endianness: .little, as: UInt64.self), let time = b.readInteger(endianness: .little, as: Int64.self),
                  let base = b.readInteger(endianness: .little, as: UInt64.self) else {
                deliver.yield(.error(code: .io, message: "a frame message shorter than its 24-byte header"))
                return
            }
            deliver.yield(.frame(Frame(seq: seq, timeMilliseconds: time, baseVersion: base, value: Array(b.readableBytesView))))
        case .text:
            let object = (try? JSONSerialization.jsonObject(with: Data(frame.unmaskedData.readableBytesView))) as? [String: Any] ?? [:]
            if let error = object["error"] as? String {
                let code = Reply.code(forAPIError: error)
                let message = object["message"] as? String ?? error
                if let refused = object["refused"] as? Int {
                    deliver.yield(.refused(code: code, message: message, refused: refused, acked: object["acked"] as? Int ?? 0))
                } else {
                    deliver.yield(.error(code: code, message: message))
                }
            } else if let acked = object["acked"] as? Int, let seq = (object["seq"] as? NSNumber)?.uint64Value {
                deliver.yield(.acked(count: acked, seq: seq))
            } else if let gap = object["gap"] as? [String: Any], let from = (gap["from"] as? NSNumber)?.uint64Value, let first = (gap["first"] as? NSNumber)?.uint64Value {
                deliver.yield(.gap(from: from, first: first))
            }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            // The closing handshake (RFC 6455 §5.5.1): answer with a close, then close.
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer(bytes: [0x03, 0xE8]))
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(close)).whenComplete { _ in bound.value.close(promise: nil) }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deliver.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Opens a WebSocket to a Jelly server (feed and stream sockets share it).
enum WebSocketConnect {
    private enum Upgrade<T: Sendable>: Sendable {
        case websocket(T)
        case refused
    }

    /// Connects, upgrades, and lets `configure` add the handlers of the open socket (on its
    /// event loop, before any message is read) and make what it returns.
    static func open<T: Sendable>(
        url: String, bearerToken: String?, path: String, what: String, configure: @escaping @Sendable (any Channel) throws -> T
    ) async throws -> T {
        guard url.hasPrefix("http://"), let parsed = URL(string: url), let host = parsed.host else {
            throw JellyError(.invalidArgument, "a \(what) needs an http:// URL, like http://127.0.0.1:7420 (got \(url))")
        }
        let port = parsed.port ?? 80
        let upgrade: EventLoopFuture<Upgrade<T>>
        do {
            upgrade = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade<T>>(maxFrameSize: 64 << 20) { channel, _ in
                            channel.eventLoop.makeCompletedFuture { .websocket(try configure(channel)) }
                        }
                        var headers = HTTPHeaders()
                        headers.add(name: "Host", value: "\(host):\(port)")
                        if let bearerToken { headers.add(name: "Authorization", value: "Bearer \(bearerToken)") }
                        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                        let configuration = NIOTypedHTTPClientUpgradeConfiguration<Upgrade<T>>(
                            upgradeRequestHead: head, upgraders: [upgrader],
                            notUpgradingCompletionHandler: { channel in channel.eventLoop.makeCompletedFuture { .refused } }
                        )
                        var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                        // The server's first message may come in the same read as its 101: the
                        // default drops whatever follows the response.
                        pipeline.leftOverBytesStrategy = .forwardBytes
                        return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
                    }
                }
        } catch {
            throw JellyError(.unavailable, "cannot reach Jelly at \(url): \(error)")
        }
        guard case .websocket(let value) = try await upgrade.get() else {
            throw JellyError(.invalidArgument, "the server refused the \(what) at \(path): check the credentials and the names (a plain GET of the same path says why)")
        }
        return value
    }
}
