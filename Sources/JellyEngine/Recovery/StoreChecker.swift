import JellyCore

/// Verifies a store directory without changing it: every segment's header, blocks and records,
/// every hint file, and that each hint agrees with its segment.
public enum StoreChecker {
    public struct Report: Sendable {
        /// One line per file checked.
        public var lines: [String] = []
        /// Corruption found: file, offset and what is wrong.
        public var problems: [String] = []
        /// Things that are not corruption (a torn tail awaiting recovery).
        public var notes: [String] = []
        public var segments = 0
        public var records = 0
        public var hints = 0
        public var isConsistent: Bool { problems.isEmpty }
    }

    /// Checks the store at `directory`. Takes the directory lock, so the store must not be open.
    public static func check(directory: String, storage: any StorageSystem = PosixStorage(), progress: ((String) -> Void)? = nil) throws -> Report {
        let lock = try storage.lockDirectory(directory)
        defer { lock.close() }
        var report = Report()
        let names = try storage.listDirectory(directory)
        let segments = names.compactMap { parseSegmentName($0, suffix: ".log") }.sorted()
        let hintIDs = Set(names.compactMap { parseSegmentName($0, suffix: ".hint") })
        let unsealable = try SegmentFiles.mayBeUnsealed(storage, directory: directory, segments: segments)
        for (position, id) in segments.enumerated() {
            let name = segmentFileName(id)
            let path = directory + "/" + name
            progress?("checking \(name) (\(position + 1) of \(segments.count))")
            report.segments += 1
            let mayBeUnsealed = unsealable.contains(id)
            let scan: SegmentFiles.Scan
            do {
                let bytes = try SegmentFiles.readAll(storage, path: path)
                if mayBeUnsealed && SegmentFiles.neverStarted(bytes, id: id) {
                    report.notes.append("\(path): a spare file renamed into place before its header was written (a crash while the segment was being started); the next open removes it")
                    continue
                }
                scan = try SegmentFiles.scan(bytes, path: path, mayBeUnsealed: mayBeUnsealed)
            } catch let error as JellyError {
                report.problems.append(error.message)
                report.lines.append("CORRUPT \(name)")
                continue
            }
            report.records += scan.entries.count
            var state = scan.sealed ? "sealed" : "active"
            if let torn = scan.tornTail {
                report.notes.append("\(path) at offset \(torn.offset): torn write at the end of the \(isCompactionOutput(id) ? "compaction output (a copy whose original still exists)" : "log (an unacknowledged append)") cut by a crash; the next open cuts it off")
                state += ", torn tail at \(torn.offset)"
            }
            report.lines.append("ok \(name): \(scan.entries.count) records in \(scan.blocks) blocks, \(scan.dataEnd) bytes, \(state)")

            guard hintIDs.contains(id) else {
                if scan.sealed { report.notes.append("\(directory)/\(hintFileName(id)) is missing; the next open rebuilds it") }
                continue
            }
            let hintPath = directory + "/" + hintFileName(id)
            report.hints += 1
            do {
                let (header, entries) = try SegmentFiles.readHint(storage, path: hintPath, segmentID: id)
                if entries.count != scan.entries.count {
                    report.problems.append("\(hintPath): lists \(entries.count) records but the segment holds \(scan.entries.count); delete the hint file and Jelly rebuilds it")
                } else if let i = entries.indices.first(where: { entries[$0] != scan.entries[$0] }) {
                    report.problems.append("\(hintPath): entry \(i + 1) disagrees with the record at offset \(scan.entries[i].offset) of \(name); delete the hint file and Jelly rebuilds it")
                } else if scan.sealed && header.dataEnd != UInt64(scan.dataEnd) {
                    report.problems.append("\(hintPath) at offset 24: data end \(header.dataEnd) differs from the segment's \(scan.dataEnd)")
                } else {
                    report.lines.append("ok \(hintFileName(id)): \(entries.count) entries")
                }
            } catch let error as JellyError {
                report.problems.append(error.message)
                report.lines.append("CORRUPT \(hintFileName(id))")
            }
        }
        for id in hintIDs.subtracting(segments) {
            report.notes.append("\(directory)/\(hintFileName(id)) has no segment (left by an interrupted compaction); harmless")
        }
        return report
    }
}
