/// The two kinds of system objects a push writes in its own commit (docs/sync.md, "Stored
/// state"): each client's progress, and the partition's registry of clients. A small binary
/// encoding: little-endian varints and length-prefixed strings, a leading format byte.

/// One client's progress: the last mutation id applied and the recent results.
struct ClientProgress: Equatable, Sendable {
    /// A result as stored. `version` 0 on an applied result means "this record's own commit".
    struct Stored: Equatable, Sendable {
        enum Status: UInt8 { case applied = 1, conflict = 2, rejected = 3 }
        var id: UInt64
        var status: Status
        var version: UInt64
        var deleted: Bool = false
        var code: String = ""
    }

    var lastID: UInt64 = 0
    var results: [Stored] = []

    static let formatByte: UInt8 = 1

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.byte(Self.formatByte)
        w.varint(lastID)
        w.varint(UInt64(results.count))
        for r in results {
            w.varint(r.id)
            w.byte(r.status.rawValue | (r.deleted ? 0x80 : 0))
            w.varint(r.version)
            if r.status == .rejected { w.string(r.code) }
        }
        return w.bytes
    }

    init() {}

    /// Decodes a stored record; `ownVersion` is the version it was committed at.
    init(decoding bytes: [UInt8], ownVersion: UInt64) throws {
        var r = ByteReader(bytes)
        guard try r.byte() == Self.formatByte else { throw Self.damaged }
        lastID = try r.varint()
        let n = try r.varint()
        guard n <= UInt64(bytes.count) else { throw Self.damaged }
        results.reserveCapacity(Int(n))
        for _ in 0..<n {
            let id = try r.varint()
            let flags = try r.byte()
            guard let status = Stored.Status(rawValue: flags & 0x7F) else { throw Self.damaged }
            var version = try r.varint()
            if status == .applied && version == 0 { version = ownVersion }
            let code = status == .rejected ? try r.string() : ""
            results.append(Stored(id: id, status: status, version: version, deleted: flags & 0x80 != 0, code: code))
        }
    }

    static let damaged = JellyError(.corruption, "a sync client record is unreadable; the client's retried mutations will be checked against their base versions again")
}

/// The partition's sync clients and when each last pushed (for `JellyLimits.syncClientsMax`).
struct ClientRegistry: Equatable, Sendable {
    var clients: [String: Int64] = [:]

    static let formatByte: UInt8 = 1

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.byte(Self.formatByte)
        w.varint(UInt64(clients.count))
        for (id, seen) in clients.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            w.string(id)
            w.varint(UInt64(bitPattern: seen))
        }
        return w.bytes
    }

    init() {}

    init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard try r.byte() == Self.formatByte else { throw ClientProgress.damaged }
        let n = try r.varint()
        guard n <= UInt64(bytes.count) else { throw ClientProgress.damaged }
        for _ in 0..<n {
            let id = try r.string()
            clients[id] = Int64(bitPattern: try r.varint())
        }
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func string(_ s: String) {
        varint(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() throws -> UInt8 {
        guard at < bytes.count else { throw ClientProgress.damaged }
        at += 1
        return bytes[at - 1]
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw ClientProgress.damaged }
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func string() throws -> String {
        let n = try varint()
        guard n <= UInt64(bytes.count - at) else { throw ClientProgress.damaged }
        let s = String(decoding: bytes[at..<(at + Int(n))], as: UTF8.self)
        at += Int(n)
        return s
    }
}
