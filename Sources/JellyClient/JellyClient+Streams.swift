import Foundation
import JellyCore
import NIOHTTP1

/// Streams over HTTP API v1 (docs/streams.md). For frames sent every tick without waiting, use
/// the stream WebSocket (`?mode=append`) instead: each call here is one request.
extension JellyClient {
    @discardableResult
    public func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool
    ) async throws -> [UInt64] {
        try StreamRules.validateAppend(partition: partition, stream: stream, frames, retention: retention, limits: limits)
        var path = try streamPath(partition, stream) + "?durable=\(durable)"
        if let r = retention { path += "&retain_frames=\(r.frames)&retain_bytes=\(r.bytes)&retain_ms=\(r.ageMilliseconds)" }
        var headers = HTTPHeaders()
        if let lockToken { headers.add(name: "Jelly-Lock-Token", value: String(lockToken.rawValue)) }
        let body: [UInt8]
        if frames.count == 1 {
            headers.add(name: "Content-Type", value: "application/octet-stream")
            if frames[0].baseVersion != 0 { headers.add(name: "Jelly-Base-Version", value: String(frames[0].baseVersion)) }
            body = frames[0].value
        } else {
            headers.add(name: "Content-Type", value: "application/vnd.jelly.frames+json")
            let list = frames.map { ["value_base64": Data($0.value).base64EncodedString(), "base_version": $0.baseVersion] as [String: Any] }
            body = [UInt8](try JSONSerialization.data(withJSONObject: ["frames": list]))
        }
        // Not retried: a repeat would append the frames twice.
        let reply = try await send(.POST, path, headers: headers, body: body)
        try reply.check()
        struct Body: Decodable { var seqs: [UInt64] }
        return try reply.decode(Body.self).seqs
    }

    public func readFrames(partition: String, stream: String, from: UInt64, limit: Int) async throws -> FramePage {
        try await readFrames(partition: partition, stream: stream, from: from, limit: limit, waitMilliseconds: 0)
    }

    /// A page of the stream, waiting up to `waitMilliseconds` on the server when it is empty.
    public func readFrames(partition: String, stream: String, from: UInt64, limit: Int, waitMilliseconds: Int) async throws -> FramePage {
        try StreamRules.validateRead(partition: partition, stream: stream, limit: limit, limits: limits)
        var path = try streamPath(partition, stream) + "?from=\(from)&limit=\(StreamRules.pageLimit(limit, limits: limits))"
        if waitMilliseconds > 0 { path += "&wait_ms=\(waitMilliseconds)" }
        let reply = try await send(.GET, path, idempotent: true, timeoutMilliseconds: Int64(waitMilliseconds) + configuration.requestTimeoutMilliseconds)
        try reply.check()
        let body = try reply.decode(FramesBody.self)
        return FramePage(frames: try body.frames.map { try $0.frame() }, next: body.next, first: body.first)
    }

    public func waitForFrames(partition: String, stream: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool {
        try StreamRules.validateWait(partition: partition, stream: stream, timeoutMilliseconds: timeoutMilliseconds, limits: limits)
        return try await !readFrames(partition: partition, stream: stream, from: after + 1, limit: 1, waitMilliseconds: timeoutMilliseconds).frames.isEmpty
    }

    public func trimStream(partition: String, stream: String, before: UInt64?, lockToken: LockToken?) async throws {
        var path = try streamPath(partition, stream)
        if let before { path += "?before=\(before)" }
        var headers = HTTPHeaders()
        if let lockToken { headers.add(name: "Jelly-Lock-Token", value: String(lockToken.rawValue)) }
        let reply = try await send(.DELETE, path, headers: headers, idempotent: true)
        try reply.check()
    }

    func streamPath(_ partition: String, _ stream: String) throws -> String {
        try StreamRules.validateNames(partition: partition, stream: stream, limits: limits)
        return "/v1/partitions/\(PercentEncoding.escape(partition))/streams/\(PercentEncoding.escape(stream))"
    }
}

struct FramesBody: Decodable {
    struct Entry: Decodable {
        var seq: UInt64
        var time_ms: Int64
        var base_version: UInt64
        var value_base64: String
        func frame() throws -> Frame {
            guard let value = Data(base64Encoded: value_base64) else { throw JellyError(.io, "the server sent a frame that is not base64") }
            return Frame(seq: seq, timeMilliseconds: time_ms, baseVersion: base_version, value: [UInt8](value))
        }
    }
    var frames: [Entry]
    var next: UInt64
    var first: UInt64
}
