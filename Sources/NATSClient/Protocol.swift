import Foundation
import NIOCore

/// NATS message headers: an optional status line (`NATS/1.0 503`, `NATS/1.0 404 No Messages`)
/// and ordered `Name: value` fields. Names compare case-sensitively, as the server sends them.
public struct NATSHeaders: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var fields: [(name: String, value: String)] = []
    /// The status code of a status message (no responders 503, no messages 404, end of batch 204…).
    public var status: Int?
    public var statusDescription: String?

    public init() {}
    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { (name: $0.0, value: $0.1) }
    }

    public subscript(name: String) -> String? {
        get { fields.last(where: { $0.name == name })?.value }
        set {
            fields.removeAll { $0.name == name }
            if let newValue { fields.append((name: name, value: newValue)) }
        }
    }

    public static func == (a: NATSHeaders, b: NATSHeaders) -> Bool {
        a.status == b.status && a.statusDescription == b.statusDescription
            && a.fields.map(\.name) == b.fields.map(\.name) && a.fields.map(\.value) == b.fields.map(\.value)
    }

    /// The size of the wire form, in bytes.
    var encodedLength: Int {
        fields.reduce(12) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
    }

    /// The wire form: `NATS/1.0\r\n` then `Name: value\r\n` per field, then `\r\n`.
    func write(to buffer: inout ByteBuffer) {
        buffer.writeString("NATS/1.0\r\n")
        for field in fields {
            buffer.writeString(field.name)
            buffer.writeString(": ")
            buffer.writeString(field.value)
            buffer.writeString("\r\n")
        }
        buffer.writeString("\r\n")
    }

    /// Parses the wire form; nil when it is not a NATS header block.
    static func parse(_ bytes: ByteBufferView) -> NATSHeaders? {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true).makeIterator()
        guard let first = lines.next(), first.hasPrefix("NATS/1.0") else { return nil }
        var headers = NATSHeaders()
        let rest = first.dropFirst("NATS/1.0".count).drop(while: { $0 == " " })
        if !rest.isEmpty {
            let parts = rest.split(separator: " ", maxSplits: 1)
            headers.status = Int(parts[0])
            if parts.count > 1 { headers.statusDescription = String(parts[1]) }
        }
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].drop(while: { $0 == " " }))
            headers.fields.append((name: name, value: value))
        }
        return headers
    }
}

/// A message delivered to a subscription or as a reply.
public struct NATSMessage: Sendable {
    public var subject: String
    public var replyTo: String?
    public var headers: NATSHeaders?
    public var payload: ByteBuffer

    public init(subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: ByteBuffer) {
        self.subject = subject
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }

    /// The payload as bytes.
    public var bytes: [UInt8] { Array(payload.readableBytesView) }
    /// A status message (headers with a status line and no payload), e.g. 503 no responders.
    public var status: Int? { headers?.status }
}

/// What the server sends (the client side of the NATS protocol).
enum ServerOp: Sendable {
    case info(ServerInfo)
    case msg(sid: UInt64, NATSMessage)
    case ping
    case pong
    case ok
    case err(String)
}

/// The server's INFO, as far as the client uses it.
public struct ServerInfo: Sendable, Decodable {
    public var server_id: String?
    public var server_name: String?
    public var version: String?
    public var max_payload: Int?
    public var headers: Bool?
    public var tls_required: Bool?
    public var tls_available: Bool?
    public var auth_required: Bool?
    public var connect_urls: [String]?
    public var nonce: String?
    public var jetstream: Bool?
}

/// Decodes the server's byte stream into `ServerOp`s. Control lines are bounded by
/// `maxControlLine` (the server's default 4 KiB); payloads by the size the line announces.
struct ServerOpDecoder: ByteToMessageDecoder {
    typealias InboundOut = ServerOp
    let maxControlLine: Int

    init(maxControlLine: Int = 64 * 1024) { self.maxControlLine = maxControlLine }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let op = try Self.parse(&buffer, maxControlLine: maxControlLine) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(op))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// Parses one op from the front of `buffer`, or returns nil (consuming nothing) when more
    /// bytes are needed.
    static func parse(_ buffer: inout ByteBuffer, maxControlLine: Int) throws -> ServerOp? {
        let view = buffer.readableBytesView
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maxControlLine { throw NATSError.protocolViolation("control line longer than \(maxControlLine) bytes") }
            return nil
        }
        var lineEnd = lf
        if lineEnd > view.startIndex && view[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
        let line = String(decoding: view[view.startIndex..<lineEnd], as: UTF8.self)
        let lineLength = lf - view.startIndex + 1
        let opName = line.prefix(while: { $0 != " " && $0 != "\t" }).uppercased()
        switch opName {
        case "MSG", "HMSG":
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let hasHeaders = opName == "HMSG"
            let argCount = parts.count - 1
            let expected = hasHeaders ? [4, 5] : [3, 4]
            guard expected.contains(argCount) else { throw NATSError.protocolViolation("malformed \(opName) line: \(line)") }
            let subject = parts[1]
            guard let sid = UInt64(parts[2]) else { throw NATSError.protocolViolation("bad sid in \(line)") }
            let reply: String? = argCount == expected[1] ? parts[3] : nil
            let total: Int
            var headerLength = 0
            if hasHeaders {
                guard let h = Int(parts[parts.count - 2]), let t = Int(parts[parts.count - 1]), h <= t else {
                    throw NATSError.protocolViolation("bad sizes in \(line)")
                }
                headerLength = h
                total = t
            } else {
                guard let t = Int(parts[parts.count - 1]) else { throw NATSError.protocolViolation("bad size in \(line)") }
                total = t
            }
            guard buffer.readableBytes >= lineLength + total + 2 else { return nil }
            buffer.moveReaderIndex(forwardBy: lineLength)
            var headers: NATSHeaders? = nil
            if hasHeaders {
                guard let headerBytes = buffer.readSlice(length: headerLength) else { return nil }
                headers = NATSHeaders.parse(headerBytes.readableBytesView)
            }
            guard let payload = buffer.readSlice(length: total - headerLength) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .msg(sid: sid, NATSMessage(subject: subject, replyTo: reply, headers: headers, payload: payload))
        default:
            buffer.moveReaderIndex(forwardBy: lineLength)
            switch opName {
            case "PING": return .ping
            case "PONG": return .pong
            case "+OK": return .ok
            case "-ERR":
                let text = line.dropFirst(4).trimmingCharacters(in: " '")
                return .err(text)
            case "INFO":
                let json = line.dropFirst(4).drop(while: { $0 == " " })
                do {
                    return .info(try JSONCoding.decoder.decode(ServerInfo.self, from: Data(json.utf8)))
                } catch {
                    throw NATSError.protocolViolation("unreadable INFO: \(error)")
                }
            default:
                throw NATSError.protocolViolation("unknown operation \(opName.prefix(16))")
            }
        }
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Client operations, encoded into a buffer.
enum ClientOp {
    /// One PUB or HPUB as the pieces to write, in order: a head (the control line and the
    /// header block, in a buffer of its exact size), the caller's payload as it is (not
    /// copied), and the closing CRLF.
    static func pub(
        into pieces: inout [ByteBuffer], allocator: ByteBufferAllocator,
        subject: String, reply: String?, headers: NATSHeaders?, payload: ByteBuffer
    ) {
        let headerLength = headers?.encodedLength ?? 0
        let size = headers == nil ? "\(payload.readableBytes)" : "\(headerLength) \(headerLength + payload.readableBytes)"
        let line = "\(headers == nil ? "PUB" : "HPUB") \(subject) \(reply.map { $0 + " " } ?? "")\(size)\r\n"
        var head = allocator.buffer(capacity: line.utf8.count + headerLength)
        head.writeString(line)
        headers?.write(to: &head)
        pieces.append(head)
        if payload.readableBytes > 0 { pieces.append(payload) }
        pieces.append(crlf)
    }

    static let crlf = ByteBuffer(string: "\r\n")

    static func sub(_ buffer: inout ByteBuffer, subject: String, queue: String?, sid: UInt64) {
        buffer.writeString("SUB \(subject) \(queue.map { $0 + " " } ?? "")\(sid)\r\n")
    }

    static func unsub(_ buffer: inout ByteBuffer, sid: UInt64) {
        buffer.writeString("UNSUB \(sid)\r\n")
    }
}
