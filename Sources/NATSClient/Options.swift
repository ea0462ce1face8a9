import NIOCore

/// One NATS server: `nats://host:port`, `tls://host:port` or `host:port` (default port 4222).
public struct NATSServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `tls://`: TLS is required for this server even if its INFO does not ask for it.
    public var tls: Bool

    public init(host: String, port: Int = 4222, tls: Bool = false) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// Parses one URL. User info (`nats://user:pass@host`) is refused: put credentials in
    /// `NATSOptions`, so they never end up in logs that print server addresses.
    public init(url: String) throws {
        var rest = Substring(url.trimmingCharacters(in: " "))
        var tls = false
        if rest.hasPrefix("nats://") {
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("tls://") {
            rest = rest.dropFirst(6)
            tls = true
        } else if rest.contains("://") {
            throw NATSError.invalidOption("NATS server URL \(url) has an unknown scheme; use nats://HOST:PORT or tls://HOST:PORT")
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("@") {
            throw NATSError.invalidOption("NATS server URL \(url) carries credentials; pass them as user/password or token options instead")
        }
        var host = rest
        var port = 4222
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw NATSError.invalidOption("NATS server URL \(url) has a bad port; use nats://HOST:PORT")
            }
            port = p
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw NATSError.invalidOption("NATS server URL \(url) has no host") }
        self.init(host: String(host), port: port, tls: tls)
    }

    /// Parses a comma-separated list of URLs.
    public static func list(_ urls: String) throws -> [NATSServerAddress] {
        let parts = urls.split(separator: ",").map { String($0) }.filter { !$0.trimmingCharacters(in: " ").isEmpty }
        guard !parts.isEmpty else { throw NATSError.invalidOption("no NATS server URL given; use nats://HOST:PORT[,nats://HOST:PORT…]") }
        return try parts.map(NATSServerAddress.init(url:))
    }

    public var description: String { "\(tls ? "tls" : "nats")://\(host):\(port)" }
}

/// TLS to the NATS servers: a CA to trust (else the system's roots) and an optional client
/// certificate for servers that verify clients.
public struct NATSTLSOptions: Sendable, Hashable {
    public var caFile: String?
    public var certificateFile: String?
    public var privateKeyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, privateKeyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
    }
}

/// How a `NATSConnection` connects, authenticates, reconnects and bounds its buffers.
public struct NATSOptions: Sendable {
    public var servers: [NATSServerAddress]
    /// The client name the server shows in its monitoring.
    public var name: String = "nats-swift"
    public var user: String?
    public var password: String?
    public var token: String?
    /// TLS for every server; nil means plain TCP unless a server requires TLS (then connecting fails).
    public var tls: NATSTLSOptions?
    public var connectTimeout: Duration = .seconds(2)
    /// Wait before the first reconnect attempt; doubles per failed round over the server list up to `reconnectWaitMax`.
    public var reconnectWait: Duration = .milliseconds(50)
    public var reconnectWaitMax: Duration = .seconds(2)
    /// Default timeout of `request`.
    public var requestTimeout: Duration = .seconds(5)
    /// Client PING interval and how many may go unanswered before the connection is dropped.
    public var pingInterval: Duration = .seconds(10)
    public var maxPingsOutstanding: Int = 2
    /// A server that stops answering without closing the connection (a paused process, a dead
    /// link): when a request has waited half this long and nothing at all came from the server
    /// since it was sent, a PING asks; no answer within the other half and the connection is
    /// dropped (its waiting requests fail at once) and the next server tried, long before the
    /// keep-alive PINGs would notice.
    public var stallTimeout: Duration = .milliseconds(1500)
    /// Start with a random server of the list, so that clients spread over a cluster.
    public var randomizeServers: Bool = true
    /// Most messages a subscription buffers for a slow consumer; newer ones are dropped and counted.
    public var subscriptionBufferLimit: Int = 65_536
    /// Add the servers a cluster announces (INFO `connect_urls`) to the list.
    public var discoverServers: Bool = true

    public init(servers: [NATSServerAddress]) {
        self.servers = servers
    }
}

/// What went wrong talking to NATS.
public enum NATSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An option is malformed (bad URL, unreadable certificate).
    case invalidOption(String)
    /// No connection right now; the client is reconnecting in the background.
    case notConnected(String)
    /// `close()` was called.
    case closed
    /// No reply within the timeout.
    case timeout(subject: String)
    /// Nobody subscribes to the subject (the server's 503 status).
    case noResponders(subject: String)
    /// The server sent something the client cannot parse.
    case protocolViolation(String)
    /// The server answered `-ERR`.
    case serverError(String)

    public var description: String {
        switch self {
        case .invalidOption(let m): return m
        case .notConnected(let m): return "not connected to NATS: \(m)"
        case .closed: return "the NATS connection is closed"
        case .timeout(let s): return "no reply from NATS on \(s) in time"
        case .noResponders(let s): return "no responders on \(s) (is JetStream enabled and the stream available?)"
        case .protocolViolation(let m): return "NATS protocol error: \(m)"
        case .serverError(let m): return "NATS server error: \(m)"
        }
    }
}
