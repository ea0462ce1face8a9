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

/// Who besides game servers may read and write an object over the network (HTTP API v1's
/// `Jelly-Read` / `Jelly-Write`). Stored with the object; the embedded API ignores it, the HTTP
/// server enforces it for client tokens (whose subject is a partition).
public struct ObjectAccess: Hashable, Sendable, CustomStringConvertible {
    public enum Read: UInt8, Sendable, CaseIterable {
        /// Game servers only (the default).
        case server = 0
        /// Also the client whose token names this partition.
        case owner = 1
        /// Also any client with a valid token, of any partition (read only).
        case `public` = 2

        /// The word of HTTP API v1 (`Jelly-Read`, batch `read`, list `read`).
        public var name: String {
            switch self {
            case .server: return "server"
            case .owner: return "owner"
            case .public: return "public"
            }
        }

        public init?(name: String) {
            guard let match = Read.allCases.first(where: { $0.name == name }) else { return nil }
            self = match
        }
    }

    public enum Write: UInt8, Sendable, CaseIterable {
        /// Game servers only (the default).
        case server = 0
        /// Also the client whose token names this partition, while no game server holds the lock.
        case owner = 1

        /// The word of HTTP API v1 (`Jelly-Write`, batch `write`, list `write`).
        public var name: String {
            switch self {
            case .server: return "server"
            case .owner: return "owner"
            }
        }

        public init?(name: String) {
            guard let match = Write.allCases.first(where: { $0.name == name }) else { return nil }
            self = match
        }
    }

    public var read: Read
    public var write: Write

    public init(read: Read = .server, write: Write = .server) {
        self.read = read
        self.write = write
    }

    /// Server-only, the default of every object.
    public static let serverOnly = ObjectAccess()

    /// One byte: bits 0–1 read, bit 2 write, the rest zero (docs/format.md, record `flags`).
    public var flags: UInt8 { read.rawValue | write.rawValue << 2 }

    public init?(flags: UInt8) {
        guard flags & ~0b111 == 0, let read = Read(rawValue: flags & 0b11), let write = Write(rawValue: flags >> 2) else { return nil }
        self.init(read: read, write: write)
    }

    public var description: String { "read: \(read), write: \(write)" }
}

/// One operation of an atomic batch. All operations of a batch target one partition.
public enum WriteOperation: Hashable, Sendable {
    case put(
        key: String, value: [UInt8], contentType: String? = nil, condition: WriteCondition = .none,
        access: ObjectAccess = .serverOnly
    )
    /// Deleting a missing object without a condition is a no-op; with `.ifVersion` it fails.
    case delete(key: String, condition: WriteCondition = .none)

    public var key: String {
        switch self {
        case .put(let key, _, _, _, _), .delete(let key, _): return key
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
    public var access: ObjectAccess

    public init(key: String, version: UInt64, size: Int, contentType: String, access: ObjectAccess = .serverOnly) {
        self.key = key
        self.version = version
        self.size = size
        self.contentType = contentType
        self.access = access
    }
}

/// An object with its value.
public struct StoredObject: Hashable, Sendable {
    public var key: String
    public var version: UInt64
    public var contentType: String
    public var value: [UInt8]
    public var access: ObjectAccess

    public init(key: String, version: UInt64, contentType: String, value: [UInt8], access: ObjectAccess = .serverOnly) {
        self.key = key
        self.version = version
        self.contentType = contentType
        self.value = value
        self.access = access
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

/// One partition in a store-wide listing (`listPartitions`): for operators and the console.
public struct PartitionSummary: Hashable, Sendable {
    public var partition: String
    /// Objects it holds (deleted ones not counted).
    public var objects: Int
    /// Its lock, while live.
    public var lock: LockInfo?

    public init(partition: String, objects: Int, lock: LockInfo?) {
        self.partition = partition
        self.objects = objects
        self.lock = lock
    }
}

public struct PartitionListing: Hashable, Sendable {
    public var partitions: [PartitionSummary]
    /// Pass as `after` to get the next page; nil on the last page.
    public var next: String?

    public init(partitions: [PartitionSummary], next: String?) {
        self.partitions = partitions
        self.next = next
    }
}

extension PartitionListing {
    /// Pages `candidates` (partition names in any order, duplicates allowed) by ascending byte
    /// order after `after`, keeping those `summary` says to list: the rule both backends share.
    public static func page(
        _ candidates: some Sequence<String>, prefix: String?, after: String?, limit: Int,
        summary: (String) async throws -> PartitionSummary?
    ) async rethrows -> PartitionListing {
        let afterBytes = after.map { Array($0.utf8) }
        let prefixBytes = Array((prefix ?? "").utf8)
        let names = Set(candidates).filter { name in
            let b = Array(name.utf8)
            return b.starts(with: prefixBytes) && (afterBytes.map { $0.lexicographicallyPrecedes(b) } ?? true)
        }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        var page: [PartitionSummary] = []
        for name in names {
            guard let s = try await summary(name) else { continue }
            if page.count == limit { return PartitionListing(partitions: page, next: page.last?.partition) }
            page.append(s)
        }
        return PartitionListing(partitions: page, next: nil)
    }
}
