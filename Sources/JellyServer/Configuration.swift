import Foundation
import JellyCore

/// Everything `jelly serve` can be told, with the defaults documented in docs/limits.md and
/// docs/http-api.md. Built from command-line flags and, for the rest, a JSON config file
/// (`--config FILE`, see `ServeConfigFile`).
public struct JellyServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 7420
    /// Largest request body. A declared `Content-Length` over it is 413 before the body is read.
    public var requestBodyBytesMax = 16 << 20
    /// Largest single header field and all header fields of one request (400 from the parser).
    public var headerBytesMax = 16 << 10
    /// Most header fields in one request.
    public var headerFieldsMax = 100
    /// A connection that sends nothing (between requests, or in the middle of one: a slow or
    /// cut-off request) for this long is closed.
    public var idleTimeoutMilliseconds: Int64 = 60_000
    /// Most open connections; beyond it the server stops accepting until one closes.
    public var connectionsMax = 4096
    /// TLS: certificate chain and private key, PEM files. With them the server speaks HTTPS and
    /// offers HTTP/2 (ALPN `h2`) next to HTTP/1.1.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Who may do what; nil means no authentication (only allowed on loopback).
    public var auth: AuthConfiguration?
    /// One structured log line per request (off by default: it costs throughput).
    public var logRequests = false
    /// Whether the store can serve now, and why not (`GET /v1/health` answers 503 when not).
    /// Nil: always healthy (the embedded store fails at open instead).
    public var health: (@Sendable () -> (ok: Bool, detail: String))?

    public init() {}

    /// Checks the values against each other and their ranges.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw JellyError(.invalidArgument, "invalid server configuration: \(message)") }
        }
        try check((0...65535).contains(port), "port must be 0...65535")
        try check(requestBodyBytesMax >= 1024, "body_bytes_max must be at least 1024")
        try check((1024...(1 << 20)).contains(headerBytesMax), "header_bytes_max must be 1 KiB...1 MiB")
        try check((8...10_000).contains(headerFieldsMax), "header_fields_max must be 8...10000")
        try check(idleTimeoutMilliseconds >= 100, "idle_timeout_ms must be at least 100")
        try check(connectionsMax >= 1, "connections_max must be at least 1")
        try check((tlsCertificatePath == nil) == (tlsKeyPath == nil), "give both tls cert and tls key, or neither")
        try auth?.validate()
    }
}

/// Credentials and roles. API keys are for game servers and operators; client tokens (JWTs) are
/// for game clients and are limited to the partition in their `sub` claim.
public struct AuthConfiguration: Sendable {
    public var apiKeys: [APIKey] = []
    /// HS256 secret for client tokens (at least 32 bytes).
    public var clientTokenHS256Secret: String?
    /// Ed25519 public key for client tokens: PEM, or the 32 raw bytes in base64url (JWK `x`).
    public var clientTokenEdDSAPublicKey: String?
    /// When set, client tokens must carry this `aud`.
    public var clientTokenAudience: String?

    public init(apiKeys: [APIKey] = []) { self.apiKeys = apiKeys }

    public struct APIKey: Sendable {
        public var name: String
        public var key: String
        public var role: Role
        public init(name: String, key: String, role: Role) {
            self.name = name
            self.key = key
            self.role = role
        }
    }

    public enum Role: String, Sendable, Decodable {
        /// Everything, including breaking locks.
        case admin
        /// Every data operation: objects, batches, locks (not breaking them).
        case server
    }

    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw JellyError(.invalidArgument, "invalid auth configuration: \(message)") }
        }
        try check(!apiKeys.isEmpty || clientTokenHS256Secret != nil || clientTokenEdDSAPublicKey != nil,
                  "auth needs at least one api key or client token key")
        for key in apiKeys {
            try check(key.key.utf8.count >= 16, "api key \(Names.quoted(key.name)) is shorter than 16 bytes; use a long random string (openssl rand -hex 32)")
        }
        try check(Set(apiKeys.map(\.key)).count == apiKeys.count, "two api keys have the same key")
        if let secret = clientTokenHS256Secret {
            try check(secret.utf8.count >= 32, "client_tokens.hs256_secret must be at least 32 bytes")
        }
    }
}

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
///   "value_cache_mib": 128
/// }
/// ```
public struct ServeConfigFile: Decodable, Sendable {
    public var data: String?
    public var listen: String?
    public var durability: String?
    public var tls: TLS?
    public var auth: Auth?
    public var limits: Limits?
    public var log_requests: Bool?
    /// The embedded store's value cache in MiB (`EmbeddedStoreConfiguration.valueCacheBytes`).
    public var value_cache_mib: Int?
    public var nats: NATS?

    /// Cluster mode: the NATS JetStream cluster that holds the data (docs/cluster.md).
    public struct NATS: Decodable, Sendable {
        public var servers: [String]
        public var user: String?
        public var password: String?
        public var token: String?
        public var tls: NATSTLS?
        public var shards: Int?
        public var replicas: Int?
        public var stream_prefix: String?
        public var subject_prefix: String?
        public var request_timeout_ms: Int64?
    }

    public struct NATSTLS: Decodable, Sendable {
        public var ca: String?
        public var cert: String?
        public var key: String?
    }

    public struct TLS: Decodable, Sendable {
        public var cert: String
        public var key: String
    }

    public struct Auth: Decodable, Sendable {
        public var api_keys: [Key]?
        public var client_tokens: ClientTokens?
        public struct Key: Decodable, Sendable {
            public var name: String
            public var key: String
            public var role: AuthConfiguration.Role
        }
        public struct ClientTokens: Decodable, Sendable {
            public var hs256_secret: String?
            public var eddsa_public_key: String?
            public var audience: String?
        }
    }

    public struct Limits: Decodable, Sendable {
        public var body_bytes_max: Int?
        public var header_bytes_max: Int?
        public var header_fields_max: Int?
        public var idle_timeout_ms: Int64?
        public var connections_max: Int?
        public var lock_ttl_ms_min: Int64?
        public var lock_ttl_ms_max: Int64?
    }

    /// Reads and checks the file; errors name the file and the field.
    public static func load(path: String) throws -> ServeConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JellyError(.invalidArgument, "cannot read the config file \(path)")
        }
        do {
            try rejectUnknownFields(data)
            return try JSONDecoder().decode(ServeConfigFile.self, from: data)
        } catch let error as JellyError {
            throw JellyError(.invalidArgument, "\(path): \(error.message)")
        } catch let error as DecodingError {
            throw JellyError(.invalidArgument, "\(path): \(describe(error))")
        } catch {
            throw JellyError(.invalidArgument, "\(path): not valid JSON (\(error.localizedDescription))")
        }
    }

    private static let known: [String: Set<String>] = [
        "": ["data", "listen", "durability", "tls", "auth", "limits", "log_requests", "value_cache_mib", "nats"],
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
    public func apply(to configuration: inout JellyServerConfiguration, limits: inout JellyLimits) throws {
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
        if let log_requests { configuration.logRequests = log_requests }
        if let mib = value_cache_mib, !(0...(1 << 20)).contains(mib) {
            throw JellyError(.invalidArgument, "value_cache_mib must be between 0 (no cache) and 1048576 (1 TiB); got \(mib)")
        }
        try configuration.validate()
        try limits.validate()
    }
}
