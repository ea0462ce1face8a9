#if canImport(Glibc)
import Glibc
#endif
import CJellySystem
import Dispatch
import JellyCore

extension EmbeddedStore {
    /// Takes an online backup into `directory` (made if missing; or holding an earlier backup of
    /// this store, which is brought up to date by copying only what is new). Saves go on while
    /// it copies; compaction waits. See `BackupManifest` for what "consistent" means here.
    ///
    /// - Throws: `.invalidArgument` when `directory` is not empty and holds no backup, or is the
    ///   store's own directory; `.io` when a copy fails (the directory then still holds the
    ///   earlier backup whole, if any).
    ///
    /// `bytesPerSecond` caps the copy's rate: on a machine whose one disk also carries the log,
    /// a backup at full speed slows every save's sync (docs/operations.md has the trade-off).
    public func backup(to directory: String, bytesPerSecond: Int64? = nil, progress: (@Sendable (BackupProgress) -> Void)? = nil) async throws -> BackupReport {
        // A thread of its own, at the lowest best-effort I/O priority: the log's writes and
        // syncs go first (as for compaction).
        let thread = OSThread(name: "jelly-backup")
        let report = try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<BackupReport, any Error>) in
            thread.start {
                _ = jelly_set_thread_io_low()
                c.resume(with: Result { try self.backupBlocking(to: directory, bytesPerSecond: bytesPerSecond, progress: progress) })
            }
        }
        thread.join()
        return report
    }

    func backupBlocking(to directory: String, bytesPerSecond: Int64?, progress: (@Sendable (BackupProgress) -> Void)?) throws -> BackupReport {
        let started = monotonicNanoseconds()
        let storage = configuration.storage
        let source = configuration.directory
        if canonical(directory) == canonical(source) || canonical(directory).hasPrefix(canonical(source) + "/") {
            throw JellyError(.invalidArgument, "cannot back up \(source) into itself (\(directory)); choose a directory outside the store")
        }
        try storage.makeDirectoryDurably(directory)
        let previous = try BackupFiles.decodeManifest(storage, directory: directory)
        if previous == nil, let stray = try storage.listDirectory(directory).first {
            throw JellyError(.invalidArgument, "\(directory) is not empty (it holds \(stray)) and holds no backup; back up into an empty or new directory, or into an earlier backup of this store to update it")
        }
        if let previous, previous.epoch != shared.epoch {
            throw JellyError(.invalidArgument, "\(directory) holds a backup of another store (epoch \(previous.epoch), this store is \(shared.epoch)); back up into a new directory")
        }

        maintenance.holdCompaction()
        defer { maintenance.releaseCompaction() }
        // The snapshot: what each file holds at one version.
        let (snapshot, version, restorableFrom) = shared.state.withLock { state -> ([SnapshotFile], UInt64, UInt64) in
            var files: [SnapshotFile] = []
            for (id, stats) in state.index.segments.sorted(by: { $0.key < $1.key }) {
                files.append(SnapshotFile(name: segmentFileName(id), bytes: stats.fileBytes, isSegment: true))
            }
            return (files, state.index.maxVersion, min(state.restorableFrom, state.index.maxVersion))
        }
        var files = snapshot
        for file in snapshot where file.isSegment {
            guard let id = parseSegmentName(file.name, suffix: ".log") else { continue }
            let hint = source + "/" + hintFileName(id)
            // A segment sealed a moment ago may have no hint yet: restore rebuilds it by scanning.
            guard storage.fileExists(hint), let file = try? storage.openRead(path: hint) else { continue }
            defer { file.close() }
            if let bytes = try? file.size() { files.append(SnapshotFile(name: hintFileName(id), bytes: bytes, isSegment: false)) }
        }

        let total = files.reduce(Int64(0)) { $0 + $1.bytes }
        var done: Int64 = 0
        var copied: Int64 = 0
        var report = BackupReport(directory: directory, version: version, files: files.count, bytesCopied: 0, bytesReused: 0, filesDeleted: 0, milliseconds: 0)
        var entries: [BackupManifest.File] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: BackupFiles.chunkBytes, alignment: storageAlignment)
        defer { buffer.deallocate() }
        let earlier = Dictionary((previous?.files ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for file in files {
            let from = source + "/" + file.name, to = directory + "/" + file.name
            var resumeAt: Int64 = 0
            var crc: UInt32 = 0
            if let old = earlier[file.name], storage.fileExists(to), old.bytes <= file.bytes {
                // Segments only grow by appends under one name; a hint is rewritten whole.
                let sameStart: Bool
                if file.isSegment {
                    sameStart = BackupFiles.headerBytes(storage, path: from) == BackupFiles.headerBytes(storage, path: to)
                } else {
                    sameStart = try old.bytes == file.bytes && BackupFiles.checksum(storage, path: from, bytes: file.bytes, buffer: buffer) == old.crc32c
                }
                if sameStart { resumeAt = old.bytes; crc = old.crc32c }
            }
            if resumeAt < file.bytes {
                crc = try BackupFiles.copy(storage, from: from, to: to, range: resumeAt..<file.bytes, crc: crc, buffer: buffer, direct: file.isSegment && configuration.directIO) { n in
                    done += n
                    copied += n
                    if let rate = bytesPerSecond, rate > 0 {
                        // Ahead of the allowed rate: wait until the copy is back on it.
                        let due = UInt64(Double(copied) / Double(rate) * 1e9)
                        let elapsed = monotonicNanoseconds() - started
                        if due > elapsed { usleep(useconds_t(min(1_000_000, (due - elapsed) / 1000))) }
                    }
                    progress?(BackupProgress(file: file.name, bytesDone: done, bytesTotal: total))
                }
            }
            done += resumeAt
            report.bytesCopied += file.bytes - resumeAt
            report.bytesReused += resumeAt
            entries.append(BackupManifest.File(name: file.name, bytes: file.bytes, crc32c: crc))
        }
        let manifest = BackupManifest(
            format: BackupManifest.formatVersion, epoch: shared.epoch, createdAtMilliseconds: configuration.clock.nowMilliseconds(),
            version: version, restorableFrom: restorableFrom, segmentBytes: configuration.segmentBytes, files: entries
        )
        try storage.syncDirectory(directory)
        try SegmentFiles.writeAtomically(storage, directory: directory, name: BackupManifest.fileName, bytes: BackupFiles.encodeManifest(manifest))
        // Only now is the earlier backup's extra files' last user gone.
        let keep = Set(entries.map(\.name) + [BackupManifest.fileName])
        for name in try storage.listDirectory(directory) where !keep.contains(name) {
            try storage.remove(directory + "/" + name)
            report.filesDeleted += 1
        }
        try storage.syncDirectory(directory)
        report.milliseconds = Int64((monotonicNanoseconds() - started) / 1_000_000)
        progress?(BackupProgress(file: "", bytesDone: total, bytesTotal: total))
        return report
    }

    /// Removes every lock (a restored store's leases belong to sessions of another time).
    func breakAllLocks() async throws -> Int {
        let partitions = shared.state.withLock { $0.index.leases.keys.map(\.string) }
        for partition in partitions { _ = try await breakLock(partition: partition) }
        return partitions.count
    }
}

private func canonical(_ path: String) -> String {
    var p = path
    while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
    return p
}
