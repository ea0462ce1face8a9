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
/// - HTTP/1.0 without `Connection: keep-alive`, and any request whose `Connection` says close,
///   goes on with `Connection: close` exactly: both the router's loop and the direct PUT path
///   close the connection after answering such a request.
/// - An HTTP/1.1 request without `Host` is answered 400 (RFC 9112 §3.2) and the connection closed.
/// - `Upgrade` is honoured only for a WebSocket on a feed path (`upgradable`); on any other
///   request (an `h2c` attempt, say) it is removed, so the request is served as HTTP/1.1 (RFC
///   9110 §7.8 lets a server ignore it) instead of being taken by the upgrade handler.
///
/// Inbound only: answers pass by without touching it.
final class HTTP1ProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The largest body any route reads: a longer declared length gets no `100 Continue`.
    private let bodyBytesMax: Int
    private let serverName: String
    /// Dropping the rest of a request refused here.
    private var refusing = false

    /// Which request targets may upgrade to a WebSocket.
    private let upgradable: @Sendable (String) -> Bool

    init(bodyBytesMax: Int, serverName: String, upgradable: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.bodyBytesMax = bodyBytesMax
        self.serverName = serverName
        self.upgradable = upgradable
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.version.major == 1 && head.version.minor >= 1 && !head.headers.contains(name: "host") {
                return refuse(context: context, status: .badRequest, code: "bad_request", message: "an HTTP/1.1 request needs a Host header")
            }
            var changed: HTTPRequestHead?
            if head.headers.contains(name: "upgrade") && !(head.method == .GET && head.headers.first(name: "upgrade")?.lowercased() == "websocket" && upgradable(head.uri)) {
                changed = head
                changed?.headers.remove(name: "upgrade")
            }
            if closes(head) && head.headers.first(name: "connection") != "close" {
                if changed == nil { changed = head }
                changed?.headers.replaceOrAdd(name: "connection", value: "close")
            }
            if let expect = head.headers.first(name: "expect") {
                guard expect.lowercased() == "100-continue" else {
                    return refuse(context: context, status: .expectationFailed, code: "bad_request", message: "the only expectation this server meets is Expect: 100-continue, not \(expect)")
                }
                if changed == nil { changed = head }
                changed?.headers.remove(name: "expect")
                let declared = head.headers.first(name: "content-length").flatMap { Int($0) }
                if declared.map({ $0 <= bodyBytesMax }) ?? true {
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                }
            }
            // Unchanged (the common case), the head goes on as it came: no new box.
            if let changed { context.fireChannelRead(wrapInboundOut(.head(changed))) } else { context.fireChannelRead(data) }
        case .body:
            if !refusing { context.fireChannelRead(data) }
        case .end:
            if refusing { refusing = false } else { context.fireChannelRead(data) }
        }
    }

    /// Whether the connection closes after this request's answer: HTTP/1.0 unless it asks for
    /// keep-alive, any version whose `Connection` names close.
    private func closes(_ head: HTTPRequestHead) -> Bool {
        let isHTTP10 = head.version.major == 1 && head.version.minor == 0
        guard head.headers.contains(name: "connection") else { return isHTTP10 }
        let tokens = head.headers[canonicalForm: "connection"].map { $0.lowercased() }
        if tokens.contains("close") { return true }
        return isHTTP10 && !tokens.contains("keep-alive")
    }

    /// Answers a request this handler refuses itself, as a JSON error, and closes the connection
    /// after it (the rest of the request is not read).
    private func refuse(context: ChannelHandlerContext, status: HTTPResponseStatus, code: String, message: String) {
        refusing = true
        // The server's one JSON escaper: the message may quote a header the client sent.
        var body = JSONText(capacity: 64 + message.utf8.count)
        body.raw("{\"error\":")
        body.string(code)
        body.raw(",\"message\":")
        body.string(message)
        body.raw("}")
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.buffer.readableBytes))
        headers.add(name: "connection", value: "close")
        headers.add(name: "server", value: serverName)
        headers.add(name: "date", value: HTTPDate.format(time(nil)))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body.buffer))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
