/// Client sync (push): mutations a client replica queued, offline or not, applied in order in
/// one commit with the client's progress (docs/sync.md).

/// One queued client mutation.
public struct ClientMutation: Hashable, Sendable {
    public enum Operation: Hashable, Sendable {
        case put(value: [UInt8], contentType: String?)
        case delete
    }

    /// Strictly increasing per client, from 1.
    public var id: UInt64
    public var key: String
    public var operation: Operation
    /// The object's version the client's edit was made on; 0 when it did not exist (or was
    /// deleted) as far as the client knew.
    public var baseVersion: UInt64

    public init(id: UInt64, key: String, operation: Operation, baseVersion: UInt64) {
        self.id = id
        self.key = key
        self.operation = operation
        self.baseVersion = baseVersion
    }
}

/// The object as it is now, sent back with a conflict ("theirs").
public struct CurrentObject: Hashable, Sendable {
    /// The object's version; for a deleted object its tombstone's version when known, else 0.
    public var version: UInt64
    /// The object, nil when it does not exist. Also nil when the caller may not read it, or
    /// (for a repeated answer) when it changed since the first answer: read the feed then.
    public var object: StoredObject?
    public var deleted: Bool

    public init(version: UInt64, object: StoredObject?, deleted: Bool) {
        self.version = version
        self.object = object
        self.deleted = deleted
    }
}

/// What became of one mutation.
public indirect enum MutationResult: Hashable, Sendable {
    /// Written, at this version (the push's commit).
    case applied(version: UInt64)
    /// The object was not at the mutation's base version; nothing written for it.
    case conflict(CurrentObject)
    /// Not allowed or not valid; nothing written for it. `code` is a `JellyError.Code` name.
    case rejected(code: JellyError.Code, message: String)
    /// Processed by an earlier push: the result it had then, or nil when it is older than the
    /// results a partition keeps per client (`JellyLimits.syncResultsKept`).
    case duplicate(MutationResult?)
}

/// The answer to a push.
public struct SyncResult: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var id: UInt64
        public var result: MutationResult
        public init(id: UInt64, result: MutationResult) {
            self.id = id
            self.result = result
        }
    }

    /// The highest mutation id processed for this client, now or before: everything up to it
    /// can leave the client's queue once its result is handled.
    public var lastMutationID: UInt64
    /// One entry per processed mutation of the push, in order. Mutations after the last entry
    /// were not processed (see `docs/sync.md`: one mutation per key per push).
    public var results: [Entry]

    public init(lastMutationID: UInt64, results: [Entry]) {
        self.lastMutationID = lastMutationID
        self.results = results
    }
}
