import CJellySystem
import JellyCore

// The on-disk format, as specified field by field in docs/format.md. This file holds only the
// shared constants and the encoders/decoders; the grammar in the doc is the reference.

enum Format {
    static let formatVersion: UInt32 = 1
    /// Blocks start and end on this boundary so direct I/O can write them.
    static let pageBytes = 4096

    static let segmentMagic: UInt64 = 0x4745_5359_4C4C_454A // "JELLYSEG" little-endian
    static let segmentHeaderBytes = 4096
    static let segmentHeaderUsedBytes = 64

    static let blockMagic: UInt32 = 0x4B4C_424A // "JBLK" little-endian
    static let blockHeaderBytes = 48
    static let blockFlagSeal: UInt32 = 1

    /// checksum u32, length u32, kind u8, flags u8, partitionLength u8, contentTypeLength u8,
    /// keyLength u16, reserved u16, expiresAt i64, token u64.
    static let recordFixedBytes = 32
    /// The version, last so it can be folded into a checksum computed before it was known.
    static let recordTrailerBytes = 8
    /// A lease record keeps the TTL it was granted with in its reserved u16, in units of this
    /// many milliseconds rounded up (the longest TTL, 24 h, is 43,200 units).
    static let leaseTTLUnitMilliseconds: Int64 = 2000

    static func leaseTTLUnits(_ ttlMilliseconds: Int64) -> UInt16 {
        UInt16(clamping: max(1, (ttlMilliseconds + leaseTTLUnitMilliseconds - 1) / leaseTTLUnitMilliseconds))
    }
    static let recordOverheadBytes = recordFixedBytes + recordTrailerBytes

    static let hintHeaderBytes = 64
    static let hintEntryFixedBytes = 48

    static func alignUp(_ n: Int) -> Int { (n + pageBytes - 1) & ~(pageBytes - 1) }
}

/// What a record says. Values are fixed by the format.
enum RecordKind: UInt8, Sendable {
    case put = 1
    case delete = 2
    /// A lease (lock) on the partition: owner in the key field, token and expiry in the header.
    case lease = 3
    /// The partition's lease was released or broken.
    case unlease = 4
    /// The last record of a sealed segment.
    case seal = 5
}

@inline(__always)
func crc32c(_ crc: UInt32, _ pointer: UnsafeRawPointer, _ count: Int) -> UInt32 {
    jelly_crc32c(crc, pointer, count)
}

func crc32c(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    bytes.baseAddress.map { crc32c(0, $0, bytes.count) } ?? 0
}

extension UnsafeMutableRawPointer {
    @inline(__always)
    func putLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

extension UnsafeRawPointer {
    @inline(__always)
    func getLE<T: FixedWidthInteger>(_ offset: Int, as: T.Type = T.self) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

// MARK: - Segment header

struct SegmentHeader: Equatable {
    var segmentID: UInt64
    /// Every version issued before this segment was created is below this.
    var versionFloor: UInt64
    var createdAtMilliseconds: Int64

    func encode(into p: UnsafeMutableRawPointer) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: Format.segmentHeaderBytes)
        p.putLE(Format.segmentMagic, at: 0)
        p.putLE(Format.formatVersion, at: 8)
        p.putLE(UInt32(Format.segmentHeaderBytes), at: 12)
        p.putLE(segmentID, at: 16)
        p.putLE(versionFloor, at: 24)
        p.putLE(createdAtMilliseconds, at: 32)
        p.putLE(crc32c(0, p, 60), at: 60)
    }

    /// Decodes and validates the first 64 bytes of a segment file.
    static func decode(_ p: UnsafeRawPointer, path: String) throws -> SegmentHeader {
        guard p.getLE(0, as: UInt64.self) == Format.segmentMagic else {
            throw JellyError(.corruption, "\(path) at offset 0: not a Jelly segment (bad magic)")
        }
        guard p.getLE(60, as: UInt32.self) == crc32c(0, p, 60) else {
            throw JellyError(.corruption, "\(path) at offset 0: segment header checksum mismatch")
        }
        let version = p.getLE(8, as: UInt32.self)
        guard version == Format.formatVersion else {
            throw JellyError(.corruption, "\(path): segment format version \(version) is not supported (this build reads \(Format.formatVersion))")
        }
        return SegmentHeader(
            segmentID: p.getLE(16), versionFloor: p.getLE(24), createdAtMilliseconds: p.getLE(32)
        )
    }
}

// MARK: - Block header

struct BlockHeader: Equatable {
    var segmentID: UInt64
    var payloadBytes: UInt32
    var recordCount: UInt32
    /// Offset in this segment through which the log was known durable when this block was
    /// written. Recovery uses it to tell a torn tail from corruption.
    var durableOffset: UInt64
    var flags: UInt32

    var totalBytes: Int { Format.alignUp(Format.blockHeaderBytes + Int(payloadBytes)) }

    func encode(into p: UnsafeMutableRawPointer) {
        p.putLE(Format.blockMagic, at: 0)
        p.putLE(segmentID, at: 8)
        p.putLE(payloadBytes, at: 16)
        p.putLE(recordCount, at: 20)
        p.putLE(durableOffset, at: 24)
        p.putLE(flags, at: 32)
        p.putLE(UInt32(0), at: 36)
        p.putLE(UInt64(0), at: 40)
        p.putLE(crc32c(0, p + 8, Format.blockHeaderBytes - 8), at: 4)
    }

    /// Decodes a block header; nil when the bytes are not a valid header (zeros, garbage,
    /// a torn write, or a block of another segment that used this file before).
    static func decode(_ p: UnsafeRawPointer, expectedSegment: UInt64) -> BlockHeader? {
        guard p.getLE(0, as: UInt32.self) == Format.blockMagic else { return nil }
        guard p.getLE(4, as: UInt32.self) == crc32c(0, p + 8, Format.blockHeaderBytes - 8) else { return nil }
        let header = BlockHeader(
            segmentID: p.getLE(8), payloadBytes: p.getLE(16), recordCount: p.getLE(20),
            durableOffset: p.getLE(24), flags: p.getLE(32)
        )
        guard header.segmentID == expectedSegment else { return nil }
        return header
    }
}

// MARK: - Records

/// A record parsed from a buffer, with its checksum verified.
struct RecordView {
    var kind: RecordKind
    var length: Int
    var partition: Range<Int>
    var key: Range<Int>
    var contentType: Range<Int>
    var value: Range<Int>
    var expiresAtMilliseconds: Int64
    var token: UInt64
    var version: UInt64
    /// A put's access flags (`ObjectAccess.flags`); zero for every other kind.
    var flags: UInt8
    /// A lease's TTL as granted, in `Format.leaseTTLUnitMilliseconds` (rounded up); 0 when
    /// unknown (written before it was kept) and for every other kind.
    var leaseTTLUnits: UInt16 = 0

    enum Problem: Error { case truncated, badLength, badChecksum, badKind, badFields }

    /// Parses the record starting at `offset` in `buffer`; throws a `Problem` when it is not a
    /// whole, valid record.
    static func parse(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws(Problem) -> RecordView {
        guard let base = buffer.baseAddress, buffer.count - offset >= Format.recordOverheadBytes else { throw .truncated }
        let p = base + offset
        let length = Int(p.getLE(4, as: UInt32.self))
        guard length >= Format.recordOverheadBytes else { throw .badLength }
        guard length <= buffer.count - offset else { throw .truncated }
        guard p.getLE(0, as: UInt32.self) == crc32c(0, p + 4, length - 4) else { throw .badChecksum }
        guard let kind = RecordKind(rawValue: p.load(fromByteOffset: 8, as: UInt8.self)) else { throw .badKind }
        let flags = p.load(fromByteOffset: 9, as: UInt8.self)
        guard kind == .put ? ObjectAccess(flags: flags) != nil : flags == 0 else { throw .badFields }
        let partitionLength = Int(p.load(fromByteOffset: 10, as: UInt8.self))
        let contentTypeLength = Int(p.load(fromByteOffset: 11, as: UInt8.self))
        let keyLength = Int(p.getLE(12, as: UInt16.self))
        let namesEnd = Format.recordFixedBytes + partitionLength + keyLength + contentTypeLength
        guard namesEnd + Format.recordTrailerBytes <= length else { throw .badFields }
        if kind != .seal && (partitionLength == 0 || (kind != .unlease && keyLength == 0)) { throw .badFields }
        let start = offset + Format.recordFixedBytes
        let partition = start..<(start + partitionLength)
        let key = partition.upperBound..<(partition.upperBound + keyLength)
        let contentType = key.upperBound..<(key.upperBound + contentTypeLength)
        let value = contentType.upperBound..<(offset + length - Format.recordTrailerBytes)
        if kind != .put && !value.isEmpty { throw .badFields }
        return RecordView(
            kind: kind, length: length, partition: partition, key: key, contentType: contentType,
            value: value, expiresAtMilliseconds: p.getLE(16), token: p.getLE(24),
            version: p.getLE(length - Format.recordTrailerBytes), flags: flags,
            leaseTTLUnits: kind == .lease ? p.getLE(14) : 0
        )
    }
}

/// Records encoded by a writer, back to back, waiting for their version. The expensive part of
/// each record's checksum (everything but the version) is computed by the writer, in parallel
/// with other writers; the version is folded in under the commit lock.
struct EncodedRecords: Sendable {
    var bytes: [UInt8]
    /// (offset, length, checksum of bytes [offset + 4, offset + length - 8))
    var records: [(offset: Int, length: Int, partialChecksum: UInt32)]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
        records = []
    }

    static func size(partition: Int, key: Int, contentType: Int, value: Int) -> Int {
        Format.recordOverheadBytes + partition + key + contentType + value
    }

    mutating func append(
        kind: RecordKind, partition: String, key: String, contentType: String = "",
        value: [UInt8] = [], token: UInt64 = 0, expiresAtMilliseconds: Int64 = 0, flags: UInt8 = 0,
        leaseTTLUnits: UInt16 = 0
    ) {
        let offset = bytes.count
        var partition = partition, key = key, contentType = contentType
        let p = partition.utf8.count, k = key.utf8.count, c = contentType.utf8.count
        let length = EncodedRecords.size(partition: p, key: k, contentType: c, value: value.count)
        bytes.append(contentsOf: repeatElement(0, count: length))
        let checksum: UInt32 = bytes.withUnsafeMutableBytes { raw in
            // The buffer is non-empty: it holds at least this record's 40 bytes.
            let r = raw.baseAddress.unsafelyUnwrapped + offset
            r.putLE(UInt32(length), at: 4)
            r.storeBytes(of: kind.rawValue, toByteOffset: 8, as: UInt8.self)
            r.storeBytes(of: flags, toByteOffset: 9, as: UInt8.self)
            r.storeBytes(of: UInt8(p), toByteOffset: 10, as: UInt8.self)
            r.storeBytes(of: UInt8(c), toByteOffset: 11, as: UInt8.self)
            r.putLE(UInt16(k), at: 12)
            r.putLE(leaseTTLUnits, at: 14)
            r.putLE(expiresAtMilliseconds, at: 16)
            r.putLE(token, at: 24)
            var at = Format.recordFixedBytes
            partition.withUTF8 { if let b = $0.baseAddress { (r + at).copyMemory(from: b, byteCount: p) } }
            at += p
            key.withUTF8 { if let b = $0.baseAddress { (r + at).copyMemory(from: b, byteCount: k) } }
            at += k
            contentType.withUTF8 { if let b = $0.baseAddress { (r + at).copyMemory(from: b, byteCount: c) } }
            at += c
            value.withUnsafeBytes { if let b = $0.baseAddress { (r + at).copyMemory(from: b, byteCount: value.count) } }
            return crc32c(0, r + 4, length - 4 - Format.recordTrailerBytes)
        }
        records.append((offset, length, checksum))
    }

    /// Writes `version` into every record and completes their checksums.
    mutating func seal(version: UInt64) {
        let records = self.records
        bytes.withUnsafeMutableBytes { raw in
            // Non-empty whenever `records` is (each record is at least 40 bytes), and the loop
            // below does nothing otherwise: the address is never used when it is nil.
            let base = raw.baseAddress.unsafelyUnwrapped
            for record in records {
                let r = base + record.offset
                r.putLE(version, at: record.length - Format.recordTrailerBytes)
                let full = crc32c(record.partialChecksum, r + record.length - Format.recordTrailerBytes, Format.recordTrailerBytes)
                r.putLE(full, at: 0)
            }
        }
    }
}

// MARK: - Hint files

/// One entry of a hint file: where a record is and what it says, without its value.
struct HintEntry: Equatable, Sendable {
    var kind: RecordKind
    var partition: String
    var key: String
    var contentType: String
    var offset: UInt64
    var recordLength: UInt32
    var version: UInt64
    var token: UInt64
    var expiresAtMilliseconds: Int64
    /// The record's flags (a put's access).
    var flags: UInt8 = 0
    /// A lease's TTL as granted (`RecordView.leaseTTLUnits`).
    var leaseTTLUnits: UInt16 = 0

    var encodedBytes: Int {
        Format.hintEntryFixedBytes + partition.utf8.count + key.utf8.count + contentType.utf8.count
    }

    func encode(into out: inout [UInt8]) {
        let start = out.count
        let size = encodedBytes
        out.append(contentsOf: repeatElement(0, count: size))
        var partition = partition, key = key, contentType = contentType
        out.withUnsafeMutableBytes { raw in
            // Non-empty: `size` (at least the fixed 48 bytes) was appended just above.
            let p = raw.baseAddress.unsafelyUnwrapped + start
            p.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt8.self)
            p.storeBytes(of: UInt8(partition.utf8.count), toByteOffset: 5, as: UInt8.self)
            p.storeBytes(of: UInt8(contentType.utf8.count), toByteOffset: 6, as: UInt8.self)
            p.storeBytes(of: flags, toByteOffset: 7, as: UInt8.self)
            p.putLE(UInt16(key.utf8.count), at: 8)
            p.putLE(leaseTTLUnits, at: 10)
            p.putLE(recordLength, at: 12)
            p.putLE(offset, at: 16)
            p.putLE(version, at: 24)
            p.putLE(token, at: 32)
            p.putLE(expiresAtMilliseconds, at: 40)
            var at = Format.hintEntryFixedBytes
            for n in 0..<3 {
                let copy: (UnsafeBufferPointer<UInt8>) -> Void = { src in
                    if let b = src.baseAddress { (p + at).copyMemory(from: b, byteCount: src.count) }
                    at += src.count
                }
                switch n {
                case 0: partition.withUTF8(copy)
                case 1: key.withUTF8(copy)
                default: contentType.withUTF8(copy)
                }
            }
            p.putLE(crc32c(0, p + 4, size - 4), at: 0)
        }
    }
}

struct HintHeader: Equatable {
    var entryCount: UInt32
    var segmentID: UInt64
    /// Offset just past the seal block: where the segment's data ends.
    var dataEnd: UInt64
    var maxVersion: UInt64

    static let magic: UInt64 = 0x544E_4948_594C_4C4A // "JLLYHINT" little-endian

    func encode(into out: inout [UInt8]) {
        var header = [UInt8](repeating: 0, count: Format.hintHeaderBytes)
        header.withUnsafeMutableBytes { raw in
            // Non-empty: `hintHeaderBytes` long.
            let p = raw.baseAddress.unsafelyUnwrapped
            p.putLE(HintHeader.magic, at: 0)
            p.putLE(Format.formatVersion, at: 8)
            p.putLE(entryCount, at: 12)
            p.putLE(segmentID, at: 16)
            p.putLE(dataEnd, at: 24)
            p.putLE(maxVersion, at: 32)
            p.putLE(crc32c(0, p, 60), at: 60)
        }
        out.replaceSubrange(0..<0, with: header)
    }

    static func decode(_ p: UnsafeRawPointer, path: String) throws -> HintHeader {
        guard p.getLE(0, as: UInt64.self) == magic else {
            throw JellyError(.corruption, "\(path) at offset 0: not a Jelly hint file (bad magic); delete it and Jelly rebuilds it from its segment")
        }
        guard p.getLE(60, as: UInt32.self) == crc32c(0, p, 60) else {
            throw JellyError(.corruption, "\(path) at offset 0: hint header checksum mismatch; delete the file and Jelly rebuilds it from its segment")
        }
        return HintHeader(entryCount: p.getLE(12), segmentID: p.getLE(16), dataEnd: p.getLE(24), maxVersion: p.getLE(32))
    }
}
