import ArgumentParser
import Foundation
import JellyClient
import JellyCore
import NIOCore
import NIOPosix

/// Which HTTP client `jelly bench --url` drives the sessions with.
enum BenchHTTPClient: String, ExpressibleByArgument, CaseIterable {
    /// One hand-written HTTP/1.1 connection per session (`RawHTTPTarget`): the server's figures.
    case raw
    /// `JellyClient` (async-http-client): the Swift client's figures; also https.
    case jellyclient
}

/// What the session workload needs of a store: seed a player, lock and load it, save with the
/// token, save and release. `jelly bench` runs it on the embedded store, through `JellyClient`
/// (`--http-client jellyclient`) or over raw HTTP/1.1 connections (`--http-client raw`).
protocol SessionTarget: Sendable {
    func seed(partition: String, keys: [String], value: [UInt8]) async throws
    /// The lock's token and the bytes of the values loaded.
    func lockAndLoad(partition: String, owner: String) async throws -> (token: LockToken, loadedBytes: Int)
    func save(partition: String, key: String, value: [UInt8], token: LockToken) async throws
    func saveAndRelease(partition: String, key: String, value: [UInt8], token: LockToken) async throws
}

/// The workload on any `JellyStore` (embedded, or `JellyClient`).
struct StoreTarget: SessionTarget {
    let store: any JellyStore

    func seed(partition: String, keys: [String], value: [UInt8]) async throws {
        _ = try await store.write(partition: partition, keys.map { .put(key: $0, value: value) }, lockToken: nil, releaseLock: false)
    }

    func lockAndLoad(partition: String, owner: String) async throws -> (token: LockToken, loadedBytes: Int) {
        let (lock, objects) = try await store.acquireLockAndLoad(partition: partition, owner: owner, ttlMilliseconds: 60_000)
        return (lock.token, objects.reduce(0) { $0 + $1.value.count })
    }

    func save(partition: String, key: String, value: [UInt8], token: LockToken) async throws {
        try await store.put(partition: partition, key: key, value: value, lockToken: token)
    }

    func saveAndRelease(partition: String, key: String, value: [UInt8], token: LockToken) async throws {
        try await store.saveAndRelease(partition: partition, [.put(key: key, value: value)], lockToken: token)
    }
}

/// The workload over one keep-alive HTTP/1.1 connection of its own, with requests written by
/// hand and answers parsed only as far as the workload needs: the benchmark measures the
/// server, not an HTTP client library (async-http-client used a whole core for 9,000 saves/s
/// on this 2-core machine, where the server shares the cores with the load).
final class RawHTTPTarget: SessionTarget {
    private let channel: Channel
    private let host: String
    private let authorization: String

    static func connect(url: String, token: String?, group: EventLoopGroup) async throws -> RawHTTPTarget {
        guard url.hasPrefix("http://") else {
            throw JellyError(.invalidArgument, "--http-client raw speaks plain http:// only (got \(url)); use --http-client jellyclient for https")
        }
        let hostPort = url.dropFirst("http://".count).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) else {
            throw JellyError(.invalidArgument, "the URL needs a port, like http://127.0.0.1:7420 (got \(url))")
        }
        let host = String(hostPort[..<colon])
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ResponseParser()) }
            }
            .connect(host: host, port: port).get()
        return RawHTTPTarget(channel: channel, host: hostPort, authorization: token.map { "Authorization: Bearer \($0)\r\n" } ?? "")
    }

    private init(channel: Channel, host: String, authorization: String) {
        self.channel = channel
        self.host = host
        self.authorization = authorization
    }

    func close() async {
        try? await channel.close()
    }

    func seed(partition: String, keys: [String], value: [UInt8]) async throws {
        let operations = keys.map { "{\"op\":\"put\",\"key\":\(quoted($0)),\"value_base64\":\"\(Data(value).base64EncodedString())\"}" }
        _ = try await send("POST", "/v1/partitions/\(PercentEncoding.escape(partition))/batch", json: "{\"operations\":[\(operations.joined(separator: ","))]}")
    }

    func lockAndLoad(partition: String, owner: String) async throws -> (token: LockToken, loadedBytes: Int) {
        let body = try await send("POST", "/v1/partitions/\(PercentEncoding.escape(partition))/lock", json: "{\"owner\":\(quoted(owner)),\"ttl_ms\":60000,\"load\":true}")
        struct Loaded: Decodable {
            var token: UInt64
            var objects: [Object]?
            struct Object: Decodable { var value_base64: String }
        }
        let loaded = try JSONDecoder().decode(Loaded.self, from: Data(body.readableBytesView))
        // Decoded sizes from the base64 text (3 bytes per 4 characters, less the padding).
        let bytes = (loaded.objects ?? []).reduce(0) { sum, object in
            let text = object.value_base64.utf8
            return sum + text.count / 4 * 3 - text.reversed().prefix(2).filter { $0 == UInt8(ascii: "=") }.count
        }
        return (LockToken(loaded.token), bytes)
    }

    func save(partition: String, key: String, value: [UInt8], token: LockToken) async throws {
        try await put(partition: partition, key: key, value: value, token: token)
    }

    /// A PUT, with the lock token when there is one (a save to an unlocked partition has none).
    func put(partition: String, key: String, value: [UInt8], token: LockToken? = nil) async throws {
        var request = ByteBuffer()
        request.reserveCapacity(256 + value.count)
        request.writeString("PUT /v1/partitions/\(PercentEncoding.escape(partition))/objects/\(PercentEncoding.escape(key)) HTTP/1.1\r\nHost: \(host)\r\n\(authorization)")
        request.writeString("Content-Type: application/octet-stream\r\n\(token.map { "Jelly-Lock-Token: \($0.rawValue)\r\n" } ?? "")Content-Length: \(value.count)\r\n\r\n")
        request.writeBytes(value)
        _ = try await exchange(request, what: "PUT")
    }

    func saveAndRelease(partition: String, key: String, value: [UInt8], token: LockToken) async throws {
        let json = "{\"lock_token\":\(token.rawValue),\"release_lock\":true,\"operations\":[{\"op\":\"put\",\"key\":\(quoted(key)),\"value_base64\":\"\(Data(value).base64EncodedString())\"}]}"
        _ = try await send("POST", "/v1/partitions/\(PercentEncoding.escape(partition))/batch", json: json)
    }

    func send(_ method: String, _ path: String, json: String) async throws -> ByteBuffer {
        var request = ByteBuffer()
        request.writeString("\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\n\(authorization)Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n")
        request.writeString(json)
        return try await exchange(request, what: "\(method) \(path)")
    }

    /// Writes one request and waits for its answer; anything but 2xx is an error with the
    /// server's message.
    private func exchange(_ request: ByteBuffer, what: String) async throws -> ByteBuffer {
        let promise = channel.eventLoop.makePromise(of: RawResponse.self)
        channel.writeAndFlush(PendingRequest(bytes: request, promise: promise), promise: nil)
        let response = try await promise.futureResult.get()
        guard (200..<300).contains(response.status) else {
            throw JellyError(.unavailable, "\(what): HTTP \(response.status): \(String(buffer: response.body))")
        }
        return response.body
    }

    /// A JSON string literal.
    private func quoted(_ s: String) -> String {
        (try? String(decoding: JSONEncoder().encode(s), as: UTF8.self)) ?? "\"\""
    }
}

struct RawResponse: Sendable {
    var status: Int
    var body: ByteBuffer
}

struct PendingRequest {
    var bytes: ByteBuffer
    var promise: EventLoopPromise<RawResponse>
}

/// Writes requests and matches answers to them in order (HTTP/1.1 keep-alive, one at a time
/// per connection in this workload). Answers need a Content-Length (or none for 204/304):
/// what `jelly serve` sends.
final class ResponseParser: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RawResponse>>()
    private var buffer = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.promise)
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        do {
            while let response = try parseOne() {
                guard let promise = waiting.popFirst() else { throw JellyError(.unavailable, "an HTTP answer nobody asked for") }
                promise.succeed(response)
            }
        } catch {
            fail(error, context: context)
        }
        if buffer.readerIndex > 64 << 10 { buffer.discardReadBytes() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(JellyError(.unavailable, "the server closed the connection"), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error, context: context)
    }

    private func fail(_ error: Error, context: ChannelHandlerContext) {
        while let promise = waiting.popFirst() { promise.fail(error) }
        context.close(promise: nil)
    }

    /// One whole answer from the front of the buffer, or nil when more bytes are needed. Reads
    /// bytes, not strings: this runs once per request.
    private func parseOne() throws -> RawResponse? {
        let view = buffer.readableBytesView
        guard let headEnd = Self.find(view, [13, 10, 13, 10]) else { return nil }
        let start = view.startIndex
        func digit(_ i: Int) -> Int? {
            let c = view[i]
            return c >= 48 && c <= 57 ? Int(c - 48) : nil
        }
        guard headEnd - start >= 12, view[start..<start + 9].elementsEqual("HTTP/1.1 ".utf8),
              let d0 = digit(start + 9), let d1 = digit(start + 10), let d2 = digit(start + 11) else {
            throw JellyError(.unavailable, "not an HTTP/1.1 answer: \(String(decoding: view[start..<min(headEnd, start + 80)], as: UTF8.self))")
        }
        let status = d0 * 100 + d1 * 10 + d2
        var length = 0
        var line = start
        while let next = Self.find(view[line..<headEnd + 2], [13, 10]) {
            line = next + 2
            if Self.hasPrefixIgnoringCase(view, at: line, "content-length:") {
                var i = line + 15
                length = 0
                while i < headEnd, view[i] == 32 { i += 1 }
                while i < headEnd, let d = digit(i) { length = length * 10 + d; i += 1 }
            } else if Self.hasPrefixIgnoringCase(view, at: line, "transfer-encoding:") {
                throw JellyError(.unavailable, "chunked answers are not supported by the raw bench client")
            }
            if line >= headEnd { break }
        }
        let headBytes = headEnd - start + 4
        guard buffer.readableBytes >= headBytes + length else { return nil }
        buffer.moveReaderIndex(forwardBy: headBytes)
        guard let body = buffer.readSlice(length: length) else { return nil }
        return RawResponse(status: status, body: body)
    }

    private static func hasPrefixIgnoringCase(_ view: ByteBufferView, at i: Int, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard i + count <= view.endIndex else { return false }
        let p = prefix.utf8Start
        for k in 0..<count where view[i + k] | 0x20 != p[k] | 0x20 { return false }
        return true
    }

    /// The index of the first `needle` (2 or 4 bytes) in `view`.
    private static func find(_ view: ByteBufferView, _ needle: [UInt8]) -> Int? {
        var i = view.startIndex
        let end = view.endIndex - needle.count
        while i <= end {
            if view[i] == needle[0] && view[i + 1] == needle[1] && (needle.count == 2 || (view[i + 2] == needle[2] && view[i + 3] == needle[3])) {
                return i
            }
            i += 1
        }
        return nil
    }
}
