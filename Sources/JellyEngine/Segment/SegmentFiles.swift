import JellyCore

/// Reading whole segment and hint files: used by recovery, compaction and `jelly check`.
enum SegmentFiles {
    /// What a scan of a segment found.
    struct Scan {
        var header: SegmentHeader
        var entries: [HintEntry] = []
        var blocks = 0
        /// Offset just past the last valid block (the seal, when sealed).
        var dataEnd: Int
        var sealed = false
        var sealVersion: UInt64 = 0
        /// Set when the segment ends in a torn write: the offset where valid data ends and a
        /// description, for the last segment only.
        var tornTail: (offset: Int, bytes: Int)?
        var fileBytes: Int
    }

    /// The segments allowed to be unsealed (and to end in a torn write): the last compaction
    /// output, the last log segment and, when that one holds no block yet (the committer starts
    /// the next segment ahead of time), the log segment before it.
    static func mayBeUnsealed(_ storage: any StorageSystem, directory: String, segments: [UInt32]) throws -> Set<UInt32> {
        let log = segments.filter { !isCompactionOutput($0) }.sorted()
        var allowed = Set(segments.filter(isCompactionOutput).max().map { [$0] } ?? [])
        guard let last = log.last else { return allowed }
        allowed.insert(last)
        if log.count > 1, try holdsNoBlock(storage, path: directory + "/" + segmentFileName(last), id: last) {
            allowed.insert(log[log.count - 2])
        }
        return allowed
    }

    /// True when a segment file has no header yet or no valid block of its own after it.
    static func holdsNoBlock(_ storage: any StorageSystem, path: String, id: UInt32) throws -> Bool {
        let file = try storage.openRead(path: path)
        defer { file.close() }
        var head = [UInt8](repeating: 0, count: Format.segmentHeaderBytes + Format.blockHeaderBytes)
        let n = try head.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        guard n == head.count, head.prefix(Format.segmentHeaderUsedBytes).contains(where: { $0 != 0 }) else { return true }
        return head.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return true }
            return BlockHeader.decode(base + Format.segmentHeaderBytes, expectedSegment: UInt64(id)) == nil
        }
    }

    /// True when a segment file that may be unsealed was never started: a spare renamed into
    /// place whose new header never reached the disk, so its header is zeros (a zero-filled
    /// spare) or names another segment (a recycled one; builds before session 7 renamed the
    /// spare before writing the header). It holds no record of this segment; recovery removes
    /// it.
    static func neverStarted(_ bytes: [UInt8], id: UInt32) -> Bool {
        guard bytes.count >= Format.segmentHeaderUsedBytes else { return false }
        if bytes.prefix(Format.segmentHeaderUsedBytes).allSatisfy({ $0 == 0 }) { return true }
        guard let header = bytes.withUnsafeBytes({ raw in raw.baseAddress.flatMap { try? SegmentHeader.decode($0, path: "") } }) else {
            return false
        }
        return header.segmentID != UInt64(id)
    }

    static func readAll(_ storage: any StorageSystem, path: String) throws -> [UInt8] {
        let file = try storage.openRead(path: path)
        defer { file.close() }
        let size = Int(try file.size())
        return try [UInt8](unsafeUninitializedCapacity: size) { raw, count in
            count = try file.read(into: UnsafeMutableRawBufferPointer(raw), at: 0)
        }
    }

    /// Scans a segment block by block, verifying every header and record.
    ///
    /// - Parameter mayBeUnsealed: true for the segments `mayBeUnsealed(_:directory:segments:)`
    ///   names, which may end in a torn write (a crash mid-append): the first invalid block there
    ///   ends the data, unless a later valid block was written after that offset had been
    ///   synced, which proves the damage is corruption. In any other segment an invalid block is
    ///   corruption, and so is a missing seal.
    static func scan(_ bytes: [UInt8], path: String, mayBeUnsealed: Bool) throws -> Scan {
        try bytes.withUnsafeBytes { raw -> Scan in
            guard let base = raw.baseAddress, raw.count >= Format.segmentHeaderUsedBytes else {
                throw JellyError(.corruption, "\(path): file is \(raw.count) bytes, shorter than a segment header")
            }
            let header = try SegmentHeader.decode(base, path: path)
            var scan = Scan(header: header, dataEnd: Format.segmentHeaderBytes, fileBytes: raw.count)
            var offset = Format.segmentHeaderBytes
            let segmentID = header.segmentID
            while offset + Format.blockHeaderBytes <= raw.count {
                let problem: String?
                if let block = BlockHeader.decode(base + offset, expectedSegment: segmentID) {
                    let end = offset + block.totalBytes
                    if end > raw.count {
                        problem = "block of \(block.totalBytes) bytes runs past the end of the file"
                    } else {
                        problem = parseBlock(raw, block: block, at: offset, into: &scan)
                        if problem == nil {
                            scan.blocks += 1
                            offset = end
                            scan.dataEnd = end
                            if block.flags & Format.blockFlagSeal != 0 {
                                scan.sealed = true
                                return scan
                            }
                            continue
                        }
                    }
                } else {
                    problem = "invalid block header"
                }
                // Not a valid block at `offset`.
                let allZero = isZero(raw, from: offset, count: min(Format.pageBytes, raw.count - offset))
                    || isForeignBlock(base + offset, segmentID: segmentID)
                if !mayBeUnsealed {
                    throw JellyError(.corruption, "\(path) at offset \(offset): \(problem ?? "invalid block") in a sealed segment; the data from this offset on cannot be trusted. Restore the file from a backup, or run `jelly check` for the full list")
                }
                if let later = laterSyncedBlock(raw, after: offset, segmentID: segmentID) {
                    throw JellyError(.corruption, "\(path) at offset \(offset): \(problem ?? "invalid block"), but the block at offset \(later) was written after this offset had been synced, so this is damage to acknowledged data, not a torn write. Run `jelly check`; restore the file from a backup")
                }
                // Zeros after the last block are the unused, zero-filled part of the segment, and
                // blocks of another segment are what a recycled file held before; anything else
                // there is a write that did not finish.
                if !allZero { scan.tornTail = (offset, min(Format.pageBytes, raw.count - offset)) }
                return scan
            }
            if !mayBeUnsealed {
                throw JellyError(.corruption, "\(path): segment ends at offset \(offset) without a seal; it was cut short. Restore it from a backup")
            }
            return scan
        }
    }

    /// A whole, valid block header of another segment: the leftovers of a recycled segment file.
    private static func isForeignBlock(_ p: UnsafeRawPointer, segmentID: UInt64) -> Bool {
        guard p.getLE(0, as: UInt32.self) == Format.blockMagic,
              p.getLE(4, as: UInt32.self) == crc32c(0, p + 8, Format.blockHeaderBytes - 8) else { return false }
        return p.getLE(8, as: UInt64.self) != segmentID
    }

    private static func isZero(_ raw: UnsafeRawBufferPointer, from: Int, count: Int) -> Bool {
        for i in from..<(from + count) where raw[i] != 0 { return false }
        return true
    }

    /// A valid block after `offset` whose header says the log was synced past `offset`.
    private static func laterSyncedBlock(_ raw: UnsafeRawBufferPointer, after offset: Int, segmentID: UInt64) -> Int? {
        guard let base = raw.baseAddress else { return nil }
        var at = offset + Format.pageBytes
        while at + Format.blockHeaderBytes <= raw.count {
            if let block = BlockHeader.decode(base + at, expectedSegment: segmentID), block.durableOffset > UInt64(offset) {
                return at
            }
            at += Format.pageBytes
        }
        return nil
    }

    /// Verifies a block's records; appends their entries. Returns a problem, or nil when valid.
    private static func parseBlock(_ raw: UnsafeRawBufferPointer, block: BlockHeader, at offset: Int, into scan: inout Scan) -> String? {
        var at = offset + Format.blockHeaderBytes
        let end = at + Int(block.payloadBytes)
        var entries: [HintEntry] = []
        entries.reserveCapacity(Int(block.recordCount))
        let slice = UnsafeRawBufferPointer(rebasing: raw[0..<end])
        var sealVersion: UInt64 = 0
        for n in 0..<Int(block.recordCount) {
            let view: RecordView
            do {
                view = try RecordView.parse(slice, at: at)
            } catch {
                return "record \(n + 1) of \(block.recordCount) at offset \(at) failed verification (\(error))"
            }
            if view.kind == .seal {
                guard block.flags & Format.blockFlagSeal != 0 else { return "seal record outside a seal block at offset \(at)" }
                sealVersion = view.version
            } else {
                entries.append(HintEntry(
                    kind: view.kind,
                    partition: String(decoding: raw[view.partition], as: UTF8.self),
                    key: String(decoding: raw[view.key], as: UTF8.self),
                    contentType: String(decoding: raw[view.contentType], as: UTF8.self),
                    offset: UInt64(at), recordLength: UInt32(view.length), version: view.version,
                    token: view.token, expiresAtMilliseconds: view.expiresAtMilliseconds, flags: view.flags,
                    leaseTTLUnits: view.leaseTTLUnits
                ))
            }
            at += view.length
        }
        guard at == end else { return "block payload is \(block.payloadBytes) bytes but its records end at \(at - offset - Format.blockHeaderBytes)" }
        // The padding to the page boundary is written as zeros; anything else there is damage.
        let blockEnd = offset + block.totalBytes
        if let bad = (end..<blockEnd).first(where: { raw[$0] != 0 }) {
            return "non-zero byte at offset \(bad) in the padding of the block at offset \(offset)"
        }
        scan.entries.append(contentsOf: entries)
        if block.flags & Format.blockFlagSeal != 0 { scan.sealVersion = sealVersion }
        return nil
    }

    /// Reads and verifies a hint file.
    static func readHint(_ storage: any StorageSystem, path: String, segmentID: UInt32) throws -> (HintHeader, [HintEntry]) {
        let bytes = try readAll(storage, path: path)
        return try bytes.withUnsafeBytes { raw in
            let rebuild = "delete the file and Jelly rebuilds it from its segment on the next open"
            guard let base = raw.baseAddress, raw.count >= Format.hintHeaderBytes else {
                throw JellyError(.corruption, "\(path): hint file is \(raw.count) bytes, shorter than its header; \(rebuild)")
            }
            let header = try HintHeader.decode(base, path: path)
            guard header.segmentID == UInt64(segmentID) else {
                throw JellyError(.corruption, "\(path) at offset 16: hint is for segment \(header.segmentID), not \(segmentID); \(rebuild)")
            }
            var entries: [HintEntry] = []
            entries.reserveCapacity(Int(header.entryCount))
            var at = Format.hintHeaderBytes
            for _ in 0..<header.entryCount {
                guard at + Format.hintEntryFixedBytes <= raw.count else {
                    throw JellyError(.corruption, "\(path) at offset \(at): hint file ends inside an entry; \(rebuild)")
                }
                let p = base + at
                let partitionLength = Int(p.load(fromByteOffset: 5, as: UInt8.self))
                let contentTypeLength = Int(p.load(fromByteOffset: 6, as: UInt8.self))
                let keyLength = Int(p.getLE(8, as: UInt16.self))
                let size = Format.hintEntryFixedBytes + partitionLength + keyLength + contentTypeLength
                guard at + size <= raw.count, p.getLE(0, as: UInt32.self) == crc32c(0, p + 4, size - 4),
                      let kind = RecordKind(rawValue: p.load(fromByteOffset: 4, as: UInt8.self)) else {
                    throw JellyError(.corruption, "\(path) at offset \(at): hint entry checksum mismatch; \(rebuild)")
                }
                let flags = p.load(fromByteOffset: 7, as: UInt8.self)
                guard kind == .put ? ObjectAccess(flags: flags) != nil : flags == 0 else {
                    throw JellyError(.corruption, "\(path) at offset \(at): hint entry has invalid flags \(flags); \(rebuild)")
                }
                var s = at + Format.hintEntryFixedBytes
                let partition = String(decoding: raw[s..<(s + partitionLength)], as: UTF8.self)
                s += partitionLength
                let key = String(decoding: raw[s..<(s + keyLength)], as: UTF8.self)
                s += keyLength
                let contentType = String(decoding: raw[s..<(s + contentTypeLength)], as: UTF8.self)
                entries.append(HintEntry(
                    kind: kind, partition: partition, key: key, contentType: contentType,
                    offset: p.getLE(16), recordLength: p.getLE(12), version: p.getLE(24),
                    token: p.getLE(32), expiresAtMilliseconds: p.getLE(40), flags: flags,
                    leaseTTLUnits: kind == .lease ? p.getLE(10) : 0
                ))
                at += size
            }
            guard at == raw.count else {
                throw JellyError(.corruption, "\(path) at offset \(at): \(raw.count - at) bytes after the last of \(header.entryCount) entries; \(rebuild)")
            }
            return (header, entries)
        }
    }

    /// Writes `bytes` to `directory/name` so that the file is either whole or absent after a
    /// crash: a `.tmp` file, written and synced, renamed into place, then the directory synced.
    static func writeAtomically(_ storage: any StorageSystem, directory: String, name: String, bytes: [UInt8]) throws {
        try writeAtomically(storage, directory: directory, temporary: name + ".tmp", name: name, direct: false) { file in
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
        }
    }

    /// Creates `directory/temporary`, lets `write` fill it, syncs it, renames it to `name` and
    /// syncs the directory; on failure removes the temporary file.
    static func writeAtomically(
        _ storage: any StorageSystem, directory: String, temporary: String, name: String, direct: Bool,
        write: (any StorageFile) throws -> Void
    ) throws {
        let tmp = directory + "/" + temporary
        let file = direct ? try storage.openLog(path: tmp, create: true, direct: true) : try storage.openWrite(path: tmp, truncate: true)
        do {
            try write(file)
            try file.sync()
            file.close()
        } catch {
            file.close()
            try? storage.remove(tmp)
            throw error
        }
        try storage.rename(tmp, directory + "/" + name)
        try storage.syncDirectory(directory)
    }

    static func encodeHint(_ entries: [HintEntry], segmentID: UInt32, dataEnd: Int, maxVersion: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        for entry in entries { entry.encode(into: &bytes) }
        HintHeader(entryCount: UInt32(entries.count), segmentID: UInt64(segmentID), dataEnd: UInt64(dataEnd), maxVersion: maxVersion).encode(into: &bytes)
        return bytes
    }
}

extension HintEntry {
    var meta: RecordMeta {
        RecordMeta(
            kind: kind, partition: ByteName(partition), key: key, contentType: contentType,
            recordLength: recordLength, version: version, token: token, expiresAtMilliseconds: expiresAtMilliseconds,
            flags: flags, leaseTTLUnits: leaseTTLUnits
        )
    }
}
