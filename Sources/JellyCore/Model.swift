/// A lock's fencing token: strictly increasing per partition, never reused, durable before
/// the call that issued it returns.
public struct LockToken: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static func < (a: LockToken, b: LockToken) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A session lease on a partition.
public struct LockInfo: Hashable, Sendable {
    public var partition: String
    public var owner: String
    public var token: LockToken
    /// Wall-clock expiry, milliseconds since 1970 (persisted as such).
    public var expiresAtMilliseconds: Int64

    public init(partition: String, owner: String, token: LockToken, expiresAtMilliseconds: Int64) {
        self.partition = partition
        self.owner = owner
        self.token = token
        self.expiresAtMilliseconds = expiresAtMilliseconds
    }
}

/// A condition a write must meet, checked atomically with the write.
public enum WriteCondition: Hashable, Sendable {
    case none
    /// Compare-and-set: the object's current version must be exactly this.
    case ifVersion(UInt64)
    /// The object must not exist.
    case ifAbsent
}

/// One operation of an atomic batch. All operations of a batch target one partition.
public enum WriteOperation: Hashable, Sendable {
    case put(key: String, value: [UInt8], contentType: String? = nil, condition: WriteCondition = .none)
    /// Deleting a missing object without a condition is a no-op; with `.ifVersion` it fails.
    case delete(key: String, condition: WriteCondition = .none)

    public var key: String {
        switch self {
        case .put(let key, _, _, _), .delete(let key, _): return key
        }
    }
}

/// What a committed batch did.
public struct WriteResult: Hashable, Sendable {
    /// The batch's version (every object it wrote carries it), or nil when the batch changed
    /// nothing (only deletes of missing objects, and no lock release).
    public var version: UInt64?
    /// For each operation, in order: whether it changed something. A put always does; a delete
    /// does when the object existed.
    public var applied: [Bool]
    /// For each operation, in order: the object's version before the batch, or nil when it did
    /// not exist (a put that created it; a delete of a missing object).
    public var previousVersions: [UInt64?]

    public init(version: UInt64?, applied: [Bool], previousVersions: [UInt64?]) {
        self.version = version
        self.applied = applied
        self.previousVersions = previousVersions
    }
}

/// Metadata of a stored object.
public struct ObjectSummary: Hashable, Sendable {
    public var key: String
    public var version: UInt64
    public var size: Int
    public var contentType: String

    public init(key: String, version: UInt64, size: Int, contentType: String) {
        self.key = key
        self.version = version
        self.size = size
        self.contentType = contentType
    }
}

/// An object with its value.
public struct StoredObject: Hashable, Sendable {
    public var key: String
    public var version: UInt64
    public var contentType: String
    public var value: [UInt8]

    public init(key: String, version: UInt64, contentType: String, value: [UInt8]) {
        self.key = key
        self.version = version
        self.contentType = contentType
        self.value = value
    }
}

/// A page of a partition's objects in ascending byte order of key.
public struct ObjectListing: Hashable, Sendable {
    public var objects: [ObjectSummary]
    /// Pass as `after` to get the next page; nil on the last page.
    public var next: String?

    public init(objects: [ObjectSummary], next: String?) {
        self.objects = objects
        self.next = next
    }
}

/// The content type stored when a put does not name one.
public let defaultContentType = "application/octet-stream"
