import ArgumentParser
import Hummingbird
import JellyCluster
import JellyCore
import JellyEngine
import NATSClient
import JellyServer
import Logging
import Metrics
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// `jelly serve`: HTTP API v1 over the embedded store, or with `--nats` over a NATS JetStream
/// cluster (cluster mode: many nodes, data in JetStream).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve HTTP API v1 over the store in --data, or over a NATS JetStream cluster (--nats).",
        discussion: """
            Listens on 127.0.0.1:7420 with data in ./jelly-data by default. Everything else (auth, TLS, \
            limits, NATS credentials) comes from --config FILE, a JSON file described in docs/http-api.md \
            and docs/cluster.md; flags win over the file. With --nats the node keeps no data: it serves \
            the same API over JetStream streams, and starts even while NATS is unreachable (health \
            answers 503 until the cluster is ready). Stops gracefully on SIGTERM or SIGINT: stops \
            accepting, finishes requests in flight, syncs and closes the store, exits 0.
            """
    )
    @Option(help: "A JSON config file (auth, TLS, limits, data, listen, durability).") var config: String?
    @Option(help: "The data directory (default ./jelly-data).") var data: String?
    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:7420; port 0 picks a free port).") var listen: String?
    @Option(help: "always | interval | interval:MS | never (default always).") var durability: String?
    @Option(name: .customLong("backup-dir"), help: "Where POST /v1/admin/backup writes backups, one directory per name (default: the data directory's path with -backups appended).") var backupDir: String?
    @Option(help: "Cluster mode: NATS servers, nats://HOST:PORT[,nats://HOST:PORT…]. The data lives in JetStream.") var nats: String?
    @Option(name: .customLong("nats-shards"), help: "Cluster mode: streams the partitions hash onto (default 8; the same on every node).") var natsShards: Int?
    @Option(name: .customLong("nats-replicas"), help: "Cluster mode: replicas per stream, 1, 3 or 5 (default 3).") var natsReplicas: Int?
    @Option(name: .customLong("tls-cert"), help: "TLS certificate chain (PEM). With --tls-key: HTTPS, HTTP/2 offered.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "TLS private key (PEM).") var tlsKey: String?
    @Option(name: .customLong("log-format"), help: "text | json (one JSON object per line on stderr).") var logFormat = "text"
    @Option(name: .customLong("log-level"), help: "trace | debug | info | notice | warning | error | critical") var logLevel = "info"
    @Flag(name: .customLong("insecure-allow-unauthenticated-network-access"), help: "Listen on a non-loopback address without authentication. Anyone who can reach the port can read and write everything.")
    var insecure = false

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        guard logFormat == "text" || logFormat == "json" else { throw ValidationError("--log-format must be text or json") }
        let format: JellyLogHandler.Format = logFormat == "json" ? .json : .text
        LoggingSystem.bootstrap { label in
            var handler = JellyLogHandler(label: label, format: format)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "jelly")
        let files = raiseOpenFileLimit()
        if files.after > files.before {
            logger.info("raised the open-file limit", metadata: ["from": "\(files.before)", "to": "\(files.after)"])
        }
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

        if nats != nil || file?.nats != nil {
            if backupDir != nil || file?.backup_directory != nil || file?.backup_rate_mib != nil {
                throw ValidationError("--backup-dir and backup_directory are for the embedded store; in cluster mode back up the JetStream streams (docs/operations.md)")
            }
            if data != nil || durability != nil || file?.value_cache_mib != nil || file?.tombstone_retention_ms != nil || file?.tombstones_per_partition_max != nil || file?.streams?.durability != nil {
                throw ValidationError("--data, --durability, value_cache_mib, streams.durability and the tombstone settings are for the embedded store; with --nats the data lives in JetStream (see docs/cluster.md)")
            }
            try await serveCluster(file: file, serverConfig: serverConfig, limits: storeConfig.limits, logger: logger, registry: registry)
            return
        }

        if let mib = file?.value_cache_mib { storeConfig.valueCacheBytes = mib << 20 }
        if let ms = file?.tombstone_retention_ms { storeConfig.compaction.tombstoneRetentionMilliseconds = ms }
        if let n = file?.tombstones_per_partition_max { storeConfig.compaction.tombstonesPerPartitionMax = n }
        if let d = file?.streams?.durability.flatMap(Durability.init(parsing:)) { storeConfig.streams.durability = d }
        storeConfig.commitObserver = CommitMetrics()
        let openConfig = storeConfig
        let embedded = try await failing { try EmbeddedStore.open(openConfig) }
        serverConfig.health = {
            guard let refusal = embedded.writeRefusal else { return (true, "ok", "") }
            return (false, "degraded", "reads work, writes are refused: \(refusal.message)")
        }
        let backupRoot = backupDir ?? file?.backup_directory ?? (trimmingSlashes(storeConfig.directory) + "-backups")
        let defaultRate = Int64(file?.backup_rate_mib ?? Serve.backupRateMiBDefault) << 20
        serverConfig.backup = { name, rate in
            let cap = rate ?? defaultRate
            let report = try await embedded.backup(to: backupRoot + "/" + name, bytesPerSecond: cap > 0 ? cap : nil)
            logger.info("backup taken", metadata: ["directory": "\(report.directory)", "version": "\(report.version)", "bytes_copied": "\(report.bytesCopied)", "ms": "\(report.milliseconds)"])
            return report
        }
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
                    "jelly_store_value_cache_bytes": Double(info.valueCache.bytes),
                    "jelly_store_value_cache_hits": Double(info.valueCache.hits),
                    "jelly_store_value_cache_misses": Double(info.valueCache.misses),
                ]
            },
            exposition: { registry.emitToBuffer() }
        )
        try await serveHTTP(
            store: embedded, serverConfig: serverConfig, metrics: metrics, logger: logger,
            details: [
                ("data", "data", storeConfig.directory), ("durability", "durability", "\(embedded.configuration.durability)"),
                ("log writes", "io", "\(embedded.info().ioMode)"),
                ("value cache", "value_cache", formatBytes(Int64(embedded.configuration.valueCacheBytes))),
            ],
            close: { try await embedded.close() }, stopped: "store closed"
        )
    }

    /// Serves HTTP API v1 over `store` until SIGTERM or SIGINT, then closes the store. The
    /// "listening on" line (which tests and scripts read) and the ready log carry `details`
    /// (label in the line, key in the log, value) and the auth mode.
    func serveHTTP(
        store: any JellyStore, serverConfig: JellyServerConfiguration, metrics: MetricsEndpoint, logger: Logger,
        details: [(label: String, key: String, value: String)], close: @Sendable () async throws -> Void, stopped: String
    ) async throws {
        let scheme = serverConfig.tlsCertificatePath == nil ? "http" : "https"
        let details = details + [("auth", "auth", serverConfig.auth == nil ? "none" : "required")]
        do {
            let app = try await JellyHTTPServer.application(store: store, configuration: serverConfig, metrics: metrics, logger: logger) { host, port in
                let address = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
                printLine("jelly serve: listening on \(address), " + details.map { "\($0.label) \($0.value)" }.joined(separator: ", "))
                var metadata: Logger.Metadata = ["address": "\(address)"]
                for d in details { metadata[d.key] = "\(d.value)" }
                logger.info("ready", metadata: metadata)
            }
            try await app.runService()
        } catch {
            try? await close()
            return try await failing { throw error }
        }
        try await close()
        logger.info("stopped; \(stopped)")
        printError("jelly serve: stopped; \(stopped)")
    }
}

extension Serve {
    /// Online backups copy at most this fast unless asked otherwise (`rate_mib`): on the test
    /// machine's one disk, 150 MiB/s left the session workload's save rate unchanged, 300 MiB/s
    /// cut it by 28% and no cap (636 MB/s) by 60% (docs/benchmarks.md, `jelly bench-backup`).
    static let backupRateMiBDefault = 200

    /// Cluster mode: the same HTTP API over `ClusterStore`. Starts serving at once; until the
    /// NATS cluster is reachable and the streams are ready, requests answer 503 `unavailable`
    /// and `GET /v1/health` says why.
    func serveCluster(
        file: ServeConfigFile?, serverConfig: JellyServerConfiguration, limits: JellyLimits, logger: Logger,
        registry: PrometheusCollectorRegistry
    ) async throws {
        let config: ClusterStoreConfiguration = try await failing {
            try clusterConfiguration(file: file, nats: nats, shards: natsShards, replicas: natsReplicas, limits: limits)
        }
        let store = try await failing { try ClusterStore.open(config) }
        var serverConfig = serverConfig
        serverConfig.health = { let h = store.health(); return (h.ok, "unavailable", h.detail) }
        let metrics = MetricsEndpoint(
            storeGauges: {
                let status = store.connection.status
                let counters = store.connection.counters
                return [
                    "jelly_nats_connected": status.connected ? 1 : 0,
                    "jelly_nats_reconnects": Double(counters.reconnects),
                    "jelly_nats_dropped_messages": Double(counters.dropped),
                    "jelly_cluster_ready": store.health().ok ? 1 : 0,
                ]
            },
            exposition: { registry.emitToBuffer() }
        )
        try await serveHTTP(
            store: store, serverConfig: serverConfig, metrics: metrics, logger: logger,
            details: [
                ("cluster", "nats", config.nats.servers.map(\.description).joined(separator: ",")),
                ("shards", "shards", "\(config.shards)"), ("replicas", "replicas", "\(config.replicas)"),
            ],
            close: { try await store.close() }, stopped: "NATS connection closed"
        )
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

func trimmingSlashes(_ path: String) -> String {
    var p = path
    while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
    return p
}

/// Cluster mode's store configuration from the config file's `nats` section and the flags that
/// override it (`jelly serve`, `jelly backup`, `jelly restore`).
func clusterConfiguration(file: ServeConfigFile?, nats: String?, shards: Int?, replicas: Int?, limits: JellyLimits) throws -> ClusterStoreConfiguration {
    let settings = file?.nats
    let urls = nats ?? settings?.servers.joined(separator: ",") ?? ""
    var options = NATSOptions(servers: try NATSServerAddress.list(urls))
    options.name = "jelly"
    options.user = settings?.user
    options.password = settings?.password
    options.token = settings?.token
    if let tls = settings?.tls { options.tls = NATSTLSOptions(caFile: tls.ca, certificateFile: tls.cert, privateKeyFile: tls.key) }
    var c = ClusterStoreConfiguration(nats: options)
    c.shards = shards ?? settings?.shards ?? c.shards
    c.replicas = replicas ?? settings?.replicas ?? c.replicas
    c.streamPrefix = settings?.stream_prefix ?? c.streamPrefix
    c.subjectPrefix = settings?.subject_prefix ?? c.subjectPrefix
    if let ms = settings?.request_timeout_ms { c.requestTimeout = .milliseconds(ms) }
    c.limits = limits
    c.logger = Logger(label: "jelly.cluster")
    return c
}
