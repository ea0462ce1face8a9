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
    /// `status` is `unavailable` (cannot serve) or `degraded` (reads work, writes are refused:
    /// a full disk, a failed disk).
    public var health: (@Sendable () -> (ok: Bool, status: String, detail: String))?
    /// Takes an online backup named `name` (`POST /v1/admin/backup`); `jelly serve` puts it in
    /// its backup directory. Nil: the store cannot be backed up over HTTP (cluster mode).
    public var backup: (@Sendable (_ name: String, _ bytesPerSecond: Int64?) async throws -> BackupReport)?

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
