import AsyncHTTPClient
import Foundation
import JellyCore
import NIOHTTP1

/// The change feed and client pushes over HTTP API v1 (docs/sync.md). The role is the
/// server's to decide from the credentials: an API key reads and writes as a game server, a
/// client token as its partition's owner, whatever `role` says.
extension JellyClient {
    public func changes(partition: String, since: UInt64, limit: Int, epoch: String?, role: SyncRole) async throws -> ChangeBatch {
        try await changes(partition: partition, since: since, limit: limit, epoch: epoch, waitMilliseconds: 0)
    }

    /// One long-poll of the feed: waits up to `waitMilliseconds` on the server for a change.
    public func changes(partition: String, since: UInt64, limit: Int, epoch: String?, waitMilliseconds: Int) async throws -> ChangeBatch {
        try ChangeFeed.validate(partition: partition, limit: limit, limits: limits)
        var path = "/v1/partitions/\(PercentEncoding.escape(partition))/changes?since=\(since)&limit=\(limit)"
        if waitMilliseconds > 0 { path += "&wait_ms=\(waitMilliseconds)" }
        if let epoch { path += "&epoch=\(PercentEncoding.escape(epoch))" }
        let reply = try await send(.GET, path, idempotent: true, timeoutMilliseconds: Int64(waitMilliseconds) + configuration.requestTimeoutMilliseconds)
        try reply.check()
        return try reply.decode(ChangesBody.self).batch(partition: partition)
    }

    public func waitForChanges(partition: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool {
        try ChangeFeed.validateWait(partition: partition, timeoutMilliseconds: timeoutMilliseconds, limits: limits)
        let batch = try await changes(partition: partition, since: after, limit: 1, epoch: nil, waitMilliseconds: timeoutMilliseconds)
        return batch.next > after || !batch.changes.isEmpty || batch.reset
    }

    public func sync(partition: String, clientID: String, mutations: [ClientMutation], role: SyncRole) async throws -> SyncResult {
        try ClientSync.validate(partition: partition, clientID: clientID, mutations: mutations, limits: limits)
        var list: [[String: Any]] = []
        list.reserveCapacity(mutations.count)
        for m in mutations {
            var entry: [String: Any] = ["id": m.id, "key": m.key, "base_version": m.baseVersion]
            switch m.operation {
            case .put(let value, let contentType):
                entry["op"] = "put"
                entry["value_base64"] = Data(value).base64EncodedString()
                if let contentType { entry["content_type"] = contentType }
            case .delete:
                entry["op"] = "delete"
            }
            list.append(entry)
        }
        // A push is safe to repeat: its mutations' ids make a repeat a duplicate.
        let reply = try await send(.POST, "/v1/partitions/\(PercentEncoding.escape(partition))/sync", json: ["client_id": clientID, "mutations": list], idempotent: true)
        try reply.check()
        let body = try reply.decode(SyncBody.self)
        return SyncResult(lastMutationID: body.last_mutation_id, results: try body.results.map { SyncResult.Entry(id: $0.id ?? 0, result: try $0.decoded()) })
    }
}

struct ChangesBody: Decodable {
    /// Present on feed socket messages.
    var partition: String?
    var epoch: String
    var floor: UInt64
    var next: UInt64
    var reset: Bool
    var more: Bool?
    var changes: [WireObject]
    var lock: Lock?
    struct Lock: Decodable { var owner: String; var expires_at_ms: Int64 }

    func batch(partition: String) throws -> ChangeBatch {
        var out: [Change] = []
        out.reserveCapacity(changes.count)
        for c in changes {
            let key = c.key ?? ""
            out.append(Change(key: key, version: c.version, object: try c.object(key: key)))
        }
        // The holder's token is never sent: 0 stands for "someone holds it".
        let held = lock.map { LockInfo(partition: partition, owner: $0.owner, token: LockToken(0), expiresAtMilliseconds: $0.expires_at_ms) }
        return ChangeBatch(epoch: epoch, floor: floor, next: next, reset: reset, changes: out, more: more ?? false, lock: held)
    }
}

struct SyncBody: Decodable {
    var last_mutation_id: UInt64
    var results: [Result]

    final class Result: Decodable {
        var id: UInt64?
        var status: String
        var version: UInt64?
        var current: WireObject?
        var error: String?
        var message: String?
        var result: Result?

        func decoded() throws -> MutationResult {
            switch status {
            case "applied":
                guard let version else { throw JellyError(.io, "the server's applied result has no version") }
                return .applied(version: version)
            case "conflict":
                guard let c = current else { throw JellyError(.io, "the server's conflict result has no current object") }
                return .conflict(CurrentObject(version: c.version, object: try c.object(key: ""), deleted: c.deleted))
            case "rejected":
                return .rejected(code: Reply.code(forAPIError: error ?? ""), message: message ?? "rejected")
            case "duplicate":
                return .duplicate(try result?.decoded())
            default:
                throw JellyError(.io, "the server's result status \(Names.quoted(status)) is unknown")
            }
        }
    }

}

/// An object as a feed change or a conflict's current object carries it: a tombstone when
/// `deleted` (or, for a conflict, when the caller may not read it), else the value in base64.
struct WireObject: Decodable {
    var key: String?
    var version: UInt64
    var deleted: Bool
    var content_type: String?
    var value_base64: String?
    var read: String?
    var write: String?

    func object(key: String) throws -> StoredObject? {
        guard !deleted, let text = value_base64 else { return nil }
        guard let data = Data(base64Encoded: text) else {
            throw JellyError(.io, "the server's object \(Names.quoted(key)) has no valid value_base64")
        }
        return StoredObject(
            key: key, version: version, contentType: content_type ?? defaultContentType, value: [UInt8](data),
            access: ObjectAccess(read: read.flatMap(ObjectAccess.Read.init(name:)) ?? .server, write: write.flatMap(ObjectAccess.Write.init(name:)) ?? .server)
        )
    }
}
