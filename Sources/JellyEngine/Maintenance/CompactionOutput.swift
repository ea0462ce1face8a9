import JellyCore

/// The segment compaction appends live records to, kept open across compaction rounds until it
/// is full, then sealed like a log segment (seal block, hint file) and replaced by the next.
///
/// One output for many rounds, instead of one new file per round: a round that copies 3 MiB out
/// of a mostly dead segment adds 3 MiB to the output instead of leaving a 3 MiB segment behind
/// that a later merge would copy again. The file is a prepared one (zero-filled or recycled), so
/// its syncs are overwrites of allocated blocks, and a full output keeps its size and can itself
/// be recycled.
///
/// Durability: `sync()` ends every round, before the index points at the copies and before
/// the inputs are removed. A crash leaves the output unsealed with at most a torn tail of
/// records whose inputs still exist; recovery treats it like the log's last segment.
///
/// Confined to the maintenance thread (and to `Maintenance.stop` once that thread has exited).
final class CompactionOutput {
    var id: UInt32 { writer.id }
    let path: String
    private var writer: SegmentWriter
    private let segmentBytes: Int
    private let buffer = AlignedBuffer(capacity: CompactionOutput.blockBytesMax + Format.pageBytes)
    /// Bytes and records of the block being filled in `buffer` (its header's room included).
    private var blockUsed = Format.blockHeaderBytes
    private var blockRecords: UInt32 = 0
    private static let blockBytesMax = 1 << 20

    /// Where the next block goes.
    var offset: Int { writer.offset }

    /// Appends to `started`, a segment started by `Maintenance.startSegment` (renamed into
    /// place, header written, both durable).
    init(_ started: StartedSegment, segmentBytes: Int) {
        path = started.path
        writer = SegmentWriter(id: started.id, file: started.file)
        self.segmentBytes = segmentBytes
    }

    /// Whether a record of `length` bytes still fits, leaving room for the seal block.
    func fits(_ length: Int) -> Bool {
        let pending = blockRecords > 0 && blockUsed + length > CompactionOutput.blockBytesMax ? Format.alignUp(blockUsed) : 0
        let block = Format.alignUp((pending > 0 ? Format.blockHeaderBytes : blockUsed) + length)
        return writer.offset + pending + block + Format.pageBytes <= segmentBytes
    }

    /// Adds a verified record (check `fits` first); returns its offset in the segment.
    func append(record: [UInt8], entry: HintEntry) throws -> UInt32 {
        if blockRecords > 0 && blockUsed + record.count > CompactionOutput.blockBytesMax { try flush() }
        buffer.reserve(Format.alignUp(blockUsed + record.count))
        record.withUnsafeBytes { raw in
            if let src = raw.baseAddress { (buffer.pointer + blockUsed).copyMemory(from: src, byteCount: raw.count) }
        }
        let at = UInt32(writer.offset + blockUsed)
        var e = entry
        e.offset = UInt64(at)
        writer.addHintEntry(e)
        blockUsed += record.count
        blockRecords += 1
        return at
    }

    /// Writes the block being filled, if any.
    private func flush() throws {
        guard blockRecords > 0 else { return }
        _ = try writer.appendBlock(buffer, payloadBytes: blockUsed - Format.blockHeaderBytes, recordCount: blockRecords)
        blockUsed = Format.blockHeaderBytes
        blockRecords = 0
    }

    /// Makes every record appended so far durable.
    func sync() throws {
        try flush()
        guard writer.hasUnsyncedBlocks else { return }
        try writer.sync()
    }

    /// Writes the seal block and syncs; with `trim`, cuts the file to its data (at close), else
    /// keeps it full size for recycling. Returns the data end and the hint file's bytes, which
    /// the caller writes. The file is closed afterwards.
    func seal(sealVersion: UInt64, trim: Bool) throws -> (dataEnd: Int, hint: [UInt8]) {
        try flush()
        // Nothing changes here until the seal is durable, so a failed seal can be retried.
        let sealed = try writer.seal(version: sealVersion, trim: trim, buffer: buffer)
        writer.file.close()
        return sealed
    }

    /// Closes without sealing (a simulated crash, or a failure): recovery seals it.
    func abandon() {
        writer.file.close()
    }
}
