import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

/// Streams over plain HTTP (docs/streams.md): append one frame, read a page (with an optional
/// long-poll), trim or remove. The same path with a WebSocket upgrade is `StreamSocket`.
/// Streams are for game servers: every call needs an API key when auth is on.
extension API {
    /// The content type of a batch of frames (`{"frames": [{"value_base64", "base_version"}]}`),
    /// so that a frame that is itself JSON is never taken for one.
    static let framesBatchType = "application/vnd.jelly.frames+json"

    /// `POST /v1/partitions/{p}/streams/{s}`: the body is one frame, or with `Content-Type:
    /// application/vnd.jelly.frames+json` an atomic batch of them.
    func appendFrame(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, stream) = try streamNames(context)
        let limits = store.limits
        let batch = request.headers[.contentType].map { $0.trimmingOWS().lowercased().hasPrefix(Self.framesBatchType) } ?? false
        let bodyMax = batch ? bodyBytesMax : min(bodyBytesMax, limits.frameBytesMax)
        try checkDeclaredLength(request, limit: bodyMax, what: batch ? "batch of frames" : "frame")
        let query = try StreamQuery(get: { request.uri.queryParameters.get($0) }, limits: limits)
        let token = try lockToken(request.headers)
        var base: UInt64 = 0
        if let text = request.headers[jellyBaseVersion] {
            guard let v = WholeNumbers.parse(text.trimmingOWS()) else {
                throw APIError.badRequest("Jelly-Base-Version must be a whole number (the version of the save the frame builds on), not \(Names.quoted(text))")
            }
            base = v
        }
        try await auth.identify(request).requireServer("append to streams")
        let frames: [FrameInput]
        if batch {
            struct Body: Decodable {
                struct Entry: Decodable { var value_base64: String; var base_version: UInt64? }
                var frames: [Entry]
            }
            let body = try JSONDecoder().decode(Body.self, from: Data(try await collect(request, limit: bodyMax, what: "batch of frames").readableBytesView))
            frames = try body.frames.enumerated().map { i, entry in
                guard let value = Data(base64Encoded: entry.value_base64) else { throw APIError.badRequest("frames[\(i)].value_base64 is not base64") }
                return FrameInput([UInt8](value), baseVersion: entry.base_version ?? base)
            }
        } else {
            frames = [FrameInput(try await body(request, limit: bodyMax, what: "frame"), baseVersion: base)]
        }
        let seqs = try await store.appendFrames(partition: partition, stream: stream, frames, lockToken: token, retention: query.retention, durable: query.durable)
        let list = seqs.map(String.init).joined(separator: ",")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"seq\":\(seqs.last ?? 0),\"seqs\":[\(list)]}")))
    }

    /// `GET /v1/partitions/{p}/streams/{s}?from=SEQ&limit=N&wait_ms=W`.
    func readFrames(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, stream) = try streamNames(context)
        let query = try StreamQuery(get: { request.uri.queryParameters.get($0) }, limits: store.limits)
        try await auth.identify(request).requireServer("read streams")
        var page = try await store.readFrames(partition: partition, stream: stream, from: query.from, limit: query.limit)
        if page.frames.isEmpty && query.waitMilliseconds > 0 {
            let after = max(query.from, 1) - 1
            if try await store.waitForFrames(partition: partition, stream: stream, after: after, timeoutMilliseconds: query.waitMilliseconds) {
                page = try await store.readFrames(partition: partition, stream: stream, from: query.from, limit: query.limit)
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: FramesResponseBody.json(page)))
    }

    /// `DELETE /v1/partitions/{p}/streams/{s}?before=SEQ` trims; without `before`, removes.
    func trimStream(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, stream) = try streamNames(context)
        var before: UInt64?
        if let text = request.uri.queryParameters.get("before") {
            guard let v = WholeNumbers.parse(text) else { throw APIError.badRequest("before must be a whole number (a frame sequence), not \(Names.quoted(text))") }
            before = v
        }
        let token = try lockToken(request.headers)
        try await auth.identify(request).requireServer("trim streams")
        try await store.trimStream(partition: partition, stream: stream, before: before, lockToken: token)
        return Response(status: .noContent)
    }

    func streamNames(_ context: BasicRequestContext) throws -> (String, String) {
        try streamNames(rawPartition: context.parameters.get("partition") ?? "", rawStream: context.parameters.get("stream") ?? "")
    }

    func streamNames(rawPartition: String, rawStream: String) throws -> (String, String) {
        let (partition, _) = try names(rawPartition: rawPartition, rawKey: nil)
        let stream = try decodeName(rawStream, what: "stream")
        try Names.validate(stream, as: .stream, maxBytes: store.limits.streamNameBytesMax)
        return (partition, stream)
    }
}

/// A stream request's query parameters (plain and WebSocket).
struct StreamQuery: Sendable {
    var from: UInt64 = 0
    var limit: Int
    var waitMilliseconds = 0
    var retention: StreamRetention?
    var durable = false

    init(get: (String) -> String?, limits: JellyLimits) throws {
        limit = min(100, limits.framesPageMax)
        func whole(_ name: String, _ what: String) throws -> UInt64? {
            guard let text = get(name) else { return nil }
            guard let v = WholeNumbers.parse(text) else { throw APIError.badRequest("\(name) must be a whole number (\(what)), not \(Names.quoted(text))") }
            return v
        }
        if let v = try whole("from", "a frame sequence, e.g. `next` of the last page") { from = v }
        if let v = try whole("limit", "frames per page") {
            guard v >= 1, v <= UInt64(limits.framesPageMax) else { throw APIError.badRequest("limit must be a whole number from 1 to \(limits.framesPageMax)") }
            limit = Int(v)
        }
        if let v = try whole("wait_ms", "milliseconds") {
            guard v <= UInt64(limits.changesWaitMillisecondsMax) else { throw APIError.badRequest("wait_ms must be a whole number from 0 to \(limits.changesWaitMillisecondsMax)") }
            waitMilliseconds = Int(v)
        }
        let frames = try whole("retain_frames", "frames the stream keeps")
        let bytes = try whole("retain_bytes", "bytes the stream keeps")
        let age = try whole("retain_ms", "how long the stream keeps a frame, in milliseconds")
        if frames != nil || bytes != nil || age != nil {
            let d = limits.streamRetentionDefault
            retention = StreamRetention(
                frames: frames.map { Int(clamping: $0) } ?? d.frames, bytes: bytes.map { Int64(clamping: $0) } ?? d.bytes,
                ageMilliseconds: age.map { Int64(clamping: $0) } ?? d.ageMilliseconds
            )
        }
        if let text = get("durable") {
            guard text == "true" || text == "false" else { throw APIError.badRequest("durable must be true or false") }
            durable = text == "true"
        }
    }
}

/// `{"first", "frames": [{"base_version", "seq", "time_ms", "value_base64"}], "next"}`, keys sorted.
enum FramesResponseBody {
    static func json(_ page: FramePage) -> ByteBuffer {
        var out = JSONText(capacity: 64 + page.frames.reduce(0) { $0 + $1.value.count * 4 / 3 + 96 })
        out.raw("{\"first\":\(page.first),\"frames\":[")
        for (i, f) in page.frames.enumerated() {
            if i > 0 { out.raw(",") }
            out.raw("{\"base_version\":\(f.baseVersion),\"seq\":\(f.seq),\"time_ms\":\(f.timeMilliseconds),\"value_base64\":\"")
            out.raw(Data(f.value).base64EncodedString())
            out.raw("\"}")
        }
        out.raw("],\"next\":\(page.next)}")
        return out.buffer
    }
}
