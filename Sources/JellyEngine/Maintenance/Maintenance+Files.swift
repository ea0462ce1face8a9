import JellyCore

/// Hint files of sealed segments, and spare segment files (zero-filled, or recycled from
/// compacted segments), kept so that starting a segment never waits for a zero-fill.
extension Maintenance {
    func writeHint(segment: UInt32, bytes: [UInt8]) {
        work.withLock { $0.hints.append((segment, bytes)) }
        wake.signal()
    }

    func writePendingHints() {
        let hints = work.withLock { w -> [(segment: UInt32, bytes: [UInt8])] in
            let h = w.hints
            w.hints = []
            return h
        }
        for hint in hints {
            // A hint that cannot be written is rebuilt from its segment on the next open.
            try? SegmentFiles.writeAtomically(shared.storage, directory: shared.directory, name: hintFileName(hint.segment), bytes: hint.bytes)
        }
    }

    /// Creates a segment-sized file full of zeros, synced: appending into written blocks lets
    /// `fdatasync` skip the filesystem journal (unwritten extents from fallocate alone do not).
    func prepareFile() throws -> String {
        let number = work.withLock { w -> Int in
            w.nextPreparedNumber += 1
            return w.nextPreparedNumber
        }
        let segmentBytes = configuration.segmentBytes
        try SegmentFiles.writeAtomically(
            shared.storage, directory: shared.directory, temporary: "prepared-\(number).tmp",
            name: preparedFileName(number, recycled: false), direct: configuration.directIO
        ) { file in
            let chunk = AlignedBuffer(capacity: 1 << 20)
            chunk.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: chunk.capacity)
            var offset = 0
            while offset < segmentBytes {
                let n = min(chunk.capacity, segmentBytes - offset)
                try file.write(chunk.bytes(n), at: Int64(offset))
                offset += n
            }
        }
        compactionStats.withLock { $0.preparedBytes += configuration.segmentBytes }
        return shared.path(preparedFileName(number, recycled: false))
    }

    /// Keeps a compacted full-size segment file for reuse, up to `sparesMax` spare files.
    func recycle(_ path: String) -> Bool {
        let name = work.withLock { w -> String? in
            guard w.prepared.count < Maintenance.sparesMax else { return nil }
            w.nextPreparedNumber += 1
            return preparedFileName(w.nextPreparedNumber, recycled: true)
        }
        guard let name else { return false }
        do {
            try shared.storage.rename(path, shared.path(name))
        } catch {
            return false
        }
        work.withLock { $0.prepared.append(shared.path(name)) }
        compactionStats.withLock { $0.segmentsRecycled += 1 }
        return true
    }
}
