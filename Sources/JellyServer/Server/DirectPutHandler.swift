import Dispatch
import HTTPTypes
import Hummingbird
import HummingbirdCore
import JellyCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers the request a game server sends most — `PUT /v1/partitions/{p}/objects/{key}` with an
/// API key (or without auth) — on the connection's event loop, without a Swift task: the body
/// is gathered here, the store's callback `write` queues the commit, and the committer's
/// completion hops back to this event loop to write the answer. Everything else, and any PUT
/// this handler does not take (a client token, no `Content-Length`, an expectation it does not
/// meet, a query, an odd path), passes through to Hummingbird's router unchanged.
///
/// Why: on this 2-core machine, handing each PUT to a Swift task and back (NIOAsyncChannel,
/// the task's wake-ups, the response writer) cost about as much CPU as the rest of the
/// request; see docs/benchmarks.md. The answer is the same either way: both paths parse with
/// `API.parsePut`, write with one `WriteOperation` and answer with `API.putAnswer` or the
/// request's `APIError`, and the end-to-end tests run against this path.
///
/// Order on a connection: a direct PUT is taken only while Hummingbird has no unanswered
/// request on it, and while its commit is pending no further request is read (parts already
/// read are held and replayed after the answer), so answers keep the requests' order.
final class DirectPutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What every connection's handler shares.
    struct Shared: Sendable {
        let api: API
        let recorder: RequestRecorder
        let serverName: String
    }

    private struct DirectPut {
        let head: HTTPRequest
        let rawPartition: Substring
        let rawKey: Substring
        let start: UInt64
    }

    private enum State {
        case idle
        /// Passing a request's parts to Hummingbird.
        case forwarding
        /// Gathering a direct PUT's body.
        case reading(DirectPut)
        /// A direct PUT waits for its commit; nothing more is read.
        case committing
    }

    private let shared: Shared
    private var state = State.idle
    /// The direct PUT's body, gathered straight into the array the store takes.
    private var value: [UInt8] = []
    /// Requests passed to Hummingbird whose answers have not been written yet.
    private var unanswered = 0
    /// Parts read while a direct PUT was committing, replayed after its answer.
    private var held = CircularBuffer<HTTPRequestPart>()
    /// A read the channel asked for while a direct PUT was committing.
    private var readWanted = false
    /// The `Date` header, formatted once per second.
    private var date = HTTPDate()

    private var isCommitting: Bool {
        if case .committing = state { return true }
        return false
    }

    init(_ shared: Shared) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if isCommitting {
            held.append(part)
        } else {
            process(part, context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if isCommitting {
            readWanted = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), unanswered > 0 { unanswered -= 1 }
        context.write(data, promise: promise)
    }

    private func process(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            if unanswered == 0, let put = direct(head) {
                state = .reading(put)
            } else {
                unanswered += 1
                state = .forwarding
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.reading, .body(let bytes)):
            value.append(contentsOf: bytes.readableBytesView)
        case (.reading(let put), .end):
            state = .committing
            commit(put, context: context)
        case (.forwarding, .end):
            state = .idle
            context.fireChannelRead(wrapInboundOut(part))
        default:
            // Hummingbird's reader reports anything out of order.
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    /// The PUT this handler answers itself (with `value` readied for its body), or nil to pass
    /// the request on.
    private func direct(_ head: HTTPRequest) -> DirectPut? {
        guard head.method == .put, let path = head.path, let (rawPartition, rawKey) = Route.putObject.pattern.matchTwo(path) else { return nil }
        let fields = head.headerFields
        guard fields[.expect] == nil, let text = fields[.contentLength], let length = Int(text), length >= 0,
              length <= shared.api.valueBytesMax,
              let identity = shared.api.auth.identifyServer(fields), identity.isServer
        else { return nil }
        value = []
        value.reserveCapacity(length)
        return DirectPut(head: head, rawPartition: rawPartition, rawKey: rawKey, start: DispatchTime.now().uptimeNanoseconds)
    }

    private func commit(_ put: DirectPut, context: ChannelHandlerContext) {
        let api = shared.api
        let value = self.value
        self.value = []
        let parsed: API.PutObject
        do {
            parsed = try api.parsePut(put.head.headerFields, rawPartition: String(put.rawPartition), rawKey: String(put.rawKey))
        } catch {
            return answer(APIError(error).answer, to: put, context: context)
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        api.store.write(partition: parsed.partition, [parsed.operation(value)], lockToken: parsed.token, releaseLock: false) { result in
            // The answer is built on the event loop: the committer's thread is everyone's.
            if loop.inEventLoop {
                bound.value.0.answer(result, to: put, context: bound.value.1)
            } else {
                loop.execute { bound.value.0.answer(result, to: put, context: bound.value.1) }
            }
        }
    }

    private func answer(_ result: Result<WriteResult, any Error>, to put: DirectPut, context: ChannelHandlerContext) {
        let answer: Answer
        do {
            answer = try API.putAnswer(result.get())
        } catch {
            answer = APIError(error).answer
        }
        self.answer(answer, to: put, context: context)
    }

    private func answer(_ answer: Answer, to put: DirectPut, context: ChannelHandlerContext) {
        var head = HTTPResponse(status: answer.status, headerFields: answer.headers)
        head.headerFields[.contentLength] = String(answer.body.readableBytes)
        head.headerFields[.server] = shared.serverName
        head.headerFields[.date] = date.now()
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if answer.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(answer.body)), promise: nil) }
        let closing = put.head.headerFields[.connection]?.lowercased() == "close"
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if closing { context.close(promise: nil) }
        shared.recorder.record(method: .put, path: put.head.path ?? "", status: answer.status.code, start: put.start)
        state = .idle
        if closing { return }
        if !held.isEmpty {
            while !isCommitting, let part = held.popFirst() {
                process(part, context: context)
            }
            // Hummingbird's reader takes what was passed on at the end of a read.
            context.fireChannelReadComplete()
        }
        if readWanted, !isCommitting {
            readWanted = false
            context.read()
        }
    }
}

