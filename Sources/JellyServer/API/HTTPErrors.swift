import Foundation
import Hummingbird
import JellyCore

/// An error answered as `{"error": CODE, "message": TEXT}`. Every failure of the API goes
/// through here, so the mapping from store errors to HTTP statuses lives in one place.
struct APIError: Error {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var holder: LockInfo?
    var retryAfterSeconds: Int?

    static func badRequest(_ message: String) -> APIError { APIError(status: .badRequest, code: "bad_request", message: message) }
    static func notFound(_ message: String) -> APIError { APIError(status: .notFound, code: "not_found", message: message) }
    static func tooLarge(_ message: String) -> APIError { APIError(status: .contentTooLarge, code: "too_large", message: message) }
    static func unauthorized(_ message: String) -> APIError { APIError(status: .unauthorized, code: "unauthorized", message: message) }
    static func forbidden(_ message: String) -> APIError { APIError(status: .forbidden, code: "forbidden", message: message) }
    static func methodNotAllowed(_ method: HTTPRequest.Method, _ path: String) -> APIError {
        APIError(status: .methodNotAllowed, code: "bad_request", message: "\(method) is not allowed on \(path)")
    }

    static let diskFullRetryAfterSeconds = 5

    /// The one mapping from the store contract's errors to HTTP.
    init(_ error: JellyError) {
        switch error.code {
        case .invalidArgument: self.init(status: .badRequest, code: "bad_request", message: error.message)
        case .tooLarge: self.init(status: .contentTooLarge, code: "too_large", message: error.message)
        case .locked: self.init(status: .lockedStatus, code: "locked", message: error.message, holder: error.holder)
        case .preconditionFailed: self.init(status: .preconditionFailed, code: "precondition_failed", message: error.message)
        case .unavailable: self.init(status: .serviceUnavailable, code: "unavailable", message: error.message, retryAfterSeconds: 1)
        // The store looks at the disk again every second, but someone has to free space first:
        // a thousand game servers retrying every second would only add load.
        case .diskFull: self.init(status: .insufficientStorage, code: "disk_full", message: error.message, retryAfterSeconds: APIError.diskFullRetryAfterSeconds)
        case .unauthorized: self.init(status: .unauthorized, code: "unauthorized", message: error.message)
        case .forbidden: self.init(status: .forbidden, code: "forbidden", message: error.message)
        case .notFound: self.init(status: .notFound, code: "not_found", message: error.message)
        default: self.init(status: .internalServerError, code: "internal", message: error.message)
        }
    }

    init(status: HTTPResponse.Status, code: String, message: String, holder: LockInfo? = nil, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.holder = holder
        self.retryAfterSeconds = retryAfterSeconds
    }

    var answer: Answer {
        var body: [String: Any] = ["error": code, "message": message]
        if let holder {
            body["owner"] = holder.owner
            body["expires_at_ms"] = holder.expiresAtMilliseconds
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"jelly\"" }
        if let retryAfterSeconds { headers[.retryAfter] = String(retryAfterSeconds) }
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{\"error\":\"internal\"}".utf8)
        return Answer(status: status, headers: headers, body: ByteBuffer(bytes: data))
    }

    var response: Response { answer.response }

    /// Any failure of a handler as the error it is answered with.
    init(_ error: any Error) {
        switch error {
        case let error as APIError: self = error
        case let error as JellyError: self.init(error)
        case let error as DecodingError: self = .badRequest("the JSON body does not match the API: \(error.readableDescription)")
        default: self.init(status: .internalServerError, code: "internal", message: "\(error)")
        }
    }
}

/// A response with its whole body in memory: what the API's handlers answer, written by
/// Hummingbird or, on the direct path, by `DirectPutHandler`.
struct Answer {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    var response: Response { Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body)) }
}

extension HTTPResponse.Status {
    /// 423 Locked (WebDAV, RFC 4918): the partition is locked, or the token sent is stale.
    static let lockedStatus = HTTPResponse.Status(code: 423, reasonPhrase: "Locked")
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}

/// Runs a handler, answering every failure as an API error (never a crash or a hang).
func answering(_ body: () async throws -> Response) async -> Response {
    do {
        return try await body()
    } catch {
        return APIError(error).response
    }
}
