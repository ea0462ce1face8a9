import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

/// Client replicas: the change feed (long-poll) and the push (docs/sync.md).
extension API {
    /// `GET /v1/partitions/{p}/changes?since=V&limit=N&wait_ms=W&epoch=E`.
    func changes(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let query = try FeedQuery(request.uri.queryParameters, limits: store.limits)
        let role = try await syncRole(request, partition: partition)
        let body = ChangesResponseBody(try await changes(partition: partition, query: query, role: role))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body.json))
    }

    /// One long-poll: the changes after `since`, waiting up to `wait_ms` for the first one the
    /// caller can see, or for the lock to be taken or released (a client's push waits for that).
    /// Changes a client may not see move the cursor and the wait goes on.
    func changes(partition: String, query: FeedQuery, role: SyncRole) async throws -> ChangeBatch {
        var batch = try await store.changes(partition: partition, since: query.since, limit: query.limit, epoch: query.epoch, role: role)
        let locked = batch.lock != nil
        let deadline = ContinuousClock.now + .milliseconds(query.waitMilliseconds)
        while batch.changes.isEmpty && !batch.reset && !batch.more && (batch.lock != nil) == locked {
            let remaining = ContinuousClock.now.duration(to: deadline)
            let milliseconds = Int(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)
            guard milliseconds > 0 else { break }
            let changed = try await store.waitForChanges(partition: partition, after: batch.next, timeoutMilliseconds: milliseconds)
            if !changed { break }
            batch = try await store.changes(partition: partition, since: batch.next, limit: query.limit, epoch: query.epoch, role: role)
        }
        return batch
    }

    /// `POST /v1/partitions/{p}/sync`.
    func sync(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(SyncRequestBody.self, request)
        let mutations = try body.mutations.map { try $0.mutation() }
        let role = try await syncRole(request, partition: partition)
        let result = try await store.sync(partition: partition, clientID: body.client_id, mutations: mutations, role: role)
        return try json(SyncResponseBody(result))
    }

    /// A game server (any API key) reads and writes as `.server`; a client token only its own
    /// partition, as `.owner`.
    func syncRole(_ request: Request, partition: String) async throws -> SyncRole {
        let identity = try await auth.identify(request)
        if identity.isServer { return .server }
        try identity.requireOwnPartition(partition)
        return .owner
    }
}

/// The change feed's query parameters.
struct FeedQuery: Sendable {
    var since: UInt64 = 0
    var limit: Int
    var waitMilliseconds = 0
    var epoch: String?

    init(_ query: Hummingbird.Parameters, limits: JellyLimits) throws {
        try self.init(get: { query.get($0) }, limits: limits)
    }

    /// From any source of query parameters (`get` answers one by name).
    init(get: (String) -> String?, limits: JellyLimits) throws {
        limit = min(100, limits.changesLimitMax)
        if let text = get("since") {
            guard let v = WholeNumbers.parse(text) else { throw APIError.badRequest("since must be a whole number (a cursor from `next`), not \(Names.quoted(text))") }
            since = v
        }
        if let text = get("limit") {
            guard let n = WholeNumbers.parse(text).map({ Int(clamping: $0) }), n >= 1, n <= limits.changesLimitMax else {
                throw APIError.badRequest("limit must be a whole number from 1 to \(limits.changesLimitMax)")
            }
            limit = n
        }
        if let text = get("wait_ms") {
            guard let n = WholeNumbers.parse(text).map({ Int(clamping: $0) }), n <= limits.changesWaitMillisecondsMax else {
                throw APIError.badRequest("wait_ms must be a whole number from 0 to \(limits.changesWaitMillisecondsMax)")
            }
            waitMilliseconds = n
        }
        if let text = get("epoch"), !text.isEmpty { epoch = text }
    }
}

/// A feed answer, and a feed socket's message: `{"changes", "epoch", "floor", "lock", "more",
/// "next", "partition"?, "reset"}` with keys sorted, written by hand from the batch (a socket
/// sends one per batch of commits; JSONEncoder checked every base64 character for escapes).
struct ChangesResponseBody {
    let batch: ChangeBatch
    /// Set on a feed socket's messages, which may come from several partitions.
    let partition: String?

    init(_ batch: ChangeBatch, partition: String? = nil) {
        self.batch = batch
        self.partition = partition
    }

    var json: ByteBuffer {
        var out = JSONText(capacity: 160 + batch.changes.reduce(0) { $0 + ($1.object?.value.count ?? 0) * 4 / 3 + $1.key.utf8.count + 160 })
        out.raw("{\"changes\":[")
        for (i, c) in batch.changes.enumerated() {
            if i > 0 { out.raw(",") }
            guard let o = c.object else {
                out.raw("{\"deleted\":true,\"key\":")
                out.string(c.key)
                out.raw(",\"version\":\(c.version)}")
                continue
            }
            out.raw("{\"content_type\":")
            out.string(o.contentType)
            out.raw(",\"deleted\":false,\"key\":")
            out.string(c.key)
            out.raw(",\"read\":\"\(o.access.read.name)\",\"size\":\(o.value.count),\"value_base64\":\"")
            out.raw(Data(o.value).base64EncodedString())
            out.raw("\",\"version\":\(c.version),\"write\":\"\(o.access.write.name)\"}")
        }
        out.raw("],\"epoch\":")
        out.string(batch.epoch)
        out.raw(",\"floor\":\(batch.floor),\"lock\":")
        if let lock = batch.lock {
            // The holder's token is never sent (it would let the reader write under the lock).
            out.raw("{\"expires_at_ms\":\(lock.expiresAtMilliseconds),\"owner\":")
            out.string(lock.owner)
            out.raw("}")
        } else {
            out.raw("null")
        }
        out.raw(",\"more\":\(batch.more),\"next\":\(batch.next)")
        if let partition {
            out.raw(",\"partition\":")
            out.string(partition)
        }
        out.raw(",\"reset\":\(batch.reset)}")
        return out.buffer
    }
}

struct SyncRequestBody: Decodable {
    var client_id: String
    var mutations: [Mutation]

    struct Mutation: Decodable {
        var id: UInt64
        var key: String
        var op: String
        var base_version: UInt64
        var value_base64: String?
        var content_type: String?

        func mutation() throws -> ClientMutation {
            if let content_type {
                do {
                    try Names.validateContentType(content_type, maxBytes: JellyLimits.default.contentTypeBytesMax)
                } catch let error as JellyError {
                    throw APIError.badRequest("mutation \(id): \(error.message)")
                }
            }
            switch op {
            case "put":
                guard let text = value_base64 else { throw APIError.badRequest("mutation \(id): a put needs value_base64") }
                guard let data = Data(base64Encoded: text) else { throw APIError.badRequest("mutation \(id): value_base64 is not valid base64") }
                return ClientMutation(id: id, key: key, operation: .put(value: [UInt8](data), contentType: content_type), baseVersion: base_version)
            case "delete":
                if value_base64 != nil { throw APIError.badRequest("mutation \(id): a delete takes no value_base64") }
                return ClientMutation(id: id, key: key, operation: .delete, baseVersion: base_version)
            default:
                throw APIError.badRequest("mutation \(id): op must be put or delete, not \(Names.quoted(op))")
            }
        }
    }
}

struct SyncResponseBody: Encodable {
    var last_mutation_id: UInt64
    var results: [Result]

    struct Current: Encodable {
        var version: UInt64
        var deleted: Bool
        var content_type: String?
        var value_base64: String?
        var read: String?
        var write: String?
    }

    /// One result; `id` is absent on the first result inside a duplicate.
    final class Result: Encodable {
        var id: UInt64?
        var status: String
        var version: UInt64?
        var current: Current?
        var error: String?
        var message: String?
        /// A duplicate's first result; null when it is no longer kept.
        var result: Result?

        init(id: UInt64?, _ r: MutationResult) {
            self.id = id
            switch r {
            case .applied(let v):
                status = "applied"
                version = v
            case .conflict(let c):
                status = "conflict"
                current = Current(
                    version: c.version, deleted: c.deleted, content_type: c.object?.contentType,
                    value_base64: c.object.map { Data($0.value).base64EncodedString() },
                    read: c.object?.access.read.name, write: c.object?.access.write.name
                )
            case .rejected(let code, let text):
                status = "rejected"
                error = APIError(JellyError(code, text)).code
                message = text
            case .duplicate(let first):
                status = "duplicate"
                result = first.map { Result(id: nil, $0) }
            }
        }

        enum CodingKeys: String, CodingKey { case id, status, version, current, error, message, result }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(id, forKey: .id)
            try c.encode(status, forKey: .status)
            try c.encodeIfPresent(version, forKey: .version)
            try c.encodeIfPresent(current, forKey: .current)
            try c.encodeIfPresent(error, forKey: .error)
            try c.encodeIfPresent(message, forKey: .message)
            if status == "duplicate" { try c.encode(result, forKey: .result) }
        }
    }

    init(_ r: SyncResult) {
        last_mutation_id = r.lastMutationID
        results = r.results.map { Result(id: $0.id, $0.result) }
    }
}
