import JellyCore

/// A value as the replica holds it: the bytes and their content type.
public struct ReplicaValue: Hashable, Sendable {
    public var value: [UInt8]
    public var contentType: String

    public init(_ value: [UInt8], contentType: String = defaultContentType) {
        self.value = value
        self.contentType = contentType
    }
}

/// An object as the game sees it: the server's state with this device's pending edits on top.
public struct ReplicaObject: Hashable, Sendable {
    public var key: String
    public var value: ReplicaValue
    /// The server version this object is at, or was last based on when it has pending edits
    /// (0: never on the server).
    public var serverVersion: UInt64
    /// Whether an edit of this object waits to be pushed.
    public var pending: Bool
}

/// A conflict handed to the game's resolver: the object as the edit was made on (`base`), the
/// edit (`mine`), and what the server has now (`theirs`). nil means "did not exist / deleted".
public struct ReplicaConflict: Sendable {
    public var key: String
    public var base: ReplicaValue?
    public var mine: ReplicaValue?
    public var theirs: ReplicaValue?
    /// The server version of `theirs` (0 when deleted).
    public var theirsVersion: UInt64
}

/// What the game decides for a conflict. The outcome (other than `.theirs`) is pushed as a new
/// edit based on theirs, so it can itself meet a newer conflict and be decided again.
public enum ReplicaResolution: Sendable, Equatable {
    /// Keep my edit (overwrite theirs).
    case mine
    /// Keep theirs; my edit is dropped (reported as `.lostEdit`).
    case theirs
    /// A merged value.
    case merged(ReplicaValue)
    /// Delete the object.
    case delete
}

public typealias ReplicaResolver = @Sendable (ReplicaConflict) -> ReplicaResolution

/// What happened, for the game's UI (`JellyReplica.events()`).
public enum ReplicaEvent: Sendable, Equatable {
    /// The object as the game sees it changed (nil: it is gone), by a local edit or the server.
    case changed(key: String, object: ReplicaObject?)
    /// A conflict was resolved; with `.theirs` the local edit is lost (the default resolver's
    /// outcome), and `mine` says what it was.
    case resolved(key: String, resolution: ReplicaResolution, mine: ReplicaValue?)
    /// The server refused an edit (it is dropped): `code` and `message` say why.
    case rejected(key: String, code: String, message: String)
    /// The server's history changed (a new store, a restore) or this replica was too far
    /// behind: the server state was loaded whole; pending edits are kept.
    case reset
    /// A game server holds the partition's session lock: pushes wait for its release.
    case locked(owner: String)
    /// A sync round finished: how many edits it pushed and changes it pulled.
    case synced(pushed: Int, pulled: Int)
}

/// The replica's durable state, as stored in its local store (docs/sync.md, "Replica").
struct PendingMutation: Codable, Sendable, Equatable {
    var id: UInt64
    var key: String
    /// nil: a delete.
    var value: [UInt8]?
    var contentType: String?
    var baseVersion: UInt64
    /// The object the edit was made on, for the resolver (nil: it did not exist).
    var baseValue: [UInt8]?
    var baseContentType: String?
    /// Sent in a push whose answer is not handled yet: it may have been applied, so it is never
    /// replaced, only followed by a newer edit.
    var sent: Bool

    var mine: ReplicaValue? { value.map { ReplicaValue($0, contentType: contentType ?? defaultContentType) } }
    var base: ReplicaValue? { baseValue.map { ReplicaValue($0, contentType: baseContentType ?? defaultContentType) } }

    var clientMutation: ClientMutation {
        ClientMutation(id: id, key: key, operation: value.map { .put(value: $0, contentType: contentType) } ?? .delete, baseVersion: baseVersion)
    }
}

struct ReplicaState: Codable, Sendable, Equatable {
    var clientID: String
    var nextMutationID: UInt64 = 1
    var cursor: UInt64 = 0
    var epoch: String?
}

/// A server object as the replica last saw it.
struct ServerObject: Sendable, Equatable {
    var version: UInt64
    var value: ReplicaValue
}
