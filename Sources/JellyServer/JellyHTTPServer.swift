import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import JellyCore
import Logging
import NIOCore
import NIOSSL

/// HTTP API v1 over any `JellyStore`: a thin layer that parses, checks who is asking, calls the
/// store once and answers. See docs/http-api.md for the contract.
public enum JellyHTTPServer {
    /// The application, ready to `runService()` (which stops gracefully on SIGTERM and SIGINT:
    /// stops accepting, finishes requests in flight, then returns so the caller closes the store).
    public static func application(
        store: any JellyStore, configuration: JellyServerConfiguration, metrics: MetricsEndpoint? = nil,
        logger: Logger = Logger(label: "jelly"),
        onReady: @escaping @Sendable (String, Int) -> Void
    ) async throws -> some ApplicationProtocol {
        try configuration.validate()
        let auth = try await Authenticator(configuration.auth, partitionBytesMax: store.limits.partitionBytesMax)
        let (router, direct) = makeRouter(store: store, configuration: configuration, auth: auth, metrics: metrics, logger: logger)
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .milliseconds(configuration.idleTimeoutMilliseconds),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: configuration.headerBytesMax, maxHeaderListSize: configuration.headerBytesMax,
                maxHeaderFieldCount: configuration.headerFieldsMax
            )
        )
        let server: HTTPServerBuilder
        if let certPath = configuration.tlsCertificatePath, let keyPath = configuration.tlsKeyPath {
            let tls: TLSConfiguration
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certPath)
                let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
                tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            } catch {
                throw JellyError(.invalidArgument, "cannot load TLS certificate \(certPath) and key \(keyPath): \(error)")
            }
            server = try .http2Upgrade(
                tlsConfiguration: tls,
                configuration: .init(idleTimeout: .milliseconds(configuration.idleTimeoutMilliseconds), streamConfiguration: http1)
            )
        } else {
            server = HTTPServerBuilder { responder in
                DirectPutHTTP1Channel(base: HTTP1Channel(responder: responder, configuration: http1), shared: direct)
            }
        }
        var logger = logger
        logger[metadataKey: "component"] = "http"
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: serverName,
                backlog: 1024, availableConnectionsDelegate: MaximumAvailableConnections(configuration.connectionsMax)
            ),
            onServerRunning: { channel in
                onReady(configuration.host, channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
    }

    static let serverName = "jelly"

    /// The router, and what the direct PUT path shares with it.
    static func makeRouter(
        store: any JellyStore, configuration: JellyServerConfiguration, auth: Authenticator,
        metrics: MetricsEndpoint?, logger: Logger
    ) -> (Router<BasicRequestContext>, DirectPutHandler.Shared) {
        let router = Router()
        let api = API(
            store: store, auth: auth,
            bodyBytesMax: min(configuration.requestBodyBytesMax, max(store.limits.valueBytesMax, store.limits.batchBytesMax)),
            valueBytesMax: min(configuration.requestBodyBytesMax, store.limits.valueBytesMax)
        )
        let log: Logger? = configuration.logRequests ? logger : nil
        // Every path with the methods registered on it, so a wrong method can be answered 405.
        var registered: [(path: String, methods: Set<HTTPRequest.Method>)] = []
        func register(_ method: HTTPRequest.Method, _ path: String) {
            if let i = registered.firstIndex(where: { $0.path == path }) {
                registered[i].methods.insert(method)
            } else {
                registered.append((path, [method]))
            }
        }
        let objectPath = "/v1/partitions/:partition/objects/:key"
        let objectsPath = "/v1/partitions/:partition/objects"
        let batchPath = "/v1/partitions/:partition/batch"
        let lockPath = "/v1/partitions/:partition/lock"

        func route(
            _ method: HTTPRequest.Method, _ path: String, _ recorder: RequestRecorder,
            _ handler: @escaping @Sendable (API, Request, BasicRequestContext) async throws -> Response
        ) {
            register(method, path)
            router.on(RouterPath(path), method: method) { request, context in
                let start = DispatchTime.now().uptimeNanoseconds
                let response = await answering { try await handler(api, request, context) }
                recorder.record(method: request.method, path: request.uri.path, status: response.status.code, start: start)
                return response
            }
        }
        func route(
            _ method: HTTPRequest.Method, _ path: String, _ name: String,
            _ handler: @escaping @Sendable (API, Request, BasicRequestContext) async throws -> Response
        ) {
            route(method, path, RequestRecorder(route: name, log: log), handler)
        }
        // Shared with DirectPutHandler, which answers most PUTs.
        let putObject = RequestRecorder(route: "put_object", log: log)
        route(.put, objectPath, putObject) { try await $0.putObject($1, $2) }
        route(.get, objectPath, "get_object") { try await $0.getObject($1, $2) }
        route(.delete, objectPath, "delete_object") { try await $0.deleteObject($1, $2) }
        route(.get, objectsPath, "list_objects") { try await $0.listObjects($1, $2) }
        route(.post, batchPath, "batch") { try await $0.batch($1, $2) }
        route(.post, lockPath, "acquire_lock") { try await $0.acquire($1, $2) }
        route(.get, lockPath, "inspect_lock") { try await $0.inspect($1, $2) }
        route(.delete, lockPath, "release_lock") { try await $0.release($1, $2) }
        route(.post, lockPath + "/renew", "renew_lock") { try await $0.renew($1, $2) }
        route(.post, lockPath + "/transfer", "transfer_lock") { try await $0.transfer($1, $2) }
        route(.post, lockPath + "/break", "break_lock") { try await $0.breakLock($1, $2) }
        register(.get, "/v1/health")
        let health = configuration.health
        router.get("/v1/health") { _, _ in
            guard let (ok, detail) = health?(), !ok else {
                return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
            }
            let body = try JSONEncoder().encode(["status": "unavailable", "detail": detail])
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "application/json", .retryAfter: "1"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        register(.get, "/v1/openapi.yaml")
        router.get("/v1/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        if let metrics {
            let gauges = StoreGauges()
            route(.get, "/metrics", "metrics") { api, request, _ in
                let identity = try await api.auth.identify(request)
                if !identity.isServer { throw APIError.forbidden("metrics need an API key") }
                gauges.update(metrics.storeGauges())
                return Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition()))
                )
            }
        }

        // A wrong method on a known path is 405 `bad_request`.
        let all: [HTTPRequest.Method] = [.get, .put, .post, .delete, .patch, .head, .options]
        for (path, methods) in registered {
            for method in all where !methods.contains(method) {
                router.on(RouterPath(path), method: method) { request, _ in
                    APIError.methodNotAllowed(request.method, request.uri.path).response
                }
            }
        }
        return (router, DirectPutHandler.Shared(api: api, recorder: putObject, serverName: serverName))
    }
}

let jellyLockToken = fieldName("Jelly-Lock-Token")
let jellyRead = fieldName("Jelly-Read")
let jellyWrite = fieldName("Jelly-Write")
let jellyPreviousVersion = fieldName("Jelly-Previous-Version")

private func fieldName(_ name: String) -> HTTPField.Name {
    guard let field = HTTPField.Name(name) else { preconditionFailure("\(name) is not a valid header name") }
    return field
}

/// The handlers. Each parses and validates the request (400/413), checks who is asking
/// (401/403), calls the store once (423, 412, 404 come from it in that order), and answers.
struct API: Sendable {
    let store: any JellyStore
    let auth: Authenticator
    let bodyBytesMax: Int
    let valueBytesMax: Int

    /// Tries of a client's read-check-write before answering 503: a client write is a
    /// compare-and-set on the version it checked, so it can lose a race with another writer.
    private static let clientWriteAttempts = 3

    // MARK: Objects

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

    private func objectResponse(_ object: StoredObject, _ request: Request) -> Response {
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
    private func clientWrite(
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
        var limit = 100
        if let text = query.get("limit") {
            guard let n = Int(text), n >= 1, n <= store.limits.listLimitMax else {
                throw APIError.badRequest("limit must be a whole number from 1 to \(store.limits.listLimitMax)")
            }
            limit = n
        }
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

    // MARK: Locks

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

    // MARK: Access headers

    static func parseRead(_ text: String, _ what: String) throws -> ObjectAccess.Read {
        guard let read = ObjectAccess.Read(name: text.trimmingOWS()) else {
            throw APIError.badRequest("\(what) must be owner, public or server, not \(Names.quoted(text))")
        }
        return read
    }

    static func parseWrite(_ text: String, _ what: String) throws -> ObjectAccess.Write {
        guard let write = ObjectAccess.Write(name: text.trimmingOWS()) else {
            throw APIError.badRequest("\(what) must be owner or server, not \(Names.quoted(text))")
        }
        return write
    }

    /// `Jelly-Read` / `Jelly-Write` of a PUT, or nil when neither is sent (server-only).
    private func objectAccess(_ headers: HTTPFields) throws -> ObjectAccess? {
        let read = headers[jellyRead]
        let write = headers[jellyWrite]
        if read == nil && write == nil { return nil }
        return ObjectAccess(
            read: try read.map { try Self.parseRead($0, "Jelly-Read") } ?? .server,
            write: try write.map { try Self.parseWrite($0, "Jelly-Write") } ?? .server
        )
    }

    // MARK: Parsing

    /// The partition (and key) from the route's parameters.
    private func names(_ context: BasicRequestContext, withKey: Bool) throws -> (String, String) {
        try names(rawPartition: context.parameters.get("partition") ?? "", rawKey: withKey ? context.parameters.get("key") ?? "" : nil)
    }

    /// The partition (and key) from percent-encoded path segments: decoded, then checked against
    /// the rules. A name breaking them is 400, never 404.
    private func names(rawPartition: String, rawKey: String?) throws -> (String, String) {
        let partition = try decodeName(rawPartition, what: "partition")
        try Names.validate(partition, as: .partition, maxBytes: store.limits.partitionBytesMax)
        guard let rawKey else { return (partition, "") }
        let key = try decodeName(rawKey, what: "key")
        try Names.validate(key, as: .key, maxBytes: store.limits.keyBytesMax)
        return (partition, key)
    }

    private func decodeName(_ raw: String, what: String) throws -> String {
        guard let decoded = PercentEncoding.decode(raw) else {
            throw APIError.badRequest("the \(what) in the path is not valid percent-encoded UTF-8")
        }
        return decoded
    }

    private func lockToken(_ headers: HTTPFields) throws -> LockToken? {
        guard let text = headers[jellyLockToken] else { return nil }
        guard let value = UInt64(text.trimmingOWS()) else {
            throw APIError.badRequest("Jelly-Lock-Token must be a whole number, not \(Names.quoted(text))")
        }
        return LockToken(value)
    }

    /// `If-Match: "V"` as compare-and-set on version V; no header, no condition.
    private func ifMatchCondition(_ headers: HTTPFields) throws -> WriteCondition {
        guard let text = headers[.ifMatch] else { return .none }
        let t = text.trimmingOWS()
        guard t.count >= 3, t.first == "\"", t.last == "\"", let v = UInt64(t.dropFirst().dropLast()) else {
            throw APIError.badRequest("If-Match must be a quoted version, like \"42\"")
        }
        return .ifVersion(v)
    }

    /// 413 for a declared length over the limit, before credentials are checked (the order of
    /// errors puts 413 first) and before a byte of the body is read.
    private func checkDeclaredLength(_ request: Request, limit: Int, what: String) throws {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.tooLarge("the \(what) is \(length) bytes; the limit is \(limit) bytes")
        }
    }

    /// The whole body, up to `limit` bytes (413 beyond), as the buffer it arrived in.
    private func collect(_ request: Request, limit: Int, what: String) async throws -> ByteBuffer {
        try checkDeclaredLength(request, limit: limit, what: what)
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge("the \(what) is over the limit of \(limit) bytes")
        }
    }

    private func body(_ request: Request, limit: Int, what: String) async throws -> [UInt8] {
        Array(try await collect(request, limit: limit, what: what).readableBytesView)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let buffer = try await collect(request, limit: bodyBytesMax, what: "request body")
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request needs a JSON body") }
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw error
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
    }

    private func lockAnswer(_ body: LockResponseBody) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body.json))
    }

    private func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
