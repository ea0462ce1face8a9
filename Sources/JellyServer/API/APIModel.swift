import Foundation
import JellyCore
import NIOCore

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

/// A lock, and with `load` the partition's objects. Written by hand rather than by
/// JSONEncoder: a session start carries every value in base64, and JSONEncoder checked each of
/// those characters for escapes (3.5% of the server's CPU in `jelly bench --url`).
struct LockResponseBody {
    var lock: LockInfo
    var objects: [StoredObject]?

    init(_ lock: LockInfo, objects: [StoredObject]? = nil) {
        self.lock = lock
        self.objects = objects
    }

    /// `{"expires_at_ms","objects"?,"owner","token"}`, keys sorted as JSONEncoder's `.sortedKeys`.
    var json: ByteBuffer {
        var out = JSONText(capacity: 96 + (objects ?? []).reduce(0) { $0 + $1.value.count * 4 / 3 + $1.key.utf8.count + 128 })
        out.raw("{\"expires_at_ms\":\(lock.expiresAtMilliseconds)")
        if let objects {
            out.raw(",\"objects\":[")
            for (i, object) in objects.enumerated() {
                if i > 0 { out.raw(",") }
                out.raw("{\"content_type\":")
                out.string(object.contentType)
                out.raw(",\"key\":")
                out.string(object.key)
                out.raw(",\"read\":\"\(object.access.read.name)\",\"value_base64\":\"")
                out.raw(Data(object.value).base64EncodedString())
                out.raw("\",\"version\":\(object.version),\"write\":\"\(object.access.write.name)\"}")
            }
            out.raw("]")
        }
        out.raw(",\"owner\":")
        out.string(lock.owner)
        out.raw(",\"token\":\(lock.token.rawValue)}")
        return out.buffer
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
