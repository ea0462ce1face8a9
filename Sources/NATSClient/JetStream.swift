import Foundation
import NIOCore

/// An error answer of the JetStream API (`{"error":{"code":…,"err_code":…,"description":…}}`).
public struct JetStreamAPIError: Error, Sendable, Equatable, Decodable, CustomStringConvertible {
    public var code: Int
    public var errCode: Int
    public var description: String

    enum CodingKeys: String, CodingKey { case code, errCode = "err_code", description }

    public init(code: Int, errCode: Int, description: String) {
        self.code = code
        self.errCode = errCode
        self.description = description
    }

    /// 10071: an expected last (subject) sequence did not match.
    public static let wrongLastSequence = 10071
    /// 10164: another publish checking the same subject is in flight; retry.
    public static let expectedSequenceBusy = 10164
    /// 10037: no message found.
    public static let noMessageFound = 10037
    /// 10059: stream not found.
    public static let streamNotFound = 10059
}

/// The stream settings this client sets; the server fills in the rest.
public struct StreamConfig: Codable, Sendable, Equatable {
    public var name: String
    public var subjects: [String]
    public var storage: String = "file"
    public var numReplicas: Int = 1
    public var maxMsgsPerSubject: Int64 = -1
    public var discard: String = "old"
    public var allowDirect: Bool = false
    public var allowAtomic: Bool = false
    public var allowMsgTTL: Bool = false
    public var duplicateWindowNanoseconds: Int64?
    public var metadata: [String: String]?

    enum CodingKeys: String, CodingKey {
        case name, subjects, storage, discard, metadata
        case numReplicas = "num_replicas"
        case maxMsgsPerSubject = "max_msgs_per_subject"
        case allowDirect = "allow_direct"
        case allowAtomic = "allow_atomic"
        case allowMsgTTL = "allow_msg_ttl"
        case duplicateWindowNanoseconds = "duplicate_window"
    }

    public init(name: String, subjects: [String]) {
        self.name = name
        self.subjects = subjects
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        subjects = try c.decodeIfPresent([String].self, forKey: .subjects) ?? []
        storage = try c.decodeIfPresent(String.self, forKey: .storage) ?? "file"
        numReplicas = try c.decodeIfPresent(Int.self, forKey: .numReplicas) ?? 1
        maxMsgsPerSubject = try c.decodeIfPresent(Int64.self, forKey: .maxMsgsPerSubject) ?? -1
        discard = try c.decodeIfPresent(String.self, forKey: .discard) ?? "old"
        allowDirect = try c.decodeIfPresent(Bool.self, forKey: .allowDirect) ?? false
        allowAtomic = try c.decodeIfPresent(Bool.self, forKey: .allowAtomic) ?? false
        allowMsgTTL = try c.decodeIfPresent(Bool.self, forKey: .allowMsgTTL) ?? false
        duplicateWindowNanoseconds = try c.decodeIfPresent(Int64.self, forKey: .duplicateWindowNanoseconds)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
    }
}

public struct StreamState: Decodable, Sendable {
    public var messages: UInt64
    public var bytes: UInt64
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var numSubjects: Int?
    public var subjects: [String: UInt64]?

    enum CodingKeys: String, CodingKey {
        case messages, bytes, subjects
        case firstSeq = "first_seq", lastSeq = "last_seq", numSubjects = "num_subjects"
    }
}

public struct ClusterInfo: Decodable, Sendable {
    public struct Replica: Decodable, Sendable {
        public var name: String
        public var current: Bool?
        public var offline: Bool?
        public var lag: UInt64?
    }
    public var name: String?
    public var leader: String?
    public var replicas: [Replica]?
}

public struct StreamInfo: Decodable, Sendable {
    public var config: StreamConfig
    public var state: StreamState
    public var cluster: ClusterInfo?
    /// Paging of `state.subjects` when a subjects filter was given.
    public var total: Int?
    public var offset: Int?
    public var limit: Int?
}

/// The acknowledgement of a JetStream publish (or of an atomic batch's commit).
public struct PubAck: Decodable, Sendable, Equatable {
    public var stream: String
    public var seq: UInt64
    public var duplicate: Bool?
    /// Atomic batches: the batch id and how many messages it stored.
    public var batch: String?
    public var count: Int?
}

extension PubAck {
    /// Reads `{"stream":"S","seq":N[,"duplicate":B][,"batch":"ID"][,"count":N][,"domain":"D"]}`
    /// (any order, any whitespace); nil for anything else: another key, an escape in a string, a
    /// nested value, a number that is not a plain non-negative integer. The caller then decodes
    /// with JSONDecoder, so nil is never wrong, only slower.
    init?<Bytes: Collection<UInt8>>(flatJSON bytes: Bytes) {
        var reader = FlatJSONReader(Array(bytes))
        var stream: String?
        var seq: UInt64?
        var duplicate: Bool?
        var batch: String?
        var count: Int?
        guard reader.skip(0x7B) else { return nil } // {
        if !reader.skip(0x7D) { // }
            repeat {
                guard let key = reader.string(), reader.skip(0x3A) else { return nil } // :
                switch key {
                case "stream": guard let v = reader.string() else { return nil }; stream = v
                case "domain": guard reader.string() != nil else { return nil }
                case "batch": guard let v = reader.string() else { return nil }; batch = v
                case "seq": guard let v = reader.integer() else { return nil }; seq = v
                case "count": guard let v = reader.integer(), v <= UInt64(Int.max) else { return nil }; count = Int(v)
                case "duplicate": guard let v = reader.bool() else { return nil }; duplicate = v
                default: return nil
                }
            } while reader.skip(0x2C) // ,
            guard reader.skip(0x7D) else { return nil }
        }
        guard reader.atEnd, let stream, let seq else { return nil }
        self.init(stream: stream, seq: seq, duplicate: duplicate, batch: batch, count: count)
    }
}

/// The few JSON tokens `PubAck(flatJSON:)` accepts; any other input makes a reader return nil.
struct FlatJSONReader {
    private let bytes: [UInt8]
    private var i = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func skip(_ byte: UInt8) -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == byte else { return false }
        i += 1
        return true
    }

    var atEnd: Bool {
        mutating get {
            skipSpace()
            return i == bytes.count
        }
    }

    /// A string without escapes.
    mutating func string() -> String? {
        guard skip(0x22) else { return nil }
        let start = i
        while i < bytes.count, bytes[i] != 0x22 {
            if bytes[i] == 0x5C || bytes[i] < 0x20 { return nil }
            i += 1
        }
        guard i < bytes.count else { return nil }
        defer { i += 1 }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    /// Digits only, no sign, fraction or exponent, at most UInt64.max.
    mutating func integer() -> UInt64? {
        skipSpace()
        var value: UInt64 = 0
        let start = i
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(bytes[i] - 0x30))
            guard !o1, !o2 else { return nil }
            value = sum
            i += 1
        }
        guard i > start else { return nil }
        if i < bytes.count, bytes[i] == 0x2E || bytes[i] == 0x65 || bytes[i] == 0x45 { return nil } // . e E
        return value
    }

    mutating func bool() -> Bool? {
        skipSpace()
        if bytes[i...].starts(with: Array("true".utf8)) { i += 4; return true }
        if bytes[i...].starts(with: Array("false".utf8)) { i += 5; return false }
        return nil
    }
}

/// The answer of `JetStream.lastMessages`: messages in stream order; every message up to
/// `upToSequence` was reflected at the replica that answered (0: unknown, nothing matched);
/// `pending` matching subjects were left out (the answer hit the server's size cap).
public struct LastMessages: Sendable {
    public var messages: [StoredMessage]
    public var upToSequence: UInt64
    public var pending: UInt64
}

/// A message read back from a stream.
public struct StoredMessage: Sendable {
    public var subject: String
    public var sequence: UInt64
    public var headers: NATSHeaders?
    public var payload: [UInt8]
}

/// The parts of the JetStream API that a key-value style client needs: stream management,
/// publish with acknowledgement and expectation headers, atomic batch publish, reads of a
/// subject's last message through the stream leader, and of many subjects' last messages at one
/// point through a direct get.
public struct JetStream: Sendable {
    public let connection: NATSConnection
    public let apiPrefix: String
    public let timeout: Duration

    /// Most messages in one atomic batch (the server's limit).
    public static let atomicBatchMessagesMax = 1000

    public init(connection: NATSConnection, apiPrefix: String = "$JS.API", timeout: Duration = .seconds(5)) {
        self.connection = connection
        self.apiPrefix = apiPrefix
        self.timeout = timeout
    }

    struct Envelope<T: Decodable>: Decodable {
        var error: JetStreamAPIError?
        var value: T?
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: AnyKey.self)
            error = try c.decodeIfPresent(JetStreamAPIError.self, forKey: AnyKey("error"))
            value = error == nil ? try T(from: decoder) : nil
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ message: NATSMessage, subject: String) throws -> T {
        if let status = message.status, message.payload.readableBytes == 0 {
            throw JetStreamAPIError(code: status, errCode: 0, description: message.headers?.statusDescription ?? "status \(status) on \(subject)")
        }
        do {
            let envelope = try JSONCoding.decoder.decode(Envelope<T>.self, from: Data(message.payload.readableBytesView))
            if let error = envelope.error { throw error }
            guard let value = envelope.value else { throw NATSError.protocolViolation("empty answer on \(subject)") }
            return value
        } catch let error as JetStreamAPIError {
            throw error
        } catch let error as NATSError {
            throw error
        } catch {
            throw NATSError.protocolViolation("unreadable answer on \(subject): \(error)")
        }
    }

    /// Calls one API endpoint (`$JS.API.<endpoint>`) with a JSON body.
    public func api<Body: Encodable, Answer: Decodable>(_ endpoint: String, _ body: Body?, as: Answer.Type) async throws -> Answer {
        let subject = apiPrefix + "." + endpoint
        var payload = ByteBuffer()
        if let body { payload.writeBytes(try JSONEncoder().encode(body)) }
        let reply = try await connection.request(subject, payload: payload, timeout: timeout)
        return try Self.decode(Answer.self, reply, subject: subject)
    }

    public func createStream(_ config: StreamConfig) async throws -> StreamInfo {
        try await api("STREAM.CREATE.\(config.name)", config, as: StreamInfo.self)
    }

    public func updateStream(_ config: StreamConfig) async throws -> StreamInfo {
        try await api("STREAM.UPDATE.\(config.name)", config, as: StreamInfo.self)
    }

    public func deleteStream(_ name: String) async throws {
        struct Deleted: Decodable { var success: Bool }
        _ = try await api("STREAM.DELETE.\(name)", Optional<[String: String]>.none, as: Deleted.self)
    }

    /// The stream's info, or nil when it does not exist.
    public func streamInfo(_ name: String) async throws -> StreamInfo? {
        do {
            return try await api("STREAM.INFO.\(name)", Optional<[String: String]>.none, as: StreamInfo.self)
        } catch let error as JetStreamAPIError where error.errCode == JetStreamAPIError.streamNotFound {
            return nil
        }
    }

    /// Every subject matching `filter` that holds messages, with its message count (all pages).
    public func subjects(stream: String, filter: String) async throws -> [String: UInt64] {
        try await subjectsWithLastSequence(stream: stream, filter: filter).subjects
    }

    /// `subjects`, and the lowest stream last sequence the pages were read at (the leader
    /// answers: everything up to it is reflected).
    public func subjectsWithLastSequence(stream: String, filter: String) async throws -> (subjects: [String: UInt64], lastSequence: UInt64) {
        struct Request: Encodable {
            var subjects_filter: String
            var offset: Int
        }
        var all: [String: UInt64] = [:]
        var offset = 0
        var lastSequence = UInt64.max
        while true {
            let info = try await api("STREAM.INFO.\(stream)", Request(subjects_filter: filter, offset: offset), as: StreamInfo.self)
            lastSequence = min(lastSequence, info.state.lastSeq)
            let page = info.state.subjects ?? [:]
            all.merge(page) { a, _ in a }
            offset += page.count
            guard let total = info.total, offset < total, !page.isEmpty else { return (all, lastSequence) }
        }
    }

    /// The last message on `subject`, read through the stream leader (never a lagging
    /// replica), or nil when the subject has none.
    public func lastMessage(stream: String, subject: String) async throws -> StoredMessage? {
        struct Request: Encodable { var last_by_subj: String }
        return try await getMessage(stream: stream, Request(last_by_subj: subject))
    }

    /// The first message at or after sequence `from` on a subject matching `subject` (wildcards
    /// allowed), read through the stream leader, or nil when there is none.
    public func message(stream: String, from: UInt64, subject: String) async throws -> StoredMessage? {
        struct Request: Encodable {
            var seq: UInt64
            var next_by_subj: String
        }
        return try await getMessage(stream: stream, Request(seq: max(from, 1), next_by_subj: subject))
    }

    /// The last message of every subject matching `subjects` (wildcards allowed), read at one
    /// point of the stream by whichever replica answers direct gets (the stream needs
    /// `allow_direct`; a follower may lag: `upToSequence` says how far the answer reaches).
    /// Messages below `from` are left out (to read on after a partial answer). At most
    /// `lastMessagesMax` subjects may match (else `JetStreamAPIError` 413).
    public func lastMessages(stream: String, subjects: [String], from: UInt64 = 0) async throws -> LastMessages {
        struct Request: Encodable {
            var multi_last: [String]
            var seq: UInt64?
        }
        let body = try JSONEncoder().encode(Request(multi_last: subjects, seq: from > 0 ? from : nil))
        let replies = try await connection.requestMany(apiPrefix + ".DIRECT.GET." + stream, payload: ByteBuffer(bytes: body), timeout: timeout)
        var answer = LastMessages(messages: [], upToSequence: 0, pending: 0)
        for reply in replies {
            guard let headers = reply.headers else {
                throw NATSError.protocolViolation("a direct get on \(stream) answered without headers")
            }
            switch headers.status {
            case nil:
                guard let subject = headers["Nats-Subject"], let sequence = headers["Nats-Sequence"].flatMap({ UInt64($0) }) else {
                    throw NATSError.protocolViolation("a direct get on \(stream) answered a message without its subject or sequence")
                }
                answer.messages.append(StoredMessage(subject: subject, sequence: sequence, headers: headers, payload: Array(reply.payload.readableBytesView)))
            case 204?:
                answer.upToSequence = headers["Nats-UpTo-Sequence"].flatMap { UInt64($0) } ?? 0
                answer.pending = headers["Nats-Num-Pending"].flatMap { UInt64($0) } ?? 0
            case 404?:
                break // no subject matches (at this replica)
            case let status?:
                throw JetStreamAPIError(code: status, errCode: 0, description: "direct get on \(stream): \(headers.statusDescription ?? "status \(status)")")
            }
        }
        return answer
    }

    /// Most subjects one `lastMessages` call may match (nats-server answers 413 beyond it).
    public static let lastMessagesMax = 1024

    private struct GetAnswer: Decodable {
        struct Message: Decodable {
            var subject: String
            var seq: UInt64
            var hdrs: String?
            var data: String?
        }
        var message: Message
    }

    private func getMessage<Body: Encodable>(stream: String, _ request: Body) async throws -> StoredMessage? {
        do {
            let answer = try await api("STREAM.MSG.GET.\(stream)", request, as: GetAnswer.self)
            let m = answer.message
            var headers: NATSHeaders? = nil
            if let h = m.hdrs, let bytes = Data(base64Encoded: h) {
                headers = NATSHeaders.parse(ByteBuffer(bytes: bytes).readableBytesView)
            }
            let payload = m.data.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
            return StoredMessage(subject: m.subject, sequence: m.seq, headers: headers, payload: payload)
        } catch let error as JetStreamAPIError where error.errCode == JetStreamAPIError.noMessageFound || error.code == 404 {
            return nil
        }
    }

    /// Removes the messages on subjects matching `filter`: those below sequence `before`, or
    /// all but the newest `keep`, or (neither) all. Returns how many were removed.
    @discardableResult
    public func purge(stream: String, filter: String, before: UInt64? = nil, keep: UInt64? = nil) async throws -> UInt64 {
        struct Request: Encodable {
            var filter: String
            var seq: UInt64?
            var keep: UInt64?
        }
        struct Answer: Decodable {
            var success: Bool
            var purged: UInt64
        }
        return try await api("STREAM.PURGE.\(stream)", Request(filter: filter, seq: before, keep: keep), as: Answer.self).purged
    }

    /// Publishes one message and waits for the stream's acknowledgement.
    public func publish(_ subject: String, payload: ByteBuffer = ByteBuffer(), headers: NATSHeaders? = nil) async throws -> PubAck {
        try await publish(subject, payload: payload, headers: headers, preceding: [])
    }

    private func publish(
        _ subject: String, payload: ByteBuffer, headers: NATSHeaders?, preceding: [(subject: String, headers: NATSHeaders?, payload: ByteBuffer)]
    ) async throws -> PubAck {
        let reply = try await connection.request(subject, payload: payload, headers: headers, timeout: timeout, preceding: preceding)
        // Every save's answer: read by hand when it is the usual flat success object (JSONDecoder
        // took a tenth of a cluster node's CPU), by the decoder otherwise (errors, anything new).
        if reply.status == nil, let ack = PubAck(flatJSON: reply.payload.readableBytesView) { return ack }
        return try Self.decode(PubAck.self, reply, subject: subject)
    }

    /// One message of an atomic batch.
    public struct BatchMessage: Sendable {
        public var subject: String
        public var headers: NATSHeaders
        public var payload: ByteBuffer
        public init(subject: String, headers: NATSHeaders = NATSHeaders(), payload: ByteBuffer = ByteBuffer()) {
            self.subject = subject
            self.headers = headers
            self.payload = payload
        }
    }

    /// Publishes `messages` as one atomic batch (all stored, or none): every message carries
    /// `Nats-Batch-Id` and `Nats-Batch-Sequence`, the last `Nats-Batch-Commit: 1`; all go out in
    /// one write, all but the last without a reply, the last as a request whose answer is the ack.
    /// The stream needs `allow_atomic`; at most `atomicBatchMessagesMax` messages.
    public func publishAtomic(_ messages: [BatchMessage]) async throws -> PubAck {
        guard !messages.isEmpty, messages.count <= Self.atomicBatchMessagesMax else {
            throw NATSError.invalidOption("an atomic batch holds 1...\(Self.atomicBatchMessagesMax) messages, not \(messages.count)")
        }
        var random = SystemRandomNumberGenerator()
        let id = String(random.next(), radix: 36) + String(random.next(), radix: 36)
        var staged: [(subject: String, headers: NATSHeaders?, payload: ByteBuffer)] = []
        staged.reserveCapacity(messages.count - 1)
        for (i, m) in messages.dropLast().enumerated() {
            var h = m.headers
            h["Nats-Batch-Id"] = id
            h["Nats-Batch-Sequence"] = String(i + 1)
            staged.append((m.subject, h, m.payload))
        }
        guard let last = messages.last else { throw NATSError.invalidOption("empty batch") }
        var h = last.headers
        h["Nats-Batch-Id"] = id
        h["Nats-Batch-Sequence"] = String(messages.count)
        h["Nats-Batch-Commit"] = "1"
        let ack = try await publish(last.subject, payload: last.payload, headers: h, preceding: staged)
        guard ack.batch == id, ack.count == messages.count else {
            throw NATSError.protocolViolation("the batch ack names batch \(ack.batch ?? "none") with \(ack.count ?? 0) messages, expected \(id) with \(messages.count)")
        }
        return ack
    }
}
