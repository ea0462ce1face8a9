import Foundation
import JellyCore
import JellyEngine
import JellyServer

/// The JSON config file of `jelly serve --config FILE`. Every field is optional; flags given on
/// the command line win over the file. Unknown fields are an error (a typo must not silently
/// turn a limit or the authentication off).
///
/// ```json
/// {
///   "data": "/var/lib/jelly", "listen": "0.0.0.0:7420", "durability": "always",
///   "tls": {"cert": "cert.pem", "key": "key.pem"},
///   "auth": {
///     "api_keys": [{"name": "game-servers", "key": "…", "role": "server"},
///                  {"name": "ops", "key": "…", "role": "admin"}],
///     "client_tokens": {"hs256_secret": "…", "eddsa_public_key": "…", "audience": "my-game"}
///   },
///   "limits": {"body_bytes_max": 16777216, "header_bytes_max": 16384, "header_fields_max": 100,
///              "idle_timeout_ms": 60000, "connections_max": 4096,
///              "lock_ttl_ms_min": 100, "lock_ttl_ms_max": 86400000},
///   "log_requests": false,
///   "value_cache_mib": 128,
///   "tombstone_retention_ms": 2592000000, "tombstones_per_partition_max": 10000,
///   "streams": {"retain_frames": 100000, "retain_bytes": 67108864, "retain_ms": 604800000,
///               "frame_bytes_max": 65536, "durability": "interval:20"}
/// }
/// ```
struct ServeConfigFile: Decodable, Sendable {
    var data: String?
    var listen: String?
    var durability: String?
    var tls: TLS?
    var auth: Auth?
    var limits: Limits?
    var log_requests: Bool?
    /// The embedded store's value cache in MiB (`EmbeddedStoreConfiguration.valueCacheBytes`).
    var value_cache_mib: Int?
    /// How long the embedded store keeps deletes for the change feed, and how many per
    /// partition (`CompactionPolicy.tombstoneRetentionMilliseconds`, `tombstonesPerPartitionMax`).
    var tombstone_retention_ms: Int64?
    var tombstones_per_partition_max: Int?
    var nats: NATS?
    var streams: Streams?
    /// Where `POST /v1/admin/backup` writes backups (embedded store; `--backup-dir`).
    var backup_directory: String?
    /// Online backups' copy rate cap in MiB/s (0: none; default 200).
    var backup_rate_mib: Int?

    /// Streams (docs/streams.md): the retention of streams that name none, the largest frame,
    /// and (embedded store only) when frames are synced.
    struct Streams: Decodable, Sendable {
        var retain_frames: Int?
        var retain_bytes: Int64?
        var retain_ms: Int64?
        var frame_bytes_max: Int?
        var durability: String?
    }

    /// Cluster mode: the NATS JetStream cluster that holds the data (docs/cluster.md).
    struct NATS: Decodable, Sendable {
        var servers: [String]
        var user: String?
        var password: String?
        var token: String?
        var tls: NATSTLS?
        var shards: Int?
        var replicas: Int?
        var stream_prefix: String?
        var subject_prefix: String?
        var request_timeout_ms: Int64?
    }

    struct NATSTLS: Decodable, Sendable {
        var ca: String?
        var cert: String?
        var key: String?
    }

    struct TLS: Decodable, Sendable {
        var cert: String
        var key: String
    }

    struct Auth: Decodable, Sendable {
        var api_keys: [Key]?
        var client_tokens: ClientTokens?
        struct Key: Decodable, Sendable {
            var name: String
            var key: String
            var role: AuthConfiguration.Role
        }
        struct ClientTokens: Decodable, Sendable {
            var hs256_secret: String?
            var eddsa_public_key: String?
            var audience: String?
        }
    }

    struct Limits: Decodable, Sendable {
        var body_bytes_max: Int?
        var header_bytes_max: Int?
        var header_fields_max: Int?
        var idle_timeout_ms: Int64?
        var connections_max: Int?
        var lock_ttl_ms_min: Int64?
        var lock_ttl_ms_max: Int64?
    }

    /// Reads and checks the file; errors name the file and the field.
    static func load(path: String) throws -> ServeConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JellyError(.invalidArgument, "cannot read the config file \(path)")
        }
        do {
            try rejectUnknownFields(data)
            return try JSONDecoder().decode(ServeConfigFile.self, from: data)
        } catch let error as JellyError {
            throw JellyError(.invalidArgument, "\(path): \(error.message)")
        } catch let error as DecodingError {
            throw JellyError(.invalidArgument, "\(path): \(error.readableDescription)")
        } catch {
            throw JellyError(.invalidArgument, "\(path): not valid JSON (\(error.localizedDescription))")
        }
    }

    private static let known: [String: Set<String>] = [
        "": ["data", "listen", "durability", "tls", "auth", "limits", "log_requests", "value_cache_mib", "tombstone_retention_ms", "tombstones_per_partition_max", "nats", "streams", "backup_directory", "backup_rate_mib"],
        "streams": ["retain_frames", "retain_bytes", "retain_ms", "frame_bytes_max", "durability"],
        "nats": ["servers", "user", "password", "token", "tls", "shards", "replicas", "stream_prefix", "subject_prefix", "request_timeout_ms"],
        "nats.tls": ["ca", "cert", "key"],
        "tls": ["cert", "key"],
        "auth": ["api_keys", "client_tokens"],
        "auth.api_keys": ["name", "key", "role"],
        "auth.client_tokens": ["hs256_secret", "eddsa_public_key", "audience"],
        "limits": ["body_bytes_max", "header_bytes_max", "header_fields_max", "idle_timeout_ms", "connections_max", "lock_ttl_ms_min", "lock_ttl_ms_max"],
    ]

    private static func rejectUnknownFields(_ data: Data) throws {
        func walk(_ value: Any, _ path: String) throws {
            if let object = value as? [String: Any] {
                let allowed = known[path] ?? []
                for (key, child) in object {
                    guard allowed.contains(key) else {
                        let at = path.isEmpty ? "the top level" : path
                        throw JellyError(.invalidArgument, "unknown field \"\(key)\" in \(at); known: \(allowed.sorted().joined(separator: ", "))")
                    }
                    try walk(child, path.isEmpty ? key : "\(path).\(key)")
                }
            } else if let array = value as? [Any] {
                for element in array { try walk(element, path) }
            }
        }
        try walk(try JSONSerialization.jsonObject(with: data), "")
    }

    /// Applies the file's server settings (not data, listen, durability or value_cache_mib, which
    /// the caller merges with its flags and the store's configuration) to `configuration` and
    /// the store's `limits`; checks value_cache_mib's range.
    func apply(to configuration: inout JellyServerConfiguration, limits: inout JellyLimits) throws {
        if let tls {
            configuration.tlsCertificatePath = tls.cert
            configuration.tlsKeyPath = tls.key
        }
        if let auth {
            var a = AuthConfiguration(apiKeys: (auth.api_keys ?? []).map { .init(name: $0.name, key: $0.key, role: $0.role) })
            a.clientTokenHS256Secret = auth.client_tokens?.hs256_secret
            a.clientTokenEdDSAPublicKey = auth.client_tokens?.eddsa_public_key
            a.clientTokenAudience = auth.client_tokens?.audience
            configuration.auth = a
        }
        if let l = self.limits {
            if let v = l.body_bytes_max { configuration.requestBodyBytesMax = v }
            if let v = l.header_bytes_max { configuration.headerBytesMax = v }
            if let v = l.header_fields_max { configuration.headerFieldsMax = v }
            if let v = l.idle_timeout_ms { configuration.idleTimeoutMilliseconds = v }
            if let v = l.connections_max { configuration.connectionsMax = v }
            if let v = l.lock_ttl_ms_min { limits.lockTTLMillisecondsMin = v }
            if let v = l.lock_ttl_ms_max { limits.lockTTLMillisecondsMax = v }
        }
        if let s = streams {
            if let v = s.retain_frames { limits.streamRetentionDefault.frames = v }
            if let v = s.retain_bytes { limits.streamRetentionDefault.bytes = v }
            if let v = s.retain_ms { limits.streamRetentionDefault.ageMilliseconds = v }
            if let v = s.frame_bytes_max { limits.frameBytesMax = v }
            if let d = s.durability, Durability(parsing: d) == nil {
                throw JellyError(.invalidArgument, "streams.durability must be always, interval, interval:MS or never; got \(d)")
            }
        }
        if let log_requests { configuration.logRequests = log_requests }
        if let mib = value_cache_mib, !(0...(1 << 20)).contains(mib) {
            throw JellyError(.invalidArgument, "value_cache_mib must be between 0 (no cache) and 1048576 (1 TiB); got \(mib)")
        }
        try configuration.validate()
        try limits.validate()
    }
}
