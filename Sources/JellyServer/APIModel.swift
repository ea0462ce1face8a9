import Foundation
import JellyCore

// The JSON bodies of HTTP API v1 (docs/http-api.md, openapi.yaml).

struct LockRequestBody: Decodable {
    var owner: String
    var ttl_ms: Int64
    var load: Bool?
}

struct RenewRequestBody: Decodable {
    var token: UInt64
    var ttl_ms: Int64
}

struct TransferRequestBody: Decodable {
    var token: UInt64
    var to_owner: String
    var ttl_ms: Int64
}

struct BatchRequestBody: Decodable {
    var lock_token: UInt64?
    var release_lock: Bool?
    var operations: [BatchOperation]

    struct BatchOperation: Decodable {
        var op: String
        var key: String
        var value_base64: String?
        var content_type: String?
        var if_version: UInt64?
        var if_absent: Bool?
        /// Access of a put: "server" (default), "owner" or "public" / "server" or "owner".
        var read: String?
        var write: String?
    }
}

struct LockResponseBody: Encodable {
    var token: UInt64
    var owner: String
    var expires_at_ms: Int64
    var objects: [LoadedObject]?

    struct LoadedObject: Encodable {
        var key: String
        var version: UInt64
        var content_type: String
        var value_base64: String
        var read: String
        var write: String
    }

    init(_ lock: LockInfo, objects: [StoredObject]? = nil) {
        token = lock.token.rawValue
        owner = lock.owner
        expires_at_ms = lock.expiresAtMilliseconds
        self.objects = objects?.map {
            LoadedObject(key: $0.key, version: $0.version, content_type: $0.contentType, value_base64: Data($0.value).base64EncodedString(),
                         read: $0.access.read.name, write: $0.access.write.name)
        }
    }
}

struct ListResponseBody: Encodable {
    var objects: [Summary]
    var next: String?

    struct Summary: Encodable {
        var key: String
        var version: UInt64
        var size: Int
        var content_type: String
        var read: String
        var write: String
    }

    enum CodingKeys: String, CodingKey { case objects, next }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(objects, forKey: .objects)
        try c.encode(next, forKey: .next) // null on the last page, not omitted
    }
}

struct BatchResponseBody: Encodable {
    var version: UInt64?
    var versions: [String: UInt64]
    /// Every key of the batch with its version before the batch (null: it did not exist).
    var previous_versions: [String: UInt64?]

    enum CodingKeys: String, CodingKey { case version, versions, previous_versions }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(versions, forKey: .versions)
        try c.encode(previous_versions, forKey: .previous_versions)
    }
}
