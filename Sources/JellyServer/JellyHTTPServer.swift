import Foundation
import Hummingbird
import JellyCore
import NIOCore

/// How `jelly serve` listens.
public struct JellyServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 7420
    /// Largest request body. Values over the store's limit get 413 before they are read.
    public var requestBodyBytesMax = 16 << 20
    public init() {}
}

/// HTTP API v1 over any `JellyStore`: a thin layer that parses, calls the store once and
/// answers. See docs/http-api.md for the contract.
public enum JellyHTTPServer {
    /// The application, ready to `runService()` (which stops gracefully on SIGTERM and SIGINT).
    public static func application(
        store: any JellyStore, configuration: JellyServerConfiguration,
        onReady: @escaping @Sendable (String, Int) -> Void
    ) -> some ApplicationProtocol {
        let router = makeRouter(store: store, configuration: configuration)
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "jelly"),
            onServerRunning: { channel in
                onReady(configuration.host, channel.localAddress?.port ?? configuration.port)
            }
        )
    }

    static func makeRouter(store: any JellyStore, configuration: JellyServerConfiguration) -> Router<BasicRequestContext> {
        let router = Router()
        let api = API(store: store, bodyBytesMax: min(configuration.requestBodyBytesMax, max(store.limits.valueBytesMax, store.limits.batchBytesMax)))
        let objectPath = "/v1/partitions/:partition/objects/:key"
        let objectsPath = "/v1/partitions/:partition/objects"
        let batchPath = "/v1/partitions/:partition/batch"
        let lockPath = "/v1/partitions/:partition/lock"

        router.put(RouterPath(objectPath)) { request, context in await answering { try await api.putObject(request, context) } }
        router.get(RouterPath(objectPath)) { request, context in await answering { try await api.getObject(request, context) } }
        router.delete(RouterPath(objectPath)) { request, context in await answering { try await api.deleteObject(request, context) } }
        router.get(RouterPath(objectsPath)) { request, context in await answering { try await api.listObjects(request, context) } }
        router.post(RouterPath(batchPath)) { request, context in await answering { try await api.batch(request, context) } }
        router.post(RouterPath(lockPath)) { request, context in await answering { try await api.acquire(request, context) } }
        router.get(RouterPath(lockPath)) { request, context in await answering { try await api.inspect(request, context) } }
        router.delete(RouterPath(lockPath)) { request, context in await answering { try await api.release(request, context) } }
        router.post(RouterPath(lockPath + "/renew")) { request, context in await answering { try await api.renew(request, context) } }
        router.post(RouterPath(lockPath + "/transfer")) { request, context in await answering { try await api.transfer(request, context) } }
        router.get("/v1/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
        }
        router.get("/v1/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }

        // A wrong method on a known path is 405 `bad_request`.
        let allowed: [(String, Set<HTTPRequest.Method>)] = [
            (objectPath, [.put, .get, .delete]), (objectsPath, [.get]), (batchPath, [.post]),
            (lockPath, [.post, .get, .delete]), (lockPath + "/renew", [.post]), (lockPath + "/transfer", [.post]),
            ("/v1/health", [.get]), ("/v1/openapi.yaml", [.get]),
        ]
        let all: [HTTPRequest.Method] = [.get, .put, .post, .delete, .patch, .head, .options]
        for (path, methods) in allowed {
            for method in all where !methods.contains(method) {
                router.on(RouterPath(path), method: method) { request, _ in
                    APIError.methodNotAllowed(request.method, request.uri.path).response
                }
            }
        }
        return router
    }
}

/// The handlers. Each parses and validates the request, calls the store once, and answers.
struct API: Sendable {
    let store: any JellyStore
    let bodyBytesMax: Int

    // MARK: Objects

    func putObject(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, key) = try names(context, withKey: true)
        let token = try lockToken(request)
        var condition = WriteCondition.none
        if let ifMatch = request.headers[.ifMatch] { condition = .ifVersion(try etagVersion(ifMatch, header: "If-Match")) }
        if let ifNoneMatch = request.headers[.ifNoneMatch] {
            guard ifNoneMatch.trimmingCharacters(in: .whitespaces) == "*" else {
                throw APIError.badRequest("If-None-Match on PUT must be *")
            }
            if case .ifVersion = condition { throw APIError.badRequest("send If-Match or If-None-Match, not both") }
            condition = .ifAbsent
        }
        let value = try await body(request, limit: store.limits.valueBytesMax, what: "value")
        let contentType = request.headers[.contentType] ?? defaultContentType
        let result = try await store.write(
            partition: partition, [.put(key: key, value: value, contentType: contentType, condition: condition)],
            lockToken: token, releaseLock: false
        )
        guard let version = result.version else { throw APIError(status: .internalServerError, code: "internal", message: "a put committed without a version") }
        let created = result.previousVersions.first.flatMap { $0 } == nil
        var response = try json(VersionResponseBody(version: version), status: created ? .created : .ok)
        response.headers[.eTag] = "\"\(version)\""
        return response
    }

    func getObject(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, key) = try names(context, withKey: true)
        guard let object = try await store.get(partition: partition, key: key) else {
            throw APIError.notFound("no object \(Names.quoted(key)) in partition \(Names.quoted(partition))")
        }
        let etag = "\"\(object.version)\""
        if let ifNoneMatch = request.headers[.ifNoneMatch],
           ifNoneMatch.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag }) {
            return Response(status: .notModified, headers: [.eTag: etag])
        }
        return Response(
            status: .ok, headers: [.contentType: object.contentType, .eTag: etag],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: object.value))
        )
    }

    func deleteObject(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, key) = try names(context, withKey: true)
        let token = try lockToken(request)
        var condition = WriteCondition.none
        if let ifMatch = request.headers[.ifMatch] { condition = .ifVersion(try etagVersion(ifMatch, header: "If-Match")) }
        let result = try await store.write(partition: partition, [.delete(key: key, condition: condition)], lockToken: token, releaseLock: false)
        guard result.applied.first == true else {
            throw APIError.notFound("no object \(Names.quoted(key)) in partition \(Names.quoted(partition))")
        }
        return Response(status: .noContent)
    }

    func listObjects(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let query = request.uri.queryParameters
        var limit = 100
        if let text = query.get("limit") {
            guard let n = Int(text), n >= 1, n <= store.limits.listLimitMax else {
                throw APIError.badRequest("limit must be a whole number from 1 to \(store.limits.listLimitMax)")
            }
            limit = n
        }
        let after = query.get("after")
        let page = try await store.list(partition: partition, after: after, limit: limit)
        return try json(ListResponseBody(
            objects: page.objects.map { .init(key: $0.key, version: $0.version, size: $0.size, content_type: $0.contentType) },
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
                operations.append(.put(key: op.key, value: [UInt8](value), contentType: op.content_type, condition: condition))
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
        let result = try await store.write(partition: partition, operations, lockToken: body.lock_token.map { LockToken($0) }, releaseLock: release)
        var versions: [String: UInt64] = [:]
        if let version = result.version {
            for (i, op) in operations.enumerated() where result.applied[i] { versions[op.key] = version }
        }
        return try json(BatchResponseBody(version: result.version, versions: versions))
    }

    // MARK: Locks

    func acquire(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(LockRequestBody.self, request)
        if body.load == true {
            let (lock, objects) = try await store.acquireLockAndLoad(partition: partition, owner: body.owner, ttlMilliseconds: body.ttl_ms)
            return try json(LockResponseBody(lock, objects: objects))
        }
        return try json(LockResponseBody(try await store.acquireLock(partition: partition, owner: body.owner, ttlMilliseconds: body.ttl_ms)))
    }

    func renew(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(RenewRequestBody.self, request)
        return try json(LockResponseBody(try await store.renewLock(partition: partition, token: LockToken(body.token), ttlMilliseconds: body.ttl_ms)))
    }

    func transfer(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        let body = try await decode(TransferRequestBody.self, request)
        return try json(LockResponseBody(try await store.transferLock(partition: partition, token: LockToken(body.token), to: body.to_owner, ttlMilliseconds: body.ttl_ms)))
    }

    func release(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        guard let token = try lockToken(request) else { throw APIError.badRequest("releasing a lock needs the Jelly-Lock-Token header") }
        try await store.releaseLock(partition: partition, token: token)
        return Response(status: .noContent)
    }

    func inspect(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, _) = try names(context, withKey: false)
        guard let lock = try await store.inspectLock(partition: partition) else {
            throw APIError.notFound("partition \(Names.quoted(partition)) is not locked")
        }
        return try json(LockResponseBody(lock))
    }

    // MARK: Parsing

    /// The partition (and key) from the path: percent-decoded, then checked against the rules.
    /// A name breaking them is 400, never 404.
    private func names(_ context: BasicRequestContext, withKey: Bool) throws -> (String, String) {
        let partition = try decodeName(context.parameters.get("partition") ?? "", what: "partition")
        try Names.validate(partition, as: .partition, maxBytes: store.limits.partitionBytesMax)
        guard withKey else { return (partition, "") }
        let key = try decodeName(context.parameters.get("key") ?? "", what: "key")
        try Names.validate(key, as: .key, maxBytes: store.limits.keyBytesMax)
        return (partition, key)
    }

    private func decodeName(_ raw: String, what: String) throws -> String {
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError.badRequest("the \(what) in the path is not valid percent-encoded UTF-8")
        }
        return decoded
    }

    private func lockToken(_ request: Request) throws -> LockToken? {
        guard let text = request.headers.first(where: { $0.name.canonicalName == "jelly-lock-token" })?.value else { return nil }
        guard let value = UInt64(text.trimmingCharacters(in: .whitespaces)) else {
            throw APIError.badRequest("Jelly-Lock-Token must be a whole number, not \(Names.quoted(text))")
        }
        return LockToken(value)
    }

    private func etagVersion(_ text: String, header: String) throws -> UInt64 {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard t.count >= 3, t.first == "\"", t.last == "\"", let v = UInt64(t.dropFirst().dropLast()) else {
            throw APIError.badRequest("\(header) must be a quoted version, like \"42\"")
        }
        return v
    }

    private func body(_ request: Request, limit: Int, what: String) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.tooLarge("the \(what) is \(length) bytes; the limit is \(limit) bytes")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge("the \(what) is over the limit of \(limit) bytes")
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let bytes = try await body(request, limit: bodyBytesMax, what: "request body")
        guard !bytes.isEmpty else { throw APIError.badRequest("the request needs a JSON body") }
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw error
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
    }

    private func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
