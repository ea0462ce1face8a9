import Foundation
import NIOCore

/// Stream snapshots and restores through the JetStream API (`STREAM.SNAPSHOT`, `STREAM.RESTORE`),
/// the way the `nats` tool makes `nats stream backup`: a consistent copy of a stream's messages,
/// taken by its leader while the stream keeps serving, as an opaque byte stream of chunks.
extension JetStream {
    /// What the server answered a snapshot request with: the stream's configuration and state,
    /// as JSON. `restore` needs both.
    public struct SnapshotHeader: Sendable {
        /// `{"config": …, "state": …}` exactly as the server sent them.
        public var json: [UInt8]
        public var state: StreamState
    }

    /// Snapshots `stream` (without its consumers): `write` receives every chunk in order.
    /// Chunks are acknowledged as they are written, which is the server's flow control. Throws
    /// when no chunk arrives for `idleTimeout`.
    public func snapshot(
        stream: String, chunkBytes: Int = 256 << 10, idleTimeout: Duration = .seconds(30),
        write: @escaping @Sendable (ByteBuffer) throws -> Void
    ) async throws -> SnapshotHeader {
        let inbox = "_INBOX.jelly-snapshot." + String(UInt64.random(in: 1...UInt64.max), radix: 36)
        let subscription = try connection.subscribe(inbox)
        defer { subscription.unsubscribe() }
        struct Request: Encodable {
            var deliver_subject: String
            var no_consumers: Bool
            var chunk_size: Int
        }
        let subject = apiPrefix + ".STREAM.SNAPSHOT." + stream
        var payload = ByteBuffer()
        payload.writeBytes(try JSONEncoder().encode(Request(deliver_subject: inbox, no_consumers: true, chunk_size: chunkBytes)))
        let reply = try await connection.request(subject, payload: payload, timeout: timeout)
        struct Answer: Decodable { var state: StreamState }
        let answer = try Self.decode(Answer.self, reply, subject: subject)
        let header = SnapshotHeader(json: Self.configAndState(reply.payload), state: answer.state)

        let connection = self.connection
        let lastChunk = LastActivity()
        // The chunks, against a watchdog: a stream leader that stops sending (it died, it lost
        // the leadership) must not hang the backup.
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await message in subscription.messages {
                    lastChunk.touch()
                    if message.payload.readableBytes == 0 {
                        if let status = message.status, status >= 400 {
                            throw JetStreamAPIError(code: status, errCode: 0, description: message.headers?.statusDescription ?? "snapshot of \(stream) failed")
                        }
                        return true
                    }
                    try write(message.payload)
                    if let ack = message.replyTo { try connection.publish(ack) }
                }
                return false
            }
            group.addTask {
                while !lastChunk.idle(longerThan: idleTimeout) { try await Task.sleep(for: .milliseconds(200)) }
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard finished else {
            throw NATSError.protocolViolation("the snapshot of \(stream) stopped: no chunk for \(idleTimeout), or the connection closed")
        }
        return header
    }

    /// Restores a snapshot into a stream that must not exist: `header` from `snapshot`, then
    /// every chunk from `next` (nil at the end), each acknowledged by the server before the next.
    public func restore(stream: String, header: [UInt8], next: () throws -> [UInt8]?) async throws -> StreamInfo {
        let subject = apiPrefix + ".STREAM.RESTORE." + stream
        var payload = ByteBuffer()
        payload.writeBytes(header)
        let reply = try await connection.request(subject, payload: payload, timeout: timeout)
        struct Answer: Decodable { var deliver_subject: String }
        let deliver = try Self.decode(Answer.self, reply, subject: subject).deliver_subject
        while let chunk = try next() {
            var buffer = ByteBuffer()
            buffer.writeBytes(chunk)
            let ack = try await connection.request(deliver, payload: buffer, timeout: .seconds(30))
            if ack.payload.readableBytes > 0 {
                throw NATSError.protocolViolation("restoring \(stream): \(String(buffer: ack.payload))")
            }
        }
        let done = try await connection.request(deliver, payload: ByteBuffer(), timeout: .seconds(120))
        return try Self.decode(StreamInfo.self, done, subject: deliver)
    }

    static func configAndState(_ payload: ByteBuffer) -> [UInt8] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload.readableBytesView)) as? [String: Any] else { return [] }
        var kept: [String: Any] = [:]
        kept["config"] = object["config"]
        kept["state"] = object["state"]
        return Array((try? JSONSerialization.data(withJSONObject: kept, options: [.sortedKeys])) ?? Data())
    }

}

/// When a snapshot's last chunk arrived.
final class LastActivity: @unchecked Sendable {
    private let lock = NSLock()
    private var last = ContinuousClock.now

    func touch() { lock.lock(); last = .now; lock.unlock() }
    func idle(longerThan d: Duration) -> Bool { lock.lock(); defer { lock.unlock() }; return ContinuousClock.now - last > d }
}
