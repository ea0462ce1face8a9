import Foundation
import JellyCore
import NIOCore
import NIOWebSocket

/// An appending stream socket (`?mode=append`, docs/streams.md), served on its event loop
/// without a task: frames read in one go become one batch; one batch is in flight at a time
/// and what arrives meanwhile is the next (grouped by lock token); a completion comes back to
/// the loop, answers (refusals, acks) and sends the next batch. While more than
/// `StreamSocket.queueBytesMax` bytes wait, the handler holds the channel's reads (the
/// `read` it intercepts), so TCP pushes back on the sender. Frames received before the socket
/// ended are appended all the same.
final class StreamAppendHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let store: any JellyStore
    private let session: StreamSocket.Session
    private var token: LockToken?
    private var base: UInt64
    private var retention: StreamRetention?
    private let acks: StreamSocket.Acks
    private let frameBytesMax: Int
    private let batchFramesMax: Int

    /// Waiting batches, oldest first, each with one token.
    private var waiting: [(token: LockToken?, frames: [FrameInput])] = []
    private var waitingBytes = 0
    private var inFlight = false
    private var readHeld = false
    private var ended = false
    private var closeSent = false
    private var acked = 0
    private var refused = 0
    private var context: ChannelHandlerContext?

    init(store: any JellyStore, session: StreamSocket.Session, token: LockToken?, base: UInt64, retention: StreamRetention?, acks: StreamSocket.Acks) {
        self.store = store
        self.session = session
        self.token = token
        self.base = base
        self.retention = retention
        self.acks = acks
        frameBytesMax = store.limits.frameBytesMax
        batchFramesMax = store.limits.framesPerAppendMax
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch message.opcode {
        case .binary:
            guard !ended else { return } // after a close or a shutdown: nothing new is taken
            let data = message.unmaskedData
            guard data.readableBytes <= frameBytesMax else {
                send(["error": "too_large", "message": "a frame of \(data.readableBytes) bytes is over the limit of \(frameBytesMax) bytes; it was dropped"])
                return
            }
            let frame = FrameInput(Array(data.readableBytesView), baseVersion: base)
            if let last = waiting.indices.last, waiting[last].token == token, waiting[last].frames.count < batchFramesMax {
                waiting[last].frames.append(frame)
            } else {
                waiting.append((token, [frame]))
            }
            waitingBytes += frame.value.count
        case .text:
            struct Control: Decodable { var base_version: UInt64?; var token: UInt64? }
            guard let c = try? JSONDecoder().decode(Control.self, from: Data(message.unmaskedData.readableBytesView)), c.base_version != nil || c.token != nil else {
                send(["error": "bad_request", "message": "a text message is {\"base_version\": V} or {\"token\": T}; frames are binary messages"])
                return
            }
            if let v = c.base_version { base = v }
            if let t = c.token { token = LockToken(t) }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: message.unmaskedData)), promise: nil)
        case .connectionClose:
            ended = true
            submit()
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        submit()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended = true
        closeSent = true
        submit()
        context.fireChannelInactive()
    }

    /// The peer closed its side (the server allows half-closure, so NIO reports it instead of
    /// closing), or the server is shutting down: append what was received, then close.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            ended = true
            submit()
        } else if event is ChannelShouldQuiesceEvent {
            ended = true
            submit()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Holds reads while too much waits for the store.
    func read(context: ChannelHandlerContext) {
        if waitingBytes > StreamSocket.queueBytesMax {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func submit() {
        guard !inFlight else { return }
        guard !waiting.isEmpty else {
            if ended { finish() }
            return
        }
        let (batchToken, frames) = waiting.removeFirst()
        let bytes = frames.reduce(0) { $0 + $1.value.count }
        inFlight = true
        let retain = retention
        retention = nil
        guard let loop = context?.eventLoop else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        store.appendFrames(partition: session.partition, stream: session.stream, frames, lockToken: batchToken, retention: retain, durable: acks == .durable) { result in
            loop.execute { bound.value.completed(result, frames: frames.count, bytes: bytes) }
        }
    }

    private func completed(_ result: Result<[UInt64], any Error>, frames: Int, bytes: Int) {
        inFlight = false
        waitingBytes -= bytes
        switch result {
        case .success(let seqs):
            acked += frames
            if acks != .none, let last = seqs.last { send(["acked": acked, "seq": last]) }
        case .failure(let error):
            refused += frames
            let e = APIError(error)
            var body: [String: Any] = ["error": e.code, "message": e.message, "refused": refused, "acked": acked]
            if let holder = (error as? JellyError)?.holder { body["holder"] = ["owner": holder.owner, "expires_at_ms": holder.expiresAtMilliseconds] }
            send(body)
        }
        if readHeld && waitingBytes <= StreamSocket.queueBytesMax / 2, let context {
            readHeld = false
            context.read()
        }
        submit()
    }

    private func finish() {
        guard !closeSent, let context else { return }
        closeSent = true
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8]))), promise: nil)
        context.close(promise: nil)
    }

    private func send(_ object: [String: Any]) {
        guard !closeSent, let context else { return }
        context.writeAndFlush(wrapOutboundOut(StreamSocket.text(object)), promise: nil)
    }
}
