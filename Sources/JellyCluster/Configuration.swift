import JellyCore
import Logging
import NATSClient

/// How a Jelly node uses a NATS JetStream cluster (docs/cluster.md).
public struct ClusterStoreConfiguration: Sendable {
    /// Servers, credentials and TLS of the NATS connection.
    public var nats: NATSOptions
    /// Streams the partitions hash onto. Fixed when the streams are created: every node must use
    /// the same number (a node refuses to start on streams made with another).
    public var shards: Int = 8
    /// Copies of each stream (JetStream's `num_replicas`): 1, 3 or 5. Default 3.
    public var replicas: Int = 3
    /// Stream names are `<streamPrefix>_<shard>`; subjects `<subjectPrefix>.<shard>.…`.
    public var streamPrefix: String = "JELLY"
    public var subjectPrefix: String = "jelly"
    /// The limits this node enforces. The value limit is lowered to fit the servers' max_payload.
    public var limits: JellyLimits = .default
    /// Lease expiry is checked against this clock (and the expiry stored with the lease).
    public var clock: any JellyClock = SystemClock()
    /// How long one JetStream call may take before the node answers `unavailable`.
    public var requestTimeout: Duration = .seconds(5)
    /// How many times a write is re-decided after a concurrent change (wrong last sequence) or
    /// a busy fence (another fenced publish on the same lock in flight) before it gives up.
    public var conflictRetries: Int = 50
    public var logger: Logger = Logger(label: "jelly.cluster")

    /// Largest number of streams a cluster may be split into.
    public static let shardsMax = 1024
    /// Bytes reserved in each message for Jelly's and JetStream's headers.
    public static let headerReserveBytes = 4096

    public init(nats: NATSOptions) {
        self.nats = nats
    }

    public func validate() throws {
        guard (1...Self.shardsMax).contains(shards) else {
            throw JellyError(.invalidArgument, "cluster shards must be 1...\(Self.shardsMax), not \(shards)")
        }
        guard [1, 3, 5].contains(replicas) else {
            throw JellyError(.invalidArgument, "cluster replicas must be 1, 3 or 5 (JetStream's Raft groups), not \(replicas)")
        }
        guard requestTimeout > .zero else {
            throw JellyError(.invalidArgument, "the NATS request timeout must be positive, not \(requestTimeout); 5000 ms is a good start")
        }
        guard conflictRetries >= 1 else {
            throw JellyError(.invalidArgument, "conflictRetries must be at least 1, not \(conflictRetries)")
        }
        for (name, value) in [("stream prefix", streamPrefix), ("subject prefix", subjectPrefix)] {
            guard !value.isEmpty, value.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }) else {
                throw JellyError(.invalidArgument, "cluster \(name) \(Names.quoted(value)) must be letters, digits, - or _")
            }
        }
        try limits.validate()
    }
}
