import Hummingbird
import JellyClient
import JellyCore
import JellyEngine
import JellyServer
import JellyTestSupport
import Logging
import Testing

/// A real HTTP server (Hummingbird on a loopback port, in this process so that its store can
/// run on the test's manual clock) over an embedded store, reached through `JellyClient`.
final class RemoteStoreHarness: ConformanceHarness, @unchecked Sendable {
    // Replaced only by `restart`, which a case calls from one task at a time.
    let embedded: EmbeddedStoreHarness
    private var server: Task<Void, any Error>?
    private var client: JellyClient?
    private var port = 0

    var clock: ManualClock { embedded.clock }
    var store: any JellyStore {
        guard let client else { preconditionFailure("the harness has no client: start() failed") }
        return client
    }

    init() async throws {
        embedded = try EmbeddedStoreHarness()
        try await start()
    }

    private func start() async throws {
        var config = JellyServerConfiguration()
        config.port = port // 0 at first; the same port after a restart
        // An admin key for the cases (they break locks), and client tokens for `clientStore`.
        var auth = AuthConfiguration(apiKeys: [.init(name: "cases", key: Self.apiKey, role: .admin)])
        auth.clientTokenHS256Secret = Self.secret
        config.auth = auth
        let store = embedded.store
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "jelly-test")
        logger.logLevel = .critical // cancelling the server at the end of a case logs noise
        let app = try await JellyHTTPServer.application(store: store, configuration: config, logger: logger) { _, port in
            readyContinuation.yield(port)
        }
        server = Task { try await app.run() }
        for await p in ready { port = p; break }
        var clientConfig = JellyClient.Configuration(url: "http://127.0.0.1:\(port)", bearerToken: Self.apiKey)
        clientConfig.limits = store.limits
        client = try JellyClient(clientConfig)
    }

    static let apiKey = "conformance-admin-key-0123456789"
    static let secret = "a-conformance-hs256-secret-of-32-bytes!!"
    private var clients: [JellyClient] = []

    /// A connection with a client token for `partition`: the server decides the role from it.
    func clientStore(partition: String) async throws -> any JellyStore {
        var config = JellyClient.Configuration(url: "http://127.0.0.1:\(port)", bearerToken: try await hs256ClientToken(partition, secret: Self.secret))
        config.limits = embedded.store.limits
        let client = try JellyClient(config)
        clients.append(client)
        return client
    }

    private func stop() async {
        for c in clients { try? await c.close() }
        clients = []
        try? await client?.close()
        server?.cancel()
        _ = await server?.result
    }

    func restart() async throws {
        await stop()
        try await embedded.restart()
        try await start()
    }

    func finish() async {
        await stop()
        await embedded.finish()
    }
}

/// The store contract through `JellyClient` → HTTP API v1 → `jelly serve`'s handlers → the
/// embedded engine: the remote topology must keep every rule the embedded one keeps.
@Suite struct RemoteConformanceTests {
    @Test(arguments: ConformanceSuite.cases)
    func conformance(_ testCase: ConformanceCase) async throws {
        try await testCase.perform(on: try await RemoteStoreHarness())
    }
}
