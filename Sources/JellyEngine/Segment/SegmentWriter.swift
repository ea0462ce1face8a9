import JellyCore

/// The one writer of a segment file (leveldb's `log::Writer`): appends blocks after the header,
/// syncs, seals, and builds the hint of what it wrote. The log's active segment (`Committer`),
/// the compaction output (`CompactionOutput`) and recovery's seal of a segment a crash left
/// unsealed all write through it, so blocks, seals and hints are made one way (docs/format.md).
///
/// Not thread-safe: each writer belongs to one thread at a time (the committer's, the
/// maintenance worker's, or open's).
struct SegmentWriter {
    let id: UInt32
    let file: any StorageFile
    /// Where the next block goes.
    private(set) var offset: Int
    /// Through here the segment is synced.
    private(set) var durableOffset: Int
    /// Blocks appended by this writer (the seal block not counted).
    private(set) var blocks = 0
    /// Hint entries of the records written, encoded, and how many.
    private var hint: [UInt8] = []
    private var hintCount: UInt32 = 0
    /// The highest version among those records.
    private(set) var maxVersion: UInt64 = 0

    /// A writer appending at `dataEnd` (just after the header for a started segment), through
    /// which the file is durable; `entries` are the hint entries of the records already there.
    init(id: UInt32, file: any StorageFile, dataEnd: Int = Format.segmentHeaderBytes, entries: [HintEntry] = []) {
        self.id = id
        self.file = file
        offset = dataEnd
        durableOffset = dataEnd
        for entry in entries { addHintEntry(entry) }
    }

    /// Whether a block of `blockBytes` still fits in a segment of `segmentBytes`, leaving the
    /// page the seal block needs.
    func fits(blockBytes: Int, segmentBytes: Int) -> Bool {
        offset + blockBytes + Format.pageBytes <= segmentBytes
    }

    var hasUnsyncedBlocks: Bool { durableOffset < offset }

    /// Appends one block: the caller has copied `recordCount` records (`payloadBytes` in all)
    /// into `buffer` after the room of the block header. Pads to the page boundary with zeros,
    /// encodes the header (with the offset synced so far, which tells a torn tail from damage),
    /// writes. Returns the block's offset; its records start `Format.blockHeaderBytes` later.
    mutating func appendBlock(_ buffer: AlignedBuffer, payloadBytes: Int, recordCount: UInt32, flags: UInt32 = 0) throws -> Int {
        let used = Format.blockHeaderBytes + payloadBytes
        let total = Format.alignUp(used)
        (buffer.pointer + used).initializeMemory(as: UInt8.self, repeating: 0, count: total - used)
        BlockHeader(
            segmentID: UInt64(id), payloadBytes: UInt32(payloadBytes), recordCount: recordCount,
            durableOffset: UInt64(durableOffset), flags: flags
        ).encode(into: buffer.pointer)
        try file.write(buffer.bytes(total), at: Int64(offset))
        let at = offset
        offset += total
        if flags & Format.blockFlagSeal == 0 { blocks += 1 }
        return at
    }

    /// Notes a record written to this segment, for its hint file.
    mutating func addHintEntry(_ entry: HintEntry) {
        entry.encode(into: &hint)
        hintCount += 1
        maxVersion = max(maxVersion, entry.version)
    }

    /// Makes every block appended so far durable.
    mutating func sync() throws {
        try file.sync()
        durableOffset = offset
    }

    /// Writes the seal block: one seal record carrying `version` (at least every version issued
    /// so far, so recovery never issues one again). The segment's data then ends one page later.
    /// Sync next (`sync()`), then `sealed(trim:)`.
    mutating func appendSeal(version: UInt64, buffer: AlignedBuffer) throws {
        var seal = EncodedRecords(capacity: 64)
        seal.append(kind: .seal, partition: "", key: "")
        seal.seal(version: max(version, maxVersion))
        seal.bytes.withUnsafeBytes { raw in
            if let src = raw.baseAddress { (buffer.pointer + Format.blockHeaderBytes).copyMemory(from: src, byteCount: raw.count) }
        }
        _ = try appendBlock(buffer, payloadBytes: seal.bytes.count, recordCount: 1, flags: Format.blockFlagSeal)
        maxVersion = max(version, maxVersion)
    }

    /// After the seal block is durable: with `trim` the file is cut to its data (an early seal
    /// at close, recovery), else it keeps its size so compaction can recycle it. Returns the data
    /// end and the hint file's bytes, for the caller to write.
    func sealed(trim: Bool) throws -> (dataEnd: Int, hint: [UInt8]) {
        precondition(durableOffset == offset, "a segment is sealed only once its seal block is durable")
        if trim { try file.truncate(to: Int64(offset)) }
        var bytes = hint
        HintHeader(entryCount: hintCount, segmentID: UInt64(id), dataEnd: UInt64(offset), maxVersion: maxVersion).encode(into: &bytes)
        return (offset, bytes)
    }

    /// `appendSeal`, `sync` and `sealed` in one. Nothing changes on disk before the seal block
    /// is durable, so a failed seal can be retried.
    mutating func seal(version: UInt64, trim: Bool, buffer: AlignedBuffer) throws -> (dataEnd: Int, hint: [UInt8]) {
        let before = (offset, durableOffset)
        do {
            try appendSeal(version: version, buffer: buffer)
            try sync()
        } catch {
            (offset, durableOffset) = before
            throw error
        }
        return try sealed(trim: trim)
    }
}
