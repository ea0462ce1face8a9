import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

/// Objects: PUT, GET, DELETE, list, batch; and a client's own writes.
extension API {
    /// A PUT of one object, parsed and checked before its body is read: every 400 it can get.
    struct PutObject {
        var partition: String
        var key: String
        var token: LockToken?
        var condition: WriteCondition
        var access: ObjectAccess?
        var contentType: String?

        /// The write a game server's PUT makes.
        func operation(_ value: [UInt8]) -> WriteOperation {
            .put(key: key, value: value, contentType: contentType ?? defaultContentType, condition: condition, access: access ?? .serverOnly)
        }
    }

    func parsePut(_ headers: HTTPFields, rawPartition: String, rawKey: String) throws -> PutObject {
        let (partition, key) = try names(rawPartition: rawPartition, rawKey: rawKey)
        let token = try lockToken(headers)
        var condition = try ifMatchCondition(headers)
        if let ifNoneMatch = headers[.ifNoneMatch] {
            guard ifNoneMatch.trimmingOWS() == "*" else {
                throw APIError.badRequest("If-None-Match on PUT must be *")
            }
            if case .ifVersion = condition { throw APIError.badRequest("send If-Match or If-None-Match, not both") }
            condition = .ifAbsent
        }
        let access = try objectAccess(headers)
        let contentType = headers[.contentType]
        if let contentType { try Names.validateContentType(contentType, maxBytes: store.limits.contentTypeBytesMax) }
        return PutObject(partition: partition, key: key, token: token, condition: condition, access: access, contentType: contentType)
    }

    /// 201 (created) or 200 (replaced), with the version as ETag and in the body.
    static func putAnswer(_ result: WriteResult) throws -> Answer {
        guard let version = result.version else { throw APIError(status: .internalServerError, code: "internal", message: "a put committed without a version") }
        let previousVersion = result.previousVersions.first.flatMap { $0 }
        // Written by hand: this is the hot path, and JSONEncoder costs more than the rest of it.
        let previous = previousVersion.map { String($0) } ?? "null"
        return Answer(
            status: previousVersion == nil ? .created : .ok,
            headers: [.contentType: "application/json", .eTag: "\"\(version)\""],
            body: ByteBuffer(string: "{\"previous_version\":\(previous),\"version\":\(version)}")
        )
    }

    func putObject(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let put = try parsePut(request.headers, rawPartition: context.parameters.get("partition") ?? "", rawKey: context.parameters.get("key") ?? "")
        try checkDeclaredLength(request, limit: valueBytesMax, what: "value")
        let identity = try await auth.identify(request)
        let value = try await body(request, limit: valueBytesMax, what: "value")

        let result: WriteResult
        if identity.isServer {
            result = try await store.write(partition: put.partition, [put.operation(value)], lockToken: put.token, releaseLock: false)
        } else {
            if put.access != nil { throw APIError.forbidden("only game servers set Jelly-Read and Jelly-Write") }
            result = try await clientWrite(identity, partition: put.partition, key: put.key, token: put.token, condition: put.condition) { current in
                .put(key: put.key, value: value, contentType: put.contentType ?? current.contentType, condition: .ifVersion(current.version), access: current.access)
            }
        }
        return try Self.putAnswer(result).response
    }

    func getObject(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, key) = try names(context, withKey: true)
        let identity = try await auth.identify(request)
        if case .client(let own) = identity, own != partition {
            // Another partition: only its public objects, and nothing is said of the rest.
            guard let object = try await store.get(partition: partition, key: key), object.access.read == .public else {
                throw APIError.forbidden("a client token for partition \(Names.quoted(own)) may read only public objects of partition \(Names.quoted(partition))")
            }
            return objectResponse(object, request)
        }
        guard let object = try await store.get(partition: partition, key: key) else {
            throw APIError.notFound("no object \(Names.quoted(key)) in partition \(Names.quoted(partition))")
        }
        guard identity.mayRead(object.access, partition: partition) else {
            throw APIError.forbidden("object \(Names.quoted(key)) is readable by game servers only (Jelly-Read: server)")
        }
        return objectResponse(object, request)
    }

    func objectResponse(_ object: StoredObject, _ request: Request) -> Response {
        let etag = "\"\(object.version)\""
        var headers: HTTPFields = [.eTag: etag]
        headers[jellyRead] = object.access.read.name
        headers[jellyWrite] = object.access.write.name
        if let ifNoneMatch = request.headers[.ifNoneMatch],
           ifNoneMatch.split(separator: ",").contains(where: { $0.trimmingOWS() == etag }) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = object.contentType
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: object.value)))
    }

    func deleteObject(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, key) = try names(context, withKey: true)
        let token = try lockToken(request.headers)
        let condition = try ifMatchCondition(request.headers)
        let identity = try await auth.identify(request)
        let result: WriteResult
        if identity.isServer {
            result = try await store.write(partition: partition, [.delete(key: key, condition: condition)], lockToken: token, releaseLock: false)
        } else {
            result = try await clientWrite(identity, partition: partition, key: key, token: token, condition: condition) { current in
                .delete(key: key, condition: .ifVersion(current.version))
            }
        }
        guard result.applied.first == true, let previous = result.previousVersions.first.flatMap({ $0 }) else {
            throw APIError.notFound("no object \(Names.quoted(key)) in partition \(Names.quoted(partition))")
        }
        return Response(status: .noContent, headers: [jellyPreviousVersion: String(previous)])
    }

    /// A client's write: only to its own partition, without a lock token (so never while a game
    /// server holds the lock: the lock rule answers 423), and only to an object a server made
    /// client-writable. The object's current version is checked and then written with
    /// compare-and-set, so a server's concurrent change is never overwritten blindly.
    func clientWrite(
        _ identity: Identity, partition: String, key: String, token: LockToken?,
        condition: WriteCondition, _ operation: (StoredObject) -> WriteOperation
    ) async throws -> WriteResult {
        try identity.requireOwnPartition(partition)
        if token != nil { throw APIError.forbidden("client tokens may not use lock tokens; locks belong to game servers") }
        for _ in 0..<Self.clientWriteAttempts {
            // The lock rule first (423 before 412 and 404), as for a server's write.
            if let lock = try await store.inspectLock(partition: partition) {
                throw APIError(JellyError(.locked, "partition \(Names.quoted(partition)) is locked by a game server; clients may write only while it is unlocked", holder: lock))
            }
            guard let current = try await store.get(partition: partition, key: key) else {
                if case .ifVersion = condition {
                    throw APIError(JellyError(.preconditionFailed, "object \(Names.quoted(key)) does not exist"))
                }
                throw APIError.forbidden("clients may write only objects a game server created as client-writable (Jelly-Write: owner); \(Names.quoted(key)) does not exist")
            }
            guard current.access.write == .owner else {
                throw APIError.forbidden("object \(Names.quoted(key)) is writable by game servers only (Jelly-Write: server)")
            }
            switch condition {
            case .ifVersion(let v) where v != current.version:
                throw APIError(JellyError(.preconditionFailed, "object \(Names.quoted(key)) is at version \(current.version), not \(v)"))
            case .ifAbsent:
                throw APIError(JellyError(.preconditionFailed, "object \(Names.quoted(key)) exists (version \(current.version))"))
            default: break
            }
            do {
                return try await store.write(partition: partition, [operation(current)], lockToken: nil, releaseLock: false)
            } catch let error as JellyError where error.code == .preconditionFailed {
                continue // another writer got in between: check again
            }
        }
        throw APIError(JellyError(.unavailable, "object \(Names.quoted(key)) kept changing while this write was checked; retry"))
    }

    func listObjects(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let query = request.uri.queryParameters
        let limit = try pageLimit(request)
        let after = query.get("after")
        if let after { try Names.validate(after, as: .key, maxBytes: store.limits.keyBytesMax) }
        let identity = try await auth.identify(request)
        try identity.requireOwnPartition(partition)
        let page = try await store.list(partition: partition, after: after, limit: limit)
        // A client sees only what it may read; the cursor still walks every key.
        return try json(ListResponseBody(
            objects: page.objects.filter { identity.mayRead($0.access, partition: partition) }.map {
                .init(key: $0.key, version: $0.version, size: $0.size, content_type: $0.contentType,
                      read: $0.access.read.name, write: $0.access.write.name)
            },
            next: page.next
        ))
    }

    func batch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(BatchRequestBody.self, request)
        var operations: [WriteOperation] = []
        operations.reserveCapacity(body.operations.count)
        for (i, op) in body.operations.enumerated() {
            let condition: WriteCondition
            switch (op.if_version, op.if_absent ?? false) {
            case (let v?, false): condition = .ifVersion(v)
            case (nil, true): condition = .ifAbsent
            case (nil, false): condition = .none
            case (_?, true): throw APIError.badRequest("operation \(i): give if_version or if_absent, not both")
            }
            switch op.op {
            case "put":
                guard let encoded = op.value_base64 else { throw APIError.badRequest("operation \(i): a put needs value_base64") }
                guard let value = Data(base64Encoded: encoded) else { throw APIError.badRequest("operation \(i): value_base64 is not valid base64") }
                let access = ObjectAccess(
                    read: try op.read.map { try Self.parseRead($0, "operation \(i): read") } ?? .server,
                    write: try op.write.map { try Self.parseWrite($0, "operation \(i): write") } ?? .server
                )
                operations.append(.put(key: op.key, value: [UInt8](value), contentType: op.content_type, condition: condition, access: access))
            case "delete":
                if op.value_base64 != nil { throw APIError.badRequest("operation \(i): a delete takes no value") }
                if case .ifAbsent = condition { throw APIError.badRequest("operation \(i): a delete takes if_version, not if_absent") }
                operations.append(.delete(key: op.key, condition: condition))
            default:
                throw APIError.badRequest("operation \(i): op must be \"put\" or \"delete\", not \"\(op.op)\"")
            }
        }
        let release = body.release_lock ?? false
        if operations.isEmpty && !release { throw APIError.badRequest("a batch needs at least one operation") }
        if release && body.lock_token == nil { throw APIError.badRequest("release_lock needs lock_token") }
        try await auth.identify(request).requireServer("send batches")
        let result = try await store.write(partition: partition, operations, lockToken: body.lock_token.map { LockToken($0) }, releaseLock: release)
        var versions: [String: UInt64] = [:]
        if let version = result.version {
            for (i, op) in operations.enumerated() where result.applied[i] { versions[op.key] = version }
        }
        var previous: [String: UInt64?] = [:]
        for (i, op) in operations.enumerated() { previous[op.key] = result.previousVersions[i] }
        return try json(BatchResponseBody(version: result.version, versions: versions, previous_versions: previous))
    }
}
