import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import JellyCore
import Logging
import NIOCore
import NIOSSL

/// HTTP API v1 over any `JellyStore`: a thin layer that parses, checks who is asking, calls the
/// store once and answers. See docs/http-api.md for the contract.
public enum JellyHTTPServer {
    /// The application, ready to `runService()` (which stops gracefully on SIGTERM and SIGINT:
    /// stops accepting, finishes requests in flight, then returns so the caller closes the store).
    public static func application(
        store: any JellyStore, configuration: JellyServerConfiguration, metrics: MetricsEndpoint? = nil,
        logger: Logger = Logger(label: "jelly"),
        onReady: @escaping @Sendable (String, Int) -> Void
    ) async throws -> some ApplicationProtocol {
        try configuration.validate()
        let auth = try await Authenticator(configuration.auth, partitionBytesMax: store.limits.partitionBytesMax)
        let (router, direct) = makeRouter(store: store, configuration: configuration, auth: auth, metrics: metrics, logger: logger)
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .milliseconds(configuration.idleTimeoutMilliseconds),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: configuration.headerBytesMax, maxHeaderListSize: configuration.headerBytesMax,
                maxHeaderFieldCount: configuration.headerFieldsMax
            )
        )
        let server: HTTPServerBuilder
        if let certPath = configuration.tlsCertificatePath, let keyPath = configuration.tlsKeyPath {
            let tls: TLSConfiguration
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certPath)
                let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
                tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            } catch {
                throw JellyError(.invalidArgument, "cannot load TLS certificate \(certPath) and key \(keyPath): \(error)")
            }
            server = try .http2Upgrade(
                tlsConfiguration: tls,
                configuration: .init(idleTimeout: .milliseconds(configuration.idleTimeoutMilliseconds), streamConfiguration: http1)
            )
        } else {
            let feed = FeedSocket(api: direct.api)
            let streams = StreamSocket(api: direct.api)
            server = HTTPServerBuilder { responder in
                JellyHTTP1Channel(responder: responder, configuration: http1, direct: direct, feed: feed, streams: streams)
            }
        }
        var logger = logger
        logger[metadataKey: "component"] = "http"
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: serverName,
                backlog: 1024, availableConnectionsDelegate: MaximumAvailableConnections(configuration.connectionsMax)
            ),
            onServerRunning: { channel in
                onReady(configuration.host, channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
    }
}
