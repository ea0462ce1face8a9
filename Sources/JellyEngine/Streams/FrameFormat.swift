import JellyCore

// The stream log's on-disk format (docs/format.md, "Stream log"). Frames live in files of
// their own, `frames/NNNNNNNN.frames`, written with buffered I/O and synced on an interval:
//
//     file    := header record*
//     header  := magic u64 ("JLYFRAME") format u32 (1) reserved u32 segment u64 createdAt i64   (32 bytes)
//     record  := checksum u32 length u32 kind u8 partitionLength u8 streamLength u8 reserved u8
//                a u64 b u64 c u64 partition stream value
//
// `length` counts the whole record; `checksum` is CRC-32C of everything after it. Integers are
// little-endian. What a, b and c mean depends on the kind (`FrameRecordKind`).

enum FrameFormat {
    static let magic: UInt64 = 0x454D_4152_4659_4C4A // "JLYFRAME" little-endian
    static let version: UInt32 = 1
    static let headerBytes = 32
    static let recordFixedBytes = 36

    static func recordBytes(partition: Int, stream: Int, value: Int) -> Int { recordFixedBytes + partition + stream + value }

    static func encodeHeader(segment: UInt32, createdAt: Int64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: headerBytes)
        out.withUnsafeMutableBytes { raw in
            guard let p = raw.baseAddress else { return }
            p.putLE(magic, at: 0)
            p.putLE(version, at: 8)
            p.putLE(UInt64(segment), at: 16)
            p.putLE(createdAt, at: 24)
        }
        return out
    }

    /// The segment id a header names, or nil when it is not a frame file header.
    static func decodeHeader(_ raw: UnsafeRawBufferPointer) -> UInt32? {
        guard raw.count >= headerBytes, let p = raw.baseAddress else { return nil }
        guard p.getLE(0, as: UInt64.self) == magic, p.getLE(8, as: UInt32.self) == version else { return nil }
        return UInt32(truncatingIfNeeded: p.getLE(16, as: UInt64.self))
    }

    /// Appends one record to `out`.
    static func append(_ kind: FrameRecordKind, partition: String, stream: String, a: UInt64, b: UInt64, c: UInt64, value: [UInt8] = [], to out: inout [UInt8]) {
        let start = out.count
        let pl = partition.utf8.count, sl = stream.utf8.count
        let length = recordBytes(partition: pl, stream: sl, value: value.count)
        out.append(contentsOf: repeatElement(0, count: recordFixedBytes))
        out.append(contentsOf: partition.utf8)
        out.append(contentsOf: stream.utf8)
        out.append(contentsOf: value)
        out.withUnsafeMutableBytes { raw in
            guard let p = raw.baseAddress?.advanced(by: start) else { return }
            p.putLE(UInt32(length), at: 4)
            p.storeBytes(of: kind.rawValue, toByteOffset: 8, as: UInt8.self)
            p.storeBytes(of: UInt8(pl), toByteOffset: 9, as: UInt8.self)
            p.storeBytes(of: UInt8(sl), toByteOffset: 10, as: UInt8.self)
            p.putLE(a, at: 12)
            p.putLE(b, at: 20)
            p.putLE(c, at: 28)
            p.putLE(crc32c(0, p + 4, length - 4), at: 0)
        }
    }

    /// A decoded record; ranges index the buffer it was decoded from.
    struct Record {
        var kind: FrameRecordKind
        var length: Int
        var a: UInt64, b: UInt64, c: UInt64
        var partition: Range<Int>
        var stream: Range<Int>
        var value: Range<Int>
    }

    enum DecodeError: Error { case truncated, badChecksum, badRecord(String) }

    /// Decodes the record at `offset` of `raw`.
    static func decode(_ raw: UnsafeRawBufferPointer, at offset: Int) throws(DecodeError) -> Record {
        guard let base = raw.baseAddress, offset + recordFixedBytes <= raw.count else { throw .truncated }
        let p = base + offset
        let length = Int(p.getLE(4, as: UInt32.self))
        let pl = Int(p.load(fromByteOffset: 9, as: UInt8.self)), sl = Int(p.load(fromByteOffset: 10, as: UInt8.self))
        guard length >= recordFixedBytes + pl + sl else { throw .badRecord("length \(length) is shorter than its names") }
        guard offset + length <= raw.count else { throw .truncated }
        guard p.getLE(0, as: UInt32.self) == crc32c(0, p + 4, length - 4) else { throw .badChecksum }
        guard let kind = FrameRecordKind(rawValue: p.load(fromByteOffset: 8, as: UInt8.self)) else {
            throw .badRecord("unknown record kind \(p.load(fromByteOffset: 8, as: UInt8.self))")
        }
        let names = offset + recordFixedBytes
        return Record(
            kind: kind, length: length,
            a: p.getLE(12, as: UInt64.self), b: p.getLE(20, as: UInt64.self), c: p.getLE(28, as: UInt64.self),
            partition: names..<(names + pl), stream: (names + pl)..<(names + pl + sl), value: (names + pl + sl)..<(offset + length)
        )
    }
}

/// What a stream log record says. Values are fixed by the format.
enum FrameRecordKind: UInt8, Sendable {
    /// A frame: a = sequence, b = commit time (ms since 1970, as i64), c = base version.
    case frame = 1
    /// Frames of the stream below sequence a are gone (a trim, or frames dropped by retention
    /// when the retention changed).
    case trim = 2
    /// The stream's retention: a = frames, b = bytes, c = age in ms.
    case retain = 3
    /// The stream was removed: frames below a are gone and its retention is the default again.
    case remove = 4
    /// Written first in every file: every sequence issued before the file began is below a.
    /// Followed by a `retain` record for each stream whose retention is not the default, so
    /// that deleting older files never loses one.
    case next = 5
}
