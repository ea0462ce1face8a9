import JellyCore

/// Where a partition lives in JetStream (docs/cluster.md, "Mapping"):
///
///     stream   <streamPrefix>_<shard>          shard = FNV-1a-64(partition) mod shards
///     lock     <subjectPrefix>.<shard>.<P>.l
///     fence    <subjectPrefix>.<shard>.<P>.f
///     object   <subjectPrefix>.<shard>.<P>.o.<K>
///     frame    <subjectPrefix>.<shard>.<P>.s.<S>.<U>   one subject per frame (U unique)
///     retain   <subjectPrefix>.<shard>.<P>.r.<S>       a stream's retention, when not the default
///     barrier  <subjectPrefix>.<shard>.b               plain reads' proof of freshness (one per shard)
///
/// P and K are the partition's and key's UTF-8 bytes in unpadded base64url, so any name that
/// the contract allows is one subject token (no `.`, `*`, `>` or spaces).
struct PartitionSubjects: Sendable {
    let stream: String
    let lock: String
    let fence: String
    /// The shard's read barrier (one token after the shard, so never a partition's subject).
    let barrier: String
    let objectPrefix: String
    /// Every subject of the partition (lock, fence, objects).
    let partitionWildcard: String
    let base: String

    init(partition: String, shards: Int, streamPrefix: String, subjectPrefix: String) {
        let shard = Int(PartitionSubjects.hash(partition) % UInt64(shards))
        let base = "\(subjectPrefix).\(shard).\(Base64URL.encode(Array(partition.utf8)))"
        barrier = "\(subjectPrefix).\(shard).b"
        stream = "\(streamPrefix)_\(shard)"
        self.base = base
        lock = base + ".l"
        fence = base + ".f"
        objectPrefix = base + ".o."
        partitionWildcard = base + ".>"
    }

    func object(_ key: String) -> String { objectPrefix + Base64URL.encode(Array(key.utf8)) }

    /// Every frame subject of `stream` (wildcard).
    func frames(_ stream: String) -> String { base + ".s." + Base64URL.encode(Array(stream.utf8)) + ".*" }
    /// A new frame's subject: unique, so the shard stream's one message per subject keeps it.
    func frame(_ stream: String, unique: String) -> String { base + ".s." + Base64URL.encode(Array(stream.utf8)) + "." + unique }
    func retention(_ stream: String) -> String { base + ".r." + Base64URL.encode(Array(stream.utf8)) }

    /// The key of an object subject, or nil when `subject` is not one of this partition's objects.
    func key(ofSubject subject: String) -> String? {
        guard subject.hasPrefix(objectPrefix), let bytes = Base64URL.decode(subject.dropFirst(objectPrefix.count)) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// FNV-1a, 64 bit: stable across processes, versions and machines (unlike `Hasher`).
    static func hash(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
}

/// Unpadded base64url (RFC 4648 §5).
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for c in text.utf8 {
            let v = reverse[Int(c)]
            if v == 0xFF { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(acc >> UInt32(bits) & 0xFF))
            }
        }
        return out
    }
}
