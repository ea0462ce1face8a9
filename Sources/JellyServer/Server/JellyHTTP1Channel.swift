import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import ServiceLifecycle

/// The HTTP/1.1 child channel of `jelly serve`: Hummingbird's HTTP/1 pipeline with Jelly's
/// handlers, and a WebSocket upgrade for the change feed (`FeedSocket`).
///
/// A connection's first request decides: a WebSocket upgrade of a feed path that `FeedSocket`
/// accepts becomes a feed socket; anything else (an upgrade it refuses included, which the
/// router then answers like a plain GET, with its error) continues as HTTP, with the
/// `DirectPutHandler` after Hummingbird's connection-state handler (so idle timeouts and
/// graceful shutdown count the direct requests) and `HTTP1ProtocolHandler` right after the
/// decoder (on the raw HTTP/1 request, before it becomes an `HTTPRequest`, which has no version).
struct JellyHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case feed(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, FeedSocket.Session)
        case stream(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, StreamSocket.Session)
        /// An appending stream socket, served by `StreamAppendHandler` on its event loop.
        case streamAppend(any Channel)
        /// A feed upgrade refused: its request is used up, so the refusal is answered here.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, APIError)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let configuration: HTTP1Channel.Configuration
    let direct: DirectPutHandler.Shared
    let feed: FeedSocket
    let streams: StreamSocket

    /// What a socket upgrade was accepted as.
    enum SocketSession: Sendable {
        case feed(FeedSocket.Session)
        case stream(StreamSocket.Session)
    }

    /// Paths a WebSocket may be opened on (the change feed's and streams').
    static func isSocketPath(_ uri: String) -> Bool { FeedSocket.isFeedPath(uri) || StreamSocket.isStreamPath(uri) }

    /// The pipeline waits for the connection's first bytes (`FirstRequestRouter`): a GET of a
    /// feed path gets the upgradable pipeline (NIO's upgrade handler, which costs every
    /// connection it is on), anything else the plain one, as before feeds existed.
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let promise = channel.eventLoop.makePromise(of: UpgradeResult.self)
            let router = FirstRequestRouter(promise: promise, idleTimeout: configuration.idleTimeout) { channel, feedRequest in
                if feedRequest {
                    let negotiated = try self.configureUpgradable(channel: channel, logger: logger)
                    negotiated.cascade(to: promise)
                } else {
                    promise.succeed(.http(try self.configurePlain(channel: channel, logger: logger)))
                }
            }
            try channel.pipeline.syncOperations.addHandler(router)
            return Value(upgradeResult: promise.futureResult, channel: channel)
        }
    }

    /// Hummingbird's HTTP/1.1 pipeline with Jelly's handlers.
    private func configurePlain(channel: any Channel, logger: Logger) throws -> NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart> {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = configuration.httpDecoder.maxHeaderFieldSize
        limits.maxHeaderListSize = configuration.httpDecoder.maxHeaderListSize
        limits.maxHeaderFieldCount = configuration.httpDecoder.maxHeaderFieldCount
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: false, // HTTP is pipelined by NIOAsyncChannel
            withErrorHandling: false, // Hummingbird answers errors
            withOutboundHeaderValidation: false, // Swift HTTP Types validate
            withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits
        )
        try addProtocolHandler(channel)
        return try Self.addRequestHandlers(channel, idleTimeout: configuration.idleTimeout, direct: direct, logger: logger)
    }

    /// What follows the HTTP/1 codec on every HTTP connection (a plain one, or one whose first
    /// request was not a feed upgrade): HTTP types, the connection state (idle timeouts,
    /// graceful shutdown), the direct PUT path after it, and the async channel the router reads.
    private static func addRequestHandlers(
        _ channel: any Channel, idleTimeout: TimeAmount?, direct: DirectPutHandler.Shared, logger: Logger
    ) throws -> NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart> {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        let state = HTTPConnectionStateHandler(idleTimeout: idleTimeout.map { .init($0) }, logger: logger)
        try pipeline.addHandler(state)
        try pipeline.addHandler(DirectPutHandler(direct), position: .after(state))
        return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
    }

    /// `HTTP1ProtocolHandler` right after the decoder.
    private func addProtocolHandler(_ channel: any Channel) throws {
        let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try channel.pipeline.syncOperations.addHandler(
            HTTP1ProtocolHandler(bodyBytesMax: max(direct.api.bodyBytesMax, direct.api.valueBytesMax), serverName: direct.serverName, upgradable: Self.isSocketPath),
            position: .after(decoder)
        )
    }

    /// The pipeline with NIO's WebSocket upgrade for a feed request.
    private func configureUpgradable(channel: any Channel, logger: Logger) throws -> EventLoopFuture<UpgradeResult> {
        let feed = self.feed
        let streams = self.streams
        let direct = self.direct
        let idleTimeout = self.configuration.idleTimeout
        // What `shouldUpgrade` decided, for the upgrade (or the refusal) that follows on this loop.
        let accepted = NIOLoopBoundBox<Result<SocketSession, APIError>?>(nil, eventLoop: channel.eventLoop)
        let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
            // A stream appender's frames are binary messages of up to frameBytesMax.
            maxFrameSize: max(FeedSocket.frameBytesMax, streams.api.store.limits.frameBytesMax + 64),
            shouldUpgrade: { channel, head in
                let promise = channel.eventLoop.makePromise(of: Result<SocketSession, APIError>.self)
                promise.completeWithTask {
                    if StreamSocket.isStreamPath(head.uri) { return await streams.accept(head).map { .stream($0) } }
                    return await feed.accept(head).map { .feed($0) }
                }
                return promise.futureResult.map { decision in
                    accepted.value = decision
                    if case .success = decision { return HTTPHeaders() }
                    return nil
                }
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    guard case .success(let session)? = accepted.value else { throw FeedSocket.Refused() }
                    // HTTP is over on this connection: the rules of HTTP/1 go with it.
                    let pipeline = channel.pipeline.syncOperations
                    pipeline.removeHandler(try pipeline.handler(type: HTTP1ProtocolHandler.self), promise: nil)
                    if case .stream(let s) = session, case .append(let token, let base, let retention, let acks) = s.mode {
                        try pipeline.addHandler(StreamAppendHandler(store: streams.api.store, session: s, token: token, base: base, retention: retention, acks: acks))
                        return .streamAppend(channel)
                    }
                    let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)
                    )
                    switch session {
                    case .feed(let s): return .feed(asyncChannel, s)
                    case .stream(let s): return .stream(asyncChannel, s)
                    }
                }
            }
        )
        let upgrade = NIOTypedHTTPServerUpgradeConfiguration<UpgradeResult>(
            upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture {
                    let http = try Self.addRequestHandlers(channel, idleTimeout: idleTimeout, direct: direct, logger: logger)
                    if case .failure(let error)? = accepted.value { return .refused(http, error) }
                    return .http(http)
                }
            }
        )
        var pipelineConfiguration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: upgrade)
        pipelineConfiguration.enablePipelining = false // HTTP is pipelined by NIOAsyncChannel
        pipelineConfiguration.enableErrorHandling = false // Hummingbird answers errors
        pipelineConfiguration.enableResponseHeaderValidation = false // Swift HTTP Types validate
        pipelineConfiguration.decoderConfiguration.maxHeaderFieldSize = self.configuration.httpDecoder.maxHeaderFieldSize
        pipelineConfiguration.decoderConfiguration.maxHeaderListSize = self.configuration.httpDecoder.maxHeaderListSize
        pipelineConfiguration.decoderConfiguration.maxHeaderFieldCount = self.configuration.httpDecoder.maxHeaderFieldCount
        let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipelineConfiguration)
        try addProtocolHandler(channel)
        return negotiated
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .http(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .feed(let socket, let session):
                await feed.run(socket, session: session, logger: logger)
            case .stream(let socket, let session):
                await streams.run(socket, session: session, logger: logger)
            case .streamAppend(let channel):
                // Served by its handler; a shutdown asks it to append what it has and close.
                await withGracefulShutdownHandler {
                    try? await channel.closeFuture.get()
                } onGracefulShutdown: {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            case .refused(let http, let error):
                try await http.executeThenClose { _, outbound in
                    let answer = error.answer
                    var headers = answer.headers
                    headers[.connection] = "close"
                    headers[.contentLength] = String(answer.body.readableBytes)
                    try await outbound.write(contentsOf: [.head(HTTPResponse(status: answer.status, headerFields: headers)), .body(answer.body), .end(nil)])
                }
            }
        } catch {
            logger.debug("connection ended before its first request was handled", metadata: ["error": "\(error)"])
        }
    }
}

/// The first handler of a connection: holds its first bytes until the request line is in, asks
/// `configure` to build the pipeline after it (for a feed request or not), hands the bytes on
/// and leaves. A connection that sends no request line within the idle timeout is closed.
final class FirstRequestRouter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let promise: EventLoopPromise<JellyHTTP1Channel.UpgradeResult>
    private let idleTimeout: TimeAmount?
    private let configure: (any Channel, Bool) throws -> Void
    private var buffered: ByteBuffer?
    private var decided = false
    private var timer: Scheduled<Void>?

    /// Longest request line looked at: a feed path is much shorter.
    static let lineBytesMax = 4096

    init(promise: EventLoopPromise<JellyHTTP1Channel.UpgradeResult>, idleTimeout: TimeAmount?, configure: @escaping (any Channel, Bool) throws -> Void) {
        self.promise = promise
        self.idleTimeout = idleTimeout
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let idleTimeout {
            let channel = context.channel
            timer = context.eventLoop.scheduleTask(in: idleTimeout) { channel.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !decided else { return context.fireChannelRead(data) }
        if buffered == nil { buffered = bytes } else { buffered?.writeBuffer(&bytes) }
        guard let all = buffered else { return }
        let view = all.readableBytesView
        let lineEnd = view.firstIndex(of: UInt8(ascii: "\n"))
        if lineEnd == nil && view.count < Self.lineBytesMax { return } // the request line is not in yet
        decided = true
        timer?.cancel()
        var feedRequest = false
        if view.starts(with: "GET ".utf8) {
            let line = view[view.startIndex..<(lineEnd ?? view.endIndex)]
            let target = line.dropFirst(4).prefix { $0 != UInt8(ascii: " ") }
            feedRequest = JellyHTTP1Channel.isSocketPath(String(decoding: target, as: UTF8.self))
        }
        do {
            try configure(context.channel, feedRequest)
        } catch {
            promise.fail(error)
            context.close(promise: nil)
            return
        }
        buffered = nil
        context.fireChannelRead(wrapInboundOut(all))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if !decided {
            decided = true
            promise.fail(ChannelError.inputClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !decided {
            decided = true
            timer?.cancel()
            promise.fail(error)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}
