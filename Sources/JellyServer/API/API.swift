import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

/// The handlers. Each parses and validates the request (400/413), checks who is asking
/// (401/403), calls the store once (423, 412, 404 come from it in that order), and answers.
struct API: Sendable {
    let store: any JellyStore
    let auth: Authenticator
    let bodyBytesMax: Int
    let valueBytesMax: Int

    /// Tries of a client's read-check-write before answering 503: a client write is a
    /// compare-and-set on the version it checked, so it can lose a race with another writer.
    static let clientWriteAttempts = 3

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
    func objectAccess(_ headers: HTTPFields) throws -> ObjectAccess? {
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
    func names(_ context: BasicRequestContext, withKey: Bool) throws -> (String, String) {
        try names(rawPartition: context.parameters.get("partition") ?? "", rawKey: withKey ? context.parameters.get("key") ?? "" : nil)
    }

    /// The partition (and key) from percent-encoded path segments: decoded, then checked against
    /// the rules. A name breaking them is 400, never 404.
    func names(rawPartition: String, rawKey: String?) throws -> (String, String) {
        let partition = try decodeName(rawPartition, what: "partition")
        try Names.validate(partition, as: .partition, maxBytes: store.limits.partitionBytesMax)
        guard let rawKey else { return (partition, "") }
        let key = try decodeName(rawKey, what: "key")
        try Names.validate(key, as: .key, maxBytes: store.limits.keyBytesMax)
        return (partition, key)
    }

    func decodeName(_ raw: String, what: String) throws -> String {
        guard let decoded = PercentEncoding.decode(raw) else {
            throw APIError.badRequest("the \(what) in the path is not valid percent-encoded UTF-8")
        }
        return decoded
    }

    func lockToken(_ headers: HTTPFields) throws -> LockToken? {
        guard let text = headers[jellyLockToken] else { return nil }
        guard let value = WholeNumbers.parse(text.trimmingOWS()) else {
            throw APIError.badRequest("Jelly-Lock-Token must be a whole number (digits only, no sign, fraction or exponent), not \(Names.quoted(text))")
        }
        return LockToken(value)
    }

    /// `If-Match: "V"` as compare-and-set on version V; no header, no condition.
    func ifMatchCondition(_ headers: HTTPFields) throws -> WriteCondition {
        guard let text = headers[.ifMatch] else { return .none }
        let t = text.trimmingOWS()
        guard t.count >= 3, t.first == "\"", t.last == "\"", let v = WholeNumbers.parse(t.dropFirst().dropLast()) else {
            throw APIError.badRequest("If-Match must be a quoted version (digits only), like \"42\"")
        }
        return .ifVersion(v)
    }

    /// 413 for a declared length over the limit, before credentials are checked (the order of
    /// errors puts 413 first) and before a byte of the body is read.
    func checkDeclaredLength(_ request: Request, limit: Int, what: String) throws {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.tooLarge("the \(what) is \(length) bytes; the limit is \(limit) bytes")
        }
    }

    /// The whole body, up to `limit` bytes (413 beyond), as the buffer it arrived in.
    func collect(_ request: Request, limit: Int, what: String) async throws -> ByteBuffer {
        try checkDeclaredLength(request, limit: limit, what: what)
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge("the \(what) is over the limit of \(limit) bytes")
        }
    }

    /// A listing's `limit` query parameter: 1 to the store's `listLimitMax`, 100 when absent.
    func pageLimit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return 100 }
        guard let n = WholeNumbers.parse(text).map({ Int(clamping: $0) }), n >= 1, n <= store.limits.listLimitMax else {
            throw APIError.badRequest("limit must be a whole number from 1 to \(store.limits.listLimitMax)")
        }
        return n
    }

    func body(_ request: Request, limit: Int, what: String) async throws -> [UInt8] {
        Array(try await collect(request, limit: limit, what: what).readableBytesView)
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let buffer = try await collect(request, limit: bodyBytesMax, what: "request body")
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request needs a JSON body") }
        let data = Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            // The decoder's message for a wrong kind of number is "not valid JSON"; find the
            // field. Only on failure: a body the decoder takes has whole numbers already.
            try WholeNumbers.checkJSON(data)
            throw error
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
    }

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
