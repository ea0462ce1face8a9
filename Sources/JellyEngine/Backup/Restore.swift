import JellyCore

/// What `Backups.verify` found.
public struct BackupVerification: Sendable, Codable, Equatable {
    public var directory: String
    /// The manifest's version: every acknowledged write up to it is in the backup.
    public var version: UInt64
    /// The backup restores to any version from this one up to `version` (`jelly restore
    /// --to-version`).
    public var restorableFrom: UInt64
    public var epoch: String
    /// The lowest and highest record versions the files hold (nil when they hold none).
    public var versionMin: UInt64?
    public var versionMax: UInt64?
    public var records: Int
    public var files: Int
    public var bytes: Int64
    /// Damage found: file, offset and what is wrong. Empty: the backup is good.
    public var problems: [String]
    public var isGood: Bool { problems.isEmpty }
}

/// What `Backups.restore` did.
public struct RestoreReport: Sendable, Codable, Equatable {
    public var directory: String
    /// The version restored: every write acknowledged at or below it is in the store, none above.
    public var version: UInt64
    /// The restored store's new epoch (client replicas and change feeds of the old one reset).
    public var epoch: String
    public var files: Int
    public var bytes: Int64
    /// Locks the backup held, removed: their sessions belong to the store's past.
    public var locksBroken: Int
    public var milliseconds: Int64
}

/// Verify and restore, for backup directories made by `EmbeddedStore.backup(to:)`. Neither needs
/// the backed-up store to be open, or to exist.
public enum Backups {
    /// Versions a restored store issues start this far above the backup's version. The store the
    /// backup was taken from may have issued versions (lock tokens among them) after the backup;
    /// a restored store must never issue one of them again, or a game server still holding an old
    /// token could have its saves accepted. 2^32 is more versions than a store issues in a month
    /// at 1,000 saves a second.
    public static let restoreVersionGap: UInt64 = 1 << 32

    /// Checks every file of the backup against the manifest's length and CRC-32C, every segment
    /// record by record (checksums, fields, blocks, seals) and every hint entry; reports the
    /// version range held. Damage is reported with the file and offset, not thrown.
    ///
    /// - Throws: `.invalidArgument` when `directory` holds no backup manifest.
    public static func verify(directory: String, storage: any StorageSystem = PosixStorage(), progress: ((BackupProgress) -> Void)? = nil) throws -> BackupVerification {
        guard let manifest = try BackupFiles.decodeManifest(storage, directory: directory) else {
            throw JellyError(.invalidArgument, "\(directory) holds no \(BackupManifest.fileName) manifest: it is not a backup, or a backup that did not finish (take it again)")
        }
        var result = BackupVerification(
            directory: directory, version: manifest.version, restorableFrom: manifest.restorableFrom, epoch: manifest.epoch, versionMin: nil, versionMax: nil,
            records: 0, files: manifest.files.count, bytes: manifest.files.reduce(0) { $0 + $1.bytes }, problems: []
        )
        let ids = manifest.files.compactMap { parseSegmentName($0.name, suffix: ".log") }
        let lastLog = ids.filter { !isCompactionOutput($0) }.max()
        let lastOutput = ids.filter(isCompactionOutput).max()
        var done: Int64 = 0
        for file in manifest.files {
            let path = directory + "/" + file.name
            guard storage.fileExists(path) else {
                result.problems.append("\(path): missing (the manifest lists it with \(file.bytes) bytes)")
                continue
            }
            do {
                var bytes = try SegmentFiles.readAll(storage, path: path)
                guard bytes.count >= file.bytes else {
                    result.problems.append("\(path): \(bytes.count) bytes, the manifest says \(file.bytes) (cut short)")
                    continue
                }
                bytes.removeSubrange(Int(file.bytes)...)
                var located = false
                if let id = parseSegmentName(file.name, suffix: ".log") {
                    let mayBeUnsealed = id == lastLog || id == lastOutput
                    let scan = try SegmentFiles.scan(bytes, path: path, mayBeUnsealed: mayBeUnsealed)
                    if let torn = scan.tornTail {
                        result.problems.append("\(path) at offset \(torn.offset): invalid block (the backup copied whole blocks only, so this is damage)")
                        located = true
                    } else if scan.dataEnd != bytes.count && !(mayBeUnsealed && bytes[scan.dataEnd...].allSatisfy { $0 == 0 }) {
                        result.problems.append("\(path) at offset \(scan.dataEnd): data after the segment's end")
                        located = true
                    }
                    for e in scan.entries {
                        result.records += 1
                        result.versionMin = min(result.versionMin ?? e.version, e.version)
                        result.versionMax = max(result.versionMax ?? e.version, e.version)
                    }
                } else if let id = parseSegmentName(file.name, suffix: ".hint") {
                    _ = try SegmentFiles.readHint(storage, path: path, segmentID: id)
                }
                let crc = bytes.withUnsafeBytes { crc32c($0) }
                if crc != file.crc32c && !located {
                    result.problems.append("\(path): CRC-32C \(hexCRC(crc)) over its \(file.bytes) bytes, the manifest says \(hexCRC(file.crc32c)) (damage the record checks did not place)")
                }
            } catch let e as JellyError {
                result.problems.append(e.message)
            }
            done += file.bytes
            progress?(BackupProgress(file: file.name, bytesDone: done, bytesTotal: result.bytes))
        }
        return result
    }

    /// Restores the backup in `backup` into `directory`, a new (or empty) directory: verifies
    /// it, copies its files, gives the store a new epoch and versions above `restoreVersionGap`
    /// beyond the backup's, opens it (recovery), removes every lock it held, closes it and runs
    /// `jelly check` on it.
    ///
    /// - Throws: `.invalidArgument` when `directory` is not empty (a restore never overwrites a
    ///   store) or `backup` is not a backup; `.corruption` when the backup fails verification.
    public static func restore(
        from backup: String, to directory: String, toVersion: UInt64? = nil, storage: any StorageSystem = PosixStorage(),
        configure: (inout EmbeddedStoreConfiguration) -> Void = { _ in },
        progress: ((BackupProgress) -> Void)? = nil
    ) async throws -> RestoreReport {
        let started = monotonicNanoseconds()
        if storage.fileExists(directory), let name = try storage.listDirectory(directory).first {
            throw JellyError(.invalidArgument, "\(directory) is not empty (it holds \(name)); a restore never overwrites a store: restore into a new directory, then point jelly serve at it")
        }
        let verification = try verify(directory: backup, storage: storage)
        guard verification.isGood, let manifest = try BackupFiles.decodeManifest(storage, directory: backup) else {
            throw JellyError(.corruption, "the backup in \(backup) fails verification: \(verification.problems.first ?? "unreadable manifest")\(verification.problems.count > 1 ? " (and \(verification.problems.count - 1) more)" : ""); restore another backup")
        }
        let target = toVersion ?? manifest.version
        guard target >= manifest.restorableFrom && target <= manifest.version else {
            throw JellyError(.invalidArgument, "the backup in \(backup) restores to versions \(manifest.restorableFrom)…\(manifest.version), not \(target): \(target > manifest.version ? "take a newer backup" : "compaction ran after it and dropped the records it needs (or the store was reopened); restore an older backup")")
        }
        try storage.makeDirectoryDurably(directory)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: BackupFiles.chunkBytes, alignment: storageAlignment)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        for file in manifest.files {
            let crc = try BackupFiles.copy(storage, from: backup + "/" + file.name, to: directory + "/" + file.name, range: 0..<file.bytes, crc: 0, buffer: buffer) { n in
                done += n
                progress?(BackupProgress(file: file.name, bytesDone: done, bytesTotal: verification.bytes))
            }
            guard crc == file.crc32c else {
                throw JellyError(.corruption, "\(backup)/\(file.name) changed while it was restored (CRC-32C \(hexCRC(crc)), the manifest says \(hexCRC(file.crc32c))); run jelly backup verify \(backup)")
            }
        }
        if target < manifest.version {
            try cutLog(directory: directory, manifest: manifest, after: target, storage: storage)
        }
        // The versions the restored store issues start far above the backup's (a log segment
        // holding only a header whose version floor says so), and it gets a new epoch.
        let lastLog = manifest.files.compactMap { parseSegmentName($0.name, suffix: ".log") }.filter { !isCompactionOutput($0) }.max() ?? 0
        let floorID = lastLog + 1
        let header = AlignedBuffer(capacity: Format.segmentHeaderBytes)
        SegmentHeader(segmentID: UInt64(floorID), versionFloor: manifest.version + restoreVersionGap, createdAtMilliseconds: SystemClock().nowMilliseconds()).encode(into: header.pointer)
        let floorFile = try storage.openWrite(path: directory + "/" + segmentFileName(floorID), truncate: true)
        do {
            defer { floorFile.close() }
            try floorFile.write(header.bytes(Format.segmentHeaderBytes), at: 0)
            try floorFile.sync()
        }
        let epoch = Epoch.make()
        try SegmentFiles.writeAtomically(storage, directory: directory, name: Epoch.fileName, bytes: Array((epoch + "\n").utf8))
        try storage.syncDirectory(directory)

        var config = EmbeddedStoreConfiguration(directory: directory)
        config.storage = storage
        config.segmentBytes = manifest.segmentBytes
        configure(&config)
        let store = try EmbeddedStore.open(config)
        let broken: Int
        do {
            broken = try await store.breakAllLocks()
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
        let check = try StoreChecker.check(directory: directory, storage: storage)
        guard check.isConsistent else {
            throw JellyError(.corruption, "the restored store in \(directory) fails jelly check: \(check.problems.joined(separator: "; "))")
        }
        return RestoreReport(
            directory: directory, version: target, epoch: epoch, files: manifest.files.count, bytes: verification.bytes,
            locksBroken: broken, milliseconds: Int64((monotonicNanoseconds() - started) / 1_000_000)
        )
    }

    /// Restoring to a version below the backup's: every record above `version` leaves the log.
    /// Versions grow along the log (a block holds the commits of one group, in order), so the
    /// first log segment holding a record above it is cut there: the block holding that record
    /// is written again with the records before it, the file is cut after that block, its hint
    /// removed (recovery scans it), and every later log segment removed. Compaction outputs
    /// hold nothing above `restorableFrom` (they were written before it), so they stay.
    static func cutLog(directory: String, manifest: BackupManifest, after version: UInt64, storage: any StorageSystem) throws {
        let logIDs = manifest.files.compactMap { parseSegmentName($0.name, suffix: ".log") }.filter { !isCompactionOutput($0) }.sorted()
        var cut = false
        for id in logIDs {
            let path = directory + "/" + segmentFileName(id)
            if cut {
                try storage.remove(path)
                try storage.remove(directory + "/" + hintFileName(id))
                continue
            }
            let bytes = try SegmentFiles.readAll(storage, path: path)
            let scan = try SegmentFiles.scan(bytes, path: path, mayBeUnsealed: true)
            guard let first = scan.entries.first(where: { $0.version > version }) else { continue }
            cut = true
            // The block holding the first record above `version`.
            var block = Format.segmentHeaderBytes
            var header: BlockHeader?
            while block < scan.dataEnd {
                guard let h = bytes.withUnsafeBytes({ BlockHeader.decode($0.baseAddress.unsafelyUnwrapped + block, expectedSegment: UInt64(id)) }) else { break }
                if Int(first.offset) < block + h.totalBytes { header = h; break }
                block += h.totalBytes
            }
            guard header != nil else {
                throw JellyError(.corruption, "\(path): no block holds the record at offset \(first.offset); run jelly backup verify")
            }
            let kept = scan.entries.filter { Int($0.offset) >= block && $0.offset < first.offset }
            let file = try storage.openLog(path: path, create: false, direct: false)
            defer { file.close() }
            var writer = SegmentWriter(id: id, file: file, dataEnd: block)
            if !kept.isEmpty {
                let payload = Int(first.offset) - (block + Format.blockHeaderBytes)
                let buffer = AlignedBuffer(capacity: Format.alignUp(Format.blockHeaderBytes + payload))
                bytes.withUnsafeBytes { raw in
                    (buffer.pointer + Format.blockHeaderBytes).copyMemory(from: raw.baseAddress.unsafelyUnwrapped + block + Format.blockHeaderBytes, byteCount: payload)
                }
                _ = try writer.appendBlock(buffer, payloadBytes: payload, recordCount: UInt32(kept.count))
            }
            try file.truncate(to: Int64(writer.offset))
            try file.sync()
            try storage.remove(directory + "/" + hintFileName(id))
        }
        try storage.syncDirectory(directory)
    }
}
