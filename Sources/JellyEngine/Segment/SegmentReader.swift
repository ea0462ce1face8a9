import JellyCore

/// An open segment file for reads, and the one verified read of a record (leveldb's
/// `log::Reader` for single records). Held by reads in flight, so a compacted segment's file
/// stays open until the last read of it finishes. Whole-segment scans (open, `jelly check`) go
/// through `SegmentFiles.scan`, which verifies every record with the same parser.
final class SegmentReader: Sendable {
    let id: UInt32
    let file: any StorageFile

    init(id: UInt32, file: any StorageFile) {
        self.id = id
        self.file = file
        file.adviseRandomReads()
    }

    deinit { file.close() }

    /// Reads the record of `length` bytes at `offset` and verifies it: checksum and framing
    /// (`RecordView.parse`), then the `version` the index or hint names for it. Value reads and
    /// compaction's copies both come here. `what` names the read in the error (for example
    /// "during compaction"); it is formatted only for an error, as this runs for every value read.
    ///
    /// - Throws: `.corruption` with the file and offset when the bytes there are not that record.
    func readRecord(at offset: UInt64, length: Int, version: UInt64, what: @autoclosure () -> String) throws -> (bytes: [UInt8], view: RecordView) {
        let bytes = try [UInt8](unsafeUninitializedCapacity: length) { raw, count in
            count = try file.read(into: UnsafeMutableRawBufferPointer(raw), at: Int64(offset))
        }
        let view = try bytes.withUnsafeBytes { raw -> RecordView in
            do {
                let view = try RecordView.parse(raw, at: 0)
                guard view.version == version else { throw RecordView.Problem.badFields }
                return view
            } catch {
                throw JellyError(.corruption, "\(file.path) at offset \(offset): record failed verification \(what()) (\(error)); run `jelly check`")
            }
        }
        return (bytes, view)
    }
}
