import Foundation
import JellyCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A change feed over a WebSocket (docs/sync.md, "WebSocket"): one partition
/// (`/v1/partitions/{p}/changes`) or many (`/v1/watch`, API keys). Each message is a batch of
/// one partition's changes as the server commits them; `subscribe` (re)starts a partition from a
/// cursor. Plain `http://` servers only: over TLS use the long-poll (`JellyClient.changes` with
/// a wait).
public final class FeedSocketClient: Sendable {
    /// One message: a partition's batch, or an error the server reported for it.
    public enum Message: Sendable {
        case changes(partition: String, ChangeBatch)
        case error(partition: String?, code: JellyError.Code, message: String)
    }

    /// The messages as they arrive; ends when the socket closes.
    public let messages: AsyncStream<Message>
    private let outbound: AsyncStream<WebSocketFrame>.Continuation
    private let task: Task<Void, Never>

    private init(messages: AsyncStream<Message>, outbound: AsyncStream<WebSocketFrame>.Continuation, task: Task<Void, Never>) {
        self.messages = messages
        self.outbound = outbound
        self.task = task
    }

    /// Watches one partition from `since` (0: the whole state first).
    public static func watch(url: String, bearerToken: String?, partition: String, since: UInt64 = 0, epoch: String? = nil) async throws -> FeedSocketClient {
        try Names.validate(partition, as: .partition, maxBytes: JellyLimits.default.partitionBytesMax)
        var path = "/v1/partitions/\(PercentEncoding.escape(partition))/changes?since=\(since)"
        if let epoch { path += "&epoch=\(PercentEncoding.escape(epoch))" }
        return try await connect(url: url, bearerToken: bearerToken, path: path)
    }

    /// A socket for many partitions (`/v1/watch`, API keys only): `subscribe` each.
    public static func watchMany(url: String, bearerToken: String?) async throws -> FeedSocketClient {
        try await connect(url: url, bearerToken: bearerToken, path: "/v1/watch")
    }

    /// (Re)starts watching `partition` from `since`.
    public func subscribe(_ partition: String, since: UInt64, epoch: String? = nil) {
        var body: [String: Any] = ["partition": partition, "since": since]
        if let epoch { body["epoch"] = epoch }
        send(body)
    }

    /// Stops watching `partition`.
    public func unwatch(_ partition: String) {
        send(["partition": partition, "unwatch": true])
    }

    private func send(_ body: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
        outbound.yield(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: data)))
    }

    /// Closes the socket.
    public func close() async {
        outbound.yield(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer()))
        outbound.finish()
        task.cancel()
        await task.value
    }

    static func connect(url: String, bearerToken: String?, path: String) async throws -> FeedSocketClient {
        let socket = try await WebSocketConnect.open(url: url, bearerToken: bearerToken, path: path, what: "feed socket") { channel in
            try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel)
        }
        let (messages, deliver) = AsyncStream.makeStream(of: Message.self, bufferingPolicy: .bufferingNewest(1_000_000))
        let (frames, outbound) = AsyncStream.makeStream(of: WebSocketFrame.self)
        let task = Task {
            try? await socket.executeThenClose { inbound, writer in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await frame in frames {
                            do { try await writer.write(frame) } catch { return }
                        }
                    }
                    do {
                        for try await frame in inbound {
                            switch frame.opcode {
                            case .text:
                                if let message = decode(frame.unmaskedData) { deliver.yield(message) }
                            case .ping:
                                outbound.yield(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData))
                            case .connectionClose:
                                throw CancellationError()
                            default:
                                break
                            }
                        }
                    } catch {}
                    outbound.finish()
                    group.cancelAll()
                }
            }
            deliver.finish()
        }
        return FeedSocketClient(messages: messages, outbound: outbound, task: task)
    }

    static func decode(_ buffer: ByteBuffer) -> Message? {
        let data = Data(buffer.readableBytesView)
        if let body = try? JSONDecoder().decode(ChangesBody.self, from: data), let partition = body.partition, let batch = try? body.batch(partition: partition) {
            return .changes(partition: partition, batch)
        }
        struct Failure: Decodable { var error: String; var message: String; var partition: String? }
        guard let failure = try? JSONDecoder().decode(Failure.self, from: data) else { return nil }
        return .error(partition: failure.partition, code: Reply.code(forAPIError: failure.error), message: failure.message)
    }
}
