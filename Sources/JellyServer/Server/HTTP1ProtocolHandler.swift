#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

/// HTTP/1 rules that Hummingbird's HTTP/1.1 channel leaves to the application, applied on the
/// raw NIO request head (before it becomes an `HTTPRequest`, which has no version):
///
/// - `Expect: 100-continue` gets its `100 Continue` at once, so clients that wait for it (curl
///   for every body over 1 MiB) do not stall; not when the declared length is over the largest
///   body any route takes (that request is answered 413 without reading the body). Any other
///   expectation is answered 417. The handled `Expect` is removed from the request.
/// - HTTP/1.0 without `Connection: keep-alive`, and any request with `Connection: close`, is
///   answered with `Connection: close` and the connection closed after the answer.
/// - An HTTP/1.1 request without `Host` is answered 400 (RFC 9112 §3.2) and the connection closed.
///
/// Answers leave in request order, so the close decisions are kept in a queue, one per request.
final class HTTP1ProtocolHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The largest body any route reads: a longer declared length gets no `100 Continue`.
    private let bodyBytesMax: Int
    private let serverName: String
    /// What to do with the connection after an answer.
    private enum Persistence { case keep, keepHTTP10, close }
    /// Per request read and not yet answered, in order.
    private var persistence = CircularBuffer<Persistence>()
    /// Dropping the rest of a request refused here.
    private var refusing = false

    init(bodyBytesMax: Int, serverName: String) {
        self.bodyBytesMax = bodyBytesMax
        self.serverName = serverName
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !refusing, case .body = unwrapInboundIn(data) {
            return context.fireChannelRead(data) // the common case first: nothing to look at
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.version.major == 1 && head.version.minor >= 1 && !head.headers.contains(name: "host") {
                return refuse(context: context, status: .badRequest, code: "bad_request", message: "an HTTP/1.1 request needs a Host header")
            }
            // Most requests (HTTP/1.1, no Connection header) need no look at the tokens.
            let isHTTP10 = head.version.major == 1 && head.version.minor == 0
            var after: Persistence = isHTTP10 ? .close : .keep
            if head.headers.contains(name: "connection") {
                let tokens = head.headers[canonicalForm: "connection"].map { $0.lowercased() }
                if tokens.contains("close") {
                    after = .close
                } else if isHTTP10 && tokens.contains("keep-alive") {
                    after = .keepHTTP10
                }
            }
            persistence.append(after)
            guard let expect = head.headers.first(name: "expect") else {
                return context.fireChannelRead(data) // unchanged: no new box for the head
            }
            guard expect.lowercased() == "100-continue" else {
                persistence.removeLast()
                return refuse(context: context, status: .expectationFailed, code: "bad_request", message: "the only expectation this server meets is Expect: 100-continue, not \(expect)")
            }
            var met = head
            met.headers.remove(name: "expect")
            let declared = head.headers.first(name: "content-length").flatMap { Int($0) }
            if declared.map({ $0 <= bodyBytesMax }) ?? true {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            context.fireChannelRead(wrapInboundOut(.head(met)))
        case .body, .end:
            if refusing {
                if case .end = unwrapInboundIn(data) { refusing = false }
                return
            }
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200 && persistence.first != .keep:
            switch persistence.first {
            case .close: head.headers.replaceOrAdd(name: "connection", value: "close")
            // An HTTP/1.0 client assumes a close unless told otherwise.
            case .keepHTTP10: head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
            case .keep, nil: break
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            if persistence.popFirst() == .close {
                context.writeAndFlush(data).whenComplete { _ in context.close(promise: nil) }
                promise?.succeed(())
            } else {
                context.write(data, promise: promise)
            }
        default:
            context.write(data, promise: promise)
        }
    }

    /// Answers a request this handler refuses itself, as a JSON error, and closes the connection
    /// after it (the rest of the request is not read).
    private func refuse(context: ChannelHandlerContext, status: HTTPResponseStatus, code: String, message: String) {
        refusing = true
        let body = #"{"error":"\#(code)","message":"\#(message.replacingOccurrences(of: "\"", with: "'"))"}"#
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "connection", value: "close")
        headers.add(name: "server", value: serverName)
        headers.add(name: "date", value: HTTPDate.format(time(nil)))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
