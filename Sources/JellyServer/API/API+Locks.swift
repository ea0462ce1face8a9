import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

/// Locks: acquire (and load), renew, transfer, release, inspect, break.
extension API {
    func acquire(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(LockRequestBody.self, request)
        try await auth.identify(request).requireServer("take locks")
        if body.load == true {
            let (lock, objects) = try await store.acquireLockAndLoad(partition: partition, owner: body.owner, ttlMilliseconds: body.ttl_ms)
            return lockAnswer(LockResponseBody(lock, objects: objects))
        }
        return lockAnswer(LockResponseBody(try await store.acquireLock(partition: partition, owner: body.owner, ttlMilliseconds: body.ttl_ms)))
    }

    func renew(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(RenewRequestBody.self, request)
        try await auth.identify(request).requireServer("renew locks")
        return lockAnswer(LockResponseBody(try await store.renewLock(partition: partition, token: LockToken(body.token), ttlMilliseconds: body.ttl_ms)))
    }

    func transfer(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(TransferRequestBody.self, request)
        try await auth.identify(request).requireServer("transfer locks")
        return lockAnswer(LockResponseBody(try await store.transferLock(partition: partition, token: LockToken(body.token), to: body.to_owner, ttlMilliseconds: body.ttl_ms)))
    }

    func release(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        guard let token = try lockToken(request.headers) else { throw APIError.badRequest("releasing a lock needs the Jelly-Lock-Token header") }
        try await auth.identify(request).requireServer("release locks")
        try await store.releaseLock(partition: partition, token: token)
        return Response(status: .noContent)
    }

    func inspect(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        try await auth.identify(request).requireServer("inspect locks")
        guard let lock = try await store.inspectLock(partition: partition) else {
            throw APIError.notFound("partition \(Names.quoted(partition)) is not locked")
        }
        return lockAnswer(LockResponseBody(lock))
    }

    /// Administrative: removes the lock whoever holds it (a game server that will never come
    /// back). The holder's token is fenced from then on.
    func breakLock(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        try await auth.identify(request).requireAdmin("break locks")
        guard let lock = try await store.breakLock(partition: partition) else {
            throw APIError.notFound("partition \(Names.quoted(partition)) is not locked")
        }
        return lockAnswer(LockResponseBody(lock))
    }

    func lockAnswer(_ body: LockResponseBody) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body.json))
    }
}
