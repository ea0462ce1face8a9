import ArgumentParser
import Hummingbird
import JellyCore
import JellyEngine
import JellyServer
import Logging
import Metrics
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// `jelly serve`: HTTP API v1 over the embedded store.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve HTTP API v1 over the store in --data.",
        discussion: """
            Listens on 127.0.0.1:7420 with data in ./jelly-data by default. Everything else (auth, TLS, \
            limits) comes from --config FILE, a JSON file described in docs/http-api.md; flags win over \
            the file. Stops gracefully on SIGTERM or SIGINT: stops accepting, finishes requests in \
            flight, syncs and closes the store, exits 0.
            """
    )
    @Option(help: "A JSON config file (auth, TLS, limits, data, listen, durability).") var config: String?
    @Option(help: "The data directory (default ./jelly-data).") var data: String?
    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:7420; port 0 picks a free port).") var listen: String?
    @Option(help: "always | interval | interval:MS | never (default always).") var durability: String?
    @Option(name: .customLong("tls-cert"), help: "TLS certificate chain (PEM). With --tls-key: HTTPS, HTTP/2 offered.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "TLS private key (PEM).") var tlsKey: String?
    @Option(name: .customLong("log-format"), help: "text | json (one JSON object per line on stderr).") var logFormat = "text"
    @Option(name: .customLong("log-level"), help: "trace | debug | info | notice | warning | error | critical") var logLevel = "info"
    @Flag(name: .customLong("insecure-allow-unauthenticated-network-access"), help: "Listen on a non-loopback address without authentication. Anyone who can reach the port can read and write everything.")
    var insecure = false

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        guard logFormat == "text" || logFormat == "json" else { throw ValidationError("--log-format must be text or json") }
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "jelly")
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        factory.valueHistogramBuckets["jelly_commit_batch_bytes"] = [4096, 16384, 65536, 262_144, 1_048_576, 4_194_304, 16_777_216]
        MetricsSystem.bootstrap(factory)

        let file = try await failing { try config.map { try ServeConfigFile.load(path: $0) } }
        let listen = self.listen ?? file?.listen ?? "127.0.0.1:7420"
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("listen must be HOST:PORT, like 127.0.0.1:7420 (got \(listen))")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }

        var serverConfig = JellyServerConfiguration()
        serverConfig.host = host
        serverConfig.port = port
        var storeConfig = try StoreOptions.configuration(data: data ?? file?.data ?? "./jelly-data", durability: durability ?? file?.durability ?? "always")
        try await failing {
            do {
                try file?.apply(to: &serverConfig, limits: &storeConfig.limits)
            } catch let error as JellyError {
                throw JellyError(error.code, "\(config ?? "config"): \(error.message)")
            }
        }
        if let tlsCert { serverConfig.tlsCertificatePath = tlsCert }
        if let tlsKey { serverConfig.tlsKeyPath = tlsKey }

        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        if !loopback && serverConfig.auth == nil && !insecure {
            throw ValidationError("""
                refusing to listen on \(host) without authentication: anyone who reached it could read and \
                overwrite every player's data. Configure api keys in --config (see docs/http-api.md), listen \
                on 127.0.0.1, or pass --insecure-allow-unauthenticated-network-access if something else \
                guards the network.
                """)
        }
        if !loopback && serverConfig.auth == nil { logger.warning("serving \(host):\(port) WITHOUT AUTHENTICATION") }

        storeConfig.commitObserver = CommitMetrics()
        let openConfig = storeConfig
        let embedded = try await failing { try EmbeddedStore.open(openConfig) }
        let metrics = MetricsEndpoint(
            storeGauges: {
                let info = embedded.info()
                return [
                    "jelly_store_objects": Double(info.objects),
                    "jelly_store_locks_held": Double(info.locksHeld),
                    "jelly_store_live_bytes": Double(info.liveBytes),
                    "jelly_store_record_bytes": Double(info.recordBytes),
                    "jelly_store_segment_bytes": Double(info.segmentBytes),
                    "jelly_store_garbage_ratio": info.garbageRatio,
                ]
            },
            exposition: { registry.emitToBuffer() }
        )
        let data = storeConfig.directory
        let durability = embedded.configuration.durability
        let ioMode = embedded.info().ioMode
        let scheme = serverConfig.tlsCertificatePath == nil ? "http" : "https"
        let authMode = serverConfig.auth == nil ? "none" : "required"
        do {
            let app = try await JellyHTTPServer.application(store: embedded, configuration: serverConfig, metrics: metrics, logger: logger) { host, port in
                let address = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
                printLine("jelly serve: listening on \(address), data \(data), durability \(durability), log writes \(ioMode), auth \(authMode)")
                logger.info("ready", metadata: [
                    "address": "\(address)", "data": "\(data)", "durability": "\(durability)", "io": "\(ioMode)", "auth": "\(authMode)",
                ])
            }
            try await app.runService()
        } catch {
            try? await embedded.close()
            return try await failing { throw error }
        }
        try await embedded.close()
        logger.info("stopped; store closed")
        printError("jelly serve: stopped; store closed")
    }
}

/// Commit batch sizes and fsync latency, from the engine's committer into swift-metrics.
struct CommitMetrics: CommitObserver {
    let batchRequests = Metrics.Recorder(label: "jelly_commit_batch_requests", aggregate: true)
    let batchBytes = Metrics.Recorder(label: "jelly_commit_batch_bytes", aggregate: true)
    let syncLatency = Metrics.Timer(label: "jelly_fsync_duration_seconds")
    let commits = Metrics.Counter(label: "jelly_commits_total")

    func committed(requests: Int, records: Int, blockBytes: Int) {
        commits.increment()
        batchRequests.record(requests)
        batchBytes.record(blockBytes)
    }

    func synced(nanoseconds: UInt64) {
        syncLatency.recordNanoseconds(Int64(truncatingIfNeeded: nanoseconds))
    }
}
