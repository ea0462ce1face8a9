import AsyncHTTPClient
import Foundation
import JellyCore
import NIOCore
import NIOHTTP1

/// A `JellyStore` on a remote `jelly serve`, over HTTP API v1. A Swift game server switches
/// between embedded and remote by configuration: the calls, the errors (`JellyError` codes) and
/// the lock rules are the same. The lock token travels with each call, as with the embedded store.
///
/// Retries: only where repeating cannot change the outcome — reads, lock inspection, acquiring
/// a lock (the same owner again gets the same token) and renewing one, after a connection error
/// or a 503 — up to `Configuration.retries` times with backoff. Writes are never repeated by the
/// client: a save whose answer was lost may have been applied; the caller decides (a retry
/// with the same lock token and `ifVersion` is safe).
public final class JellyClient: JellyStore {
    public struct Configuration: Sendable {
        /// `http://HOST:PORT` or `https://HOST:PORT`.
        public var url: String
        /// An API key (game servers) or a client token, sent as `Authorization: Bearer …`.
        public var bearerToken: String?
        /// Limits the server enforces; used to answer bad requests without a round trip.
        public var limits: JellyLimits = .default
        public var requestTimeoutMilliseconds: Int64 = 30_000
        public var retries = 3
        /// Connections kept to the server per event loop.
        public var connectionsPerHost = 64

        public init(url: String, bearerToken: String? = nil) {
            self.url = url
            self.bearerToken = bearerToken
        }
    }

    public let configuration: Configuration
    public var limits: JellyLimits { configuration.limits }
    private let http: HTTPClient
    private let base: String

    public init(_ configuration: Configuration) throws {
        var base = configuration.url
        while base.hasSuffix("/") { base.removeLast() }
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw JellyError(.invalidArgument, "the Jelly URL must start with http:// or https://, like http://127.0.0.1:7420 (got \(configuration.url))")
        }
        self.base = base
        self.configuration = configuration
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.connectionsPerHost)
        // Each request has its own deadline; the read timeout leaves room for a change feed's
        // long-poll, which is silent until a change or the end of its wait.
        config.timeout = .init(connect: .seconds(5), read: .milliseconds(configuration.requestTimeoutMilliseconds + Int64(configuration.limits.changesWaitMillisecondsMax)))
        config.redirectConfiguration = .disallow
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    // MARK: Objects

    public func get(partition: String, key: String) async throws -> StoredObject? {
        let response = try await send(.GET, objectPath(partition, key), idempotent: true)
        if response.status == 404 { return nil }
        try response.check()
        return StoredObject(
            key: key, version: try response.etagVersion(),
            contentType: response.headers["Content-Type"].first ?? defaultContentType,
            value: response.body, access: response.access()
        )
    }

    public func list(partition: String, after: String?, limit: Int) async throws -> ObjectListing {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        var path = "/v1/partitions/\(PercentEncoding.escape(partition))/objects?limit=\(max(1, min(limit, limits.listLimitMax)))"
        if let after { path += "&after=\(PercentEncoding.escape(after))" }
        let response = try await send(.GET, path, idempotent: true)
        try response.check()
        let body = try response.decode(ListBody.self)
        return ObjectListing(
            objects: body.objects.map {
                ObjectSummary(key: $0.key, version: $0.version, size: $0.size, contentType: $0.content_type,
                              access: ObjectAccess(read: readAccess($0.read), write: writeAccess($0.write)))
            },
            next: body.next
        )
    }

    public func listPartitions(prefix: String?, after: String?, limit: Int) async throws -> PartitionListing {
        var path = "/v1/partitions?limit=\(max(1, min(limit, limits.listLimitMax)))"
        if let prefix, !prefix.isEmpty { path += "&prefix=\(PercentEncoding.escape(prefix))" }
        if let after { path += "&after=\(PercentEncoding.escape(after))" }
        let response = try await send(.GET, path, idempotent: true)
        try response.check()
        struct Body: Decodable {
            struct Lock: Decodable { var owner: String; var token: UInt64?; var expires_at_ms: Int64 }
            struct Partition: Decodable { var partition: String; var objects: Int; var lock: Lock? }
            var partitions: [Partition]
            var next: String?
        }
        let body = try response.decode(Body.self)
        return PartitionListing(
            partitions: body.partitions.map { p in
                PartitionSummary(partition: p.partition, objects: p.objects, lock: p.lock.map {
                    LockInfo(partition: p.partition, owner: $0.owner, token: LockToken($0.token ?? 0), expiresAtMilliseconds: $0.expires_at_ms)
                })
            },
            next: body.next
        )
    }

    public func write(partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool) async throws -> WriteResult {
        if operations.count == 1 && !releaseLock {
            switch operations[0] {
            case .put(let key, let value, let contentType, let condition, let access):
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: contentType ?? defaultContentType)
                headers.add(name: "Jelly-Read", value: access.read.name)
                headers.add(name: "Jelly-Write", value: access.write.name)
                switch condition {
                case .none: break
                case .ifVersion(let v): headers.add(name: "If-Match", value: "\"\(v)\"")
                case .ifAbsent: headers.add(name: "If-None-Match", value: "*")
                }
                if let lockToken { headers.add(name: "Jelly-Lock-Token", value: String(lockToken.rawValue)) }
                let response = try await send(.PUT, objectPath(partition, key), headers: headers, body: value)
                try response.check()
                let body = try response.decode(PutBody.self)
                return WriteResult(version: body.version, applied: [true], previousVersions: [body.previous_version])
            case .delete(let key, let condition):
                var headers = HTTPHeaders()
                if case .ifVersion(let v) = condition { headers.add(name: "If-Match", value: "\"\(v)\"") }
                if case .ifAbsent = condition {
                    throw JellyError(.invalidArgument, "a delete takes ifVersion, not ifAbsent")
                }
                if let lockToken { headers.add(name: "Jelly-Lock-Token", value: String(lockToken.rawValue)) }
                let response = try await send(.DELETE, objectPath(partition, key), headers: headers)
                if response.status == 404 { return WriteResult(version: nil, applied: [false], previousVersions: [nil]) }
                try response.check()
                let previous = response.headers["Jelly-Previous-Version"].first.flatMap { UInt64($0) }
                return WriteResult(version: nil, applied: [true], previousVersions: [previous])
            }
        }
        // Several operations, or a release: one atomic batch.
        var ops: [[String: Any]] = []
        for op in operations {
            switch op {
            case .put(let key, let value, let contentType, let condition, let access):
                var o: [String: Any] = ["op": "put", "key": key, "value_base64": Data(value).base64EncodedString(),
                                        "read": access.read.name, "write": access.write.name]
                if let contentType { o["content_type"] = contentType }
                if case .ifVersion(let v) = condition { o["if_version"] = v }
                if case .ifAbsent = condition { o["if_absent"] = true }
                ops.append(o)
            case .delete(let key, let condition):
                var o: [String: Any] = ["op": "delete", "key": key]
                if case .ifVersion(let v) = condition { o["if_version"] = v }
                if case .ifAbsent = condition { throw JellyError(.invalidArgument, "a delete takes ifVersion, not ifAbsent") }
                ops.append(o)
            }
        }
        var request: [String: Any] = ["operations": ops, "release_lock": releaseLock]
        request["lock_token"] = lockToken.map { $0.rawValue } ?? NSNull()
        let response = try await send(.POST, "/v1/partitions/\(PercentEncoding.escape(partition))/batch", json: request)
        try response.check()
        let body = try response.decode(BatchBody.self)
        return WriteResult(
            version: body.version,
            applied: operations.map { body.versions[$0.key] != nil },
            previousVersions: operations.map { body.previous_versions?[$0.key] ?? nil }
        )
    }

    // MARK: Locks

    public func acquireLock(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> LockInfo {
        let response = try await send(.POST, lockPath(partition), json: ["owner": owner, "ttl_ms": ttlMilliseconds], idempotent: true)
        try response.check()
        return try response.decode(LockBody.self).lock(partition)
    }

    public func acquireLockAndLoad(partition: String, owner: String, ttlMilliseconds: Int64) async throws -> (lock: LockInfo, objects: [StoredObject]) {
        let response = try await send(.POST, lockPath(partition), json: ["owner": owner, "ttl_ms": ttlMilliseconds, "load": true], idempotent: true)
        try response.check()
        let body = try response.decode(LockBody.self)
        let objects = try (body.objects ?? []).map { o -> StoredObject in
            guard let value = Data(base64Encoded: o.value_base64) else {
                throw JellyError(.io, "the server sent invalid base64 for object \(Names.quoted(o.key))")
            }
            return StoredObject(key: o.key, version: o.version, contentType: o.content_type, value: [UInt8](value),
                                access: ObjectAccess(read: readAccess(o.read), write: writeAccess(o.write)))
        }
        return (body.lock(partition), objects)
    }

    public func renewLock(partition: String, token: LockToken, ttlMilliseconds: Int64) async throws -> LockInfo {
        let response = try await send(.POST, lockPath(partition) + "/renew", json: ["token": token.rawValue, "ttl_ms": ttlMilliseconds], idempotent: true)
        try response.check()
        return try response.decode(LockBody.self).lock(partition)
    }

    public func transferLock(partition: String, token: LockToken, to owner: String, ttlMilliseconds: Int64) async throws -> LockInfo {
        let response = try await send(.POST, lockPath(partition) + "/transfer", json: ["token": token.rawValue, "to_owner": owner, "ttl_ms": ttlMilliseconds])
        try response.check()
        return try response.decode(LockBody.self).lock(partition)
    }

    public func releaseLock(partition: String, token: LockToken) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Jelly-Lock-Token", value: String(token.rawValue))
        try await send(.DELETE, lockPath(partition), headers: headers).check()
    }

    public func inspectLock(partition: String) async throws -> LockInfo? {
        let response = try await send(.GET, lockPath(partition), idempotent: true)
        if response.status == 404 { return nil }
        try response.check()
        return try response.decode(LockBody.self).lock(partition)
    }

    public func breakLock(partition: String) async throws -> LockInfo? {
        let response = try await send(.POST, lockPath(partition) + "/break")
        if response.status == 404 { return nil }
        try response.check()
        return try response.decode(LockBody.self).lock(partition)
    }

    /// Takes an online backup on the server (`POST /v1/admin/backup`, admin key): into the
    /// directory `name` inside the server's backup directory, on the server's machine. Taking
    /// one again under the same name copies only what is new.
    public func backup(name: String) async throws -> BackupReport {
        let response = try await send(.POST, "/v1/admin/backup", json: ["name": name])
        try response.check()
        return try response.decode(BackupReport.self)
    }

    /// Closes the connections. The remote store stays up.
    public func close() async throws {
        try await http.shutdown()
    }

    // MARK: Transport

    private func objectPath(_ partition: String, _ key: String) throws -> String {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        try Names.validate(key, as: .key, maxBytes: limits.keyBytesMax)
        return "/v1/partitions/\(PercentEncoding.escape(partition))/objects/\(PercentEncoding.escape(key))"
    }

    private func lockPath(_ partition: String) throws -> String {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        return "/v1/partitions/\(PercentEncoding.escape(partition))/lock"
    }

    func send(_ method: HTTPMethod, _ path: String, json: [String: Any], idempotent: Bool = false) async throws -> Reply {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        let data = try JSONSerialization.data(withJSONObject: json)
        return try await send(method, path, headers: headers, body: [UInt8](data), idempotent: idempotent)
    }

    func send(
        _ method: HTTPMethod, _ path: String, headers: HTTPHeaders = [:], body: [UInt8]? = nil, idempotent: Bool = false,
        timeoutMilliseconds: Int64? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers = headers
        if let bearer = configuration.bearerToken { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        var attempt = 0
        while true {
            do {
                let response = try await http.execute(request, timeout: .milliseconds(timeoutMilliseconds ?? configuration.requestTimeoutMilliseconds))
                let buffer = try await response.body.collect(upTo: max(limits.valueBytesMax, limits.batchBytesMax) * 2)
                let reply = Reply(status: Int(response.status.code), headers: response.headers, body: Array(buffer.readableBytesView))
                if reply.status == 503 && idempotent && attempt < configuration.retries {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(100 << attempt))
                    continue
                }
                return reply
            } catch let error as JellyError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if idempotent && attempt < configuration.retries {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(100 << attempt))
                    continue
                }
                throw JellyError(.unavailable, "cannot reach Jelly at \(base): \(error)")
            }
        }
    }
}


/// The access a response names; a field the server left out (an older server) means server-only.
private func readAccess(_ text: String?) -> ObjectAccess.Read { text.flatMap(ObjectAccess.Read.init(name:)) ?? .server }
private func writeAccess(_ text: String?) -> ObjectAccess.Write { text.flatMap(ObjectAccess.Write.init(name:)) ?? .server }

/// A response, read whole.
struct Reply {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    /// Maps an error response to the `JellyError` the embedded store would have thrown.
    func check() throws {
        guard status >= 400 else { return }
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        let message = object["message"] as? String ?? "HTTP \(status)"
        var code = Self.code(forAPIError: object["error"] as? String ?? "")
        if code == .io && status == 503 { code = .unavailable }
        var holder: LockInfo?
        if let owner = object["owner"] as? String, let expires = (object["expires_at_ms"] as? NSNumber)?.int64Value {
            // The holder's token is never sent to others (it would let them write).
            holder = LockInfo(partition: "", owner: owner, token: LockToken(0), expiresAtMilliseconds: expires)
        }
        throw JellyError(code, message, holder: holder)
    }

    /// The contract's error code for HTTP API v1's `error` field.
    static func code(forAPIError name: String) -> JellyError.Code {
        switch name {
        case "bad_request": return .invalidArgument
        case "too_large": return .tooLarge
        case "locked": return .locked
        case "precondition_failed": return .preconditionFailed
        case "unavailable": return .unavailable
        case "disk_full": return .diskFull
        case "unauthorized": return .unauthorized
        case "forbidden": return .forbidden
        case "not_found": return .notFound
        default: return .io
        }
    }

    func etagVersion() throws -> UInt64 {
        guard let etag = headers["ETag"].first, etag.count >= 3, let v = UInt64(etag.dropFirst().dropLast()) else {
            throw JellyError(.io, "the server's answer has no valid ETag")
        }
        return v
    }

    func access() -> ObjectAccess {
        ObjectAccess(read: readAccess(headers["Jelly-Read"].first), write: writeAccess(headers["Jelly-Write"].first))
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw JellyError(.io, "the server's answer does not match HTTP API v1: \(error)")
        }
    }
}


private struct PutBody: Decodable { var version: UInt64; var previous_version: UInt64? }
private struct BatchBody: Decodable { var version: UInt64?; var versions: [String: UInt64]; var previous_versions: [String: UInt64?]? }
private struct ListBody: Decodable {
    var objects: [Entry]
    var next: String?
    struct Entry: Decodable { var key: String; var version: UInt64; var size: Int; var content_type: String; var read: String?; var write: String? }
}
private struct LockBody: Decodable {
    var token: UInt64
    var owner: String
    var expires_at_ms: Int64
    var objects: [Object]?
    struct Object: Decodable { var key: String; var version: UInt64; var content_type: String; var value_base64: String; var read: String?; var write: String? }
    func lock(_ partition: String) -> LockInfo {
        LockInfo(partition: partition, owner: owner, token: LockToken(token), expiresAtMilliseconds: expires_at_ms)
    }
}
