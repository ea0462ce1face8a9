import Foundation
import JellyCore
import NIOCore
import NIOWebSocket
import Synchronization

/// An appending stream socket (`?mode=append`, docs/streams.md), served on its event loop
/// without a task: frames read in one go become one batch (grouped by lock token) and go to the
/// store at the end of the read. A store that keeps the order of overlapping appends (the
/// embedded one) gets each batch at once; any other gets one batch at a time, and what arrives
/// meanwhile is the next. A successful append nobody needs to hear of (no acks) settles its
/// counts on the store's thread without a hop to the loop. While more than
/// `StreamSocket.queueBytesMax` bytes are received and not committed, the handler holds the
/// channel's reads (the `read` it intercepts), so TCP pushes back on the sender. Frames received
/// before the socket ended are appended all the same.
final class StreamAppendHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// What the store's completions and the loop share.
    final class Counts: Sendable {
        /// Bytes received and not yet committed (waiting or in flight): what backpressure counts.
        let bytes = Atomic<Int>(0)
        let inFlight = Atomic<Int>(0)
        let acked = Atomic<Int>(0)
        /// Set while reads are held, or once the socket ended: a completion then hops to the loop.
        let readsHeld = Atomic<Bool>(false)
        let ended = Atomic<Bool>(false)
    }

    private let store: any JellyStore
    private let session: StreamSocket.Session
    private var token: LockToken?
    private var base: UInt64
    private var retention: StreamRetention?
    private let acks: StreamSocket.Acks
    private let frameBytesMax: Int
    private let batchFramesMax: Int
    private let overlap: Bool

    /// Batches not yet handed to the store, oldest first, each with one token.
    private var waiting: [(token: LockToken?, frames: [FrameInput])] = []
    private let counts = Counts()
    private var readHeld = false
    private var ended = false
    private var closeSent = false
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
        overlap = store.appendsKeepCallOrder
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
            counts.bytes.add(frame.value.count, ordering: .relaxed)
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
            end()
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        submit()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeSent = true
        end()
        context.fireChannelInactive()
    }

    /// The peer closed its side (the server allows half-closure, so NIO reports it instead of
    /// closing), or the server is shutting down: append what was received, then close.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            end()
        } else if event is ChannelShouldQuiesceEvent {
            end()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Holds reads while too much waits for the store.
    func read(context: ChannelHandlerContext) {
        guard counts.bytes.load(ordering: .relaxed) > StreamSocket.queueBytesMax else { return context.read() }
        readHeld = true
        counts.readsHeld.store(true, ordering: .relaxed)
        // A completion may have brought the count down in between.
        if counts.bytes.load(ordering: .relaxed) <= StreamSocket.queueBytesMax / 2 { resumeReads() }
    }

    private func resumeReads() {
        guard readHeld, let context else { return }
        readHeld = false
        counts.readsHeld.store(false, ordering: .relaxed)
        context.read()
    }

    private func end() {
        ended = true
        counts.ended.store(true, ordering: .relaxed)
        submit()
    }

    private func submit() {
        while !waiting.isEmpty && (overlap || counts.inFlight.load(ordering: .relaxed) == 0) {
            let (batchToken, frames) = waiting.removeFirst()
            let bytes = frames.reduce(0) { $0 + $1.value.count }
            counts.inFlight.add(1, ordering: .relaxed)
            let retain = retention
            retention = nil
            guard let loop = context?.eventLoop else { return }
            let bound = NIOLoopBound(self, eventLoop: loop)
            let counts = self.counts
            let (quiet, overlap) = (acks == .none, self.overlap)
            store.appendFrames(partition: session.partition, stream: session.stream, frames, lockToken: batchToken, retention: retain, durable: acks == .durable) { result in
                guard quiet, case .success = result else {
                    return loop.execute { bound.value.completed(result, frames: frames.count, bytes: bytes) }
                }
                counts.acked.add(frames.count, ordering: .relaxed)
                let left = counts.bytes.subtract(bytes, ordering: .relaxed).newValue
                let flying = counts.inFlight.subtract(1, ordering: .relaxed).newValue
                let resume = counts.readsHeld.load(ordering: .relaxed) && left <= StreamSocket.queueBytesMax / 2
                if !overlap || resume || (flying == 0 && counts.ended.load(ordering: .relaxed)) {
                    loop.execute { bound.value.settle() }
                }
            }
        }
        if ended && waiting.isEmpty && counts.inFlight.load(ordering: .relaxed) == 0 { finish() }
    }

    private func completed(_ result: Result<[UInt64], any Error>, frames: Int, bytes: Int) {
        counts.bytes.subtract(bytes, ordering: .relaxed)
        counts.inFlight.subtract(1, ordering: .relaxed)
        switch result {
        case .success(let seqs):
            let acked = counts.acked.add(frames, ordering: .relaxed).newValue
            if acks != .none, let last = seqs.last { send(["acked": acked, "seq": last]) }
        case .failure(let error):
            refused += frames
            let e = APIError(error)
            var body: [String: Any] = ["error": e.code, "message": e.message, "refused": refused, "acked": counts.acked.load(ordering: .relaxed)]
            if let holder = (error as? JellyError)?.holder { body["holder"] = ["owner": holder.owner, "expires_at_ms": holder.expiresAtMilliseconds] }
            send(body)
        }
        settle()
    }

    /// After a completion: resume reads when the count is low, hand on the next batch, finish.
    private func settle() {
        if counts.bytes.load(ordering: .relaxed) <= StreamSocket.queueBytesMax / 2 { resumeReads() }
        submit()
    }

    private func finish() {
        guard !closeSent, let context else { return }
        closeSent = true
        // Closed once the close (and every message before it) is written.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8])))).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }

    private func send(_ object: [String: Any]) {
        guard !closeSent, let context else { return }
        context.writeAndFlush(wrapOutboundOut(StreamSocket.text(object)), promise: nil)
    }
}
