import JellyCore

extension EmbeddedStore {
    /// Opens (creating if needed) the store in `configuration.directory` and recovers it.
    ///
    /// Recovery: sealed segments are indexed from their hint files (or scanned when a hint is
    /// missing, and the hint rewritten); the last segment is scanned record by record. A torn
    /// write at its end (a crash mid-append) is cut off and reported in `recoveryNotes`; damage
    /// anywhere else is corruption and open fails with the file and offset.
    ///
    /// - Throws: `.alreadyOpen` when another process has the directory open, `.corruption`,
    ///   `.io`, `.invalidArgument` for a bad configuration.
    public static func open(_ configuration: EmbeddedStoreConfiguration) throws -> EmbeddedStore {
        try configuration.validate()
        let storage = configuration.storage
        let directory = configuration.directory
        try storage.makeDirectoryDurably(directory)
        let lock = try storage.lockDirectory(directory)
        do {
            return try recover(configuration, lock: lock)
        } catch {
            lock.close()
            throw error
        }
    }

    private static func recover(_ configuration: EmbeddedStoreConfiguration, lock: any StorageFile) throws -> EmbeddedStore {
        let storage = configuration.storage
        let directory = configuration.directory
        func path(_ name: String) -> String { directory + "/" + name }

        var segments: [UInt32] = []
        var hints = Set<UInt32>()
        var prepared: [String] = []
        var preparedNumber = 0
        var notes: [String] = []
        for name in try storage.listDirectory(directory) {
            if name.hasSuffix(".tmp") {
                try storage.remove(path(name))
            } else if let id = parseSegmentName(name, suffix: ".log") {
                segments.append(id)
            } else if let id = parseSegmentName(name, suffix: ".hint") {
                hints.insert(id)
            } else if let n = parsePreparedName(name) {
                preparedNumber = max(preparedNumber, n)
                let file = try storage.openRead(path: path(name))
                let size = try file.size()
                file.close()
                if size == Int64(configuration.segmentBytes) && prepared.count < Maintenance.sparesMax { prepared.append(path(name)) } else { try storage.remove(path(name)) }
            }
        }
        segments.sort()
        let lastLogSegment = segments.filter { !isCompactionOutput($0) }.max()
        let nextOutputID = (segments.filter(isCompactionOutput).max() ?? (compactedSegmentIDBase - 1)) + 1
        let unsealable = try SegmentFiles.mayBeUnsealed(storage, directory: directory, segments: segments)

        var index = StoreIndex()
        var maxVersion: UInt64 = 0
        var versionFloor: UInt64 = 1
        var reuse: (id: UInt32, file: any StorageFile)? = nil
        let sealBuffer = AlignedBuffer(capacity: Format.pageBytes)

        for id in segments {
            let segmentPath = path(segmentFileName(id))
            let hintPath = path(hintFileName(id))
            let mayBeUnsealed = unsealable.contains(id)
            if !mayBeUnsealed && hints.contains(id) && !configuration.verifyAllSegmentsOnOpen {
                let (header, entries) = try SegmentFiles.readHint(storage, path: hintPath, segmentID: id)
                let file = try storage.openRead(path: segmentPath)
                let size = try file.size()
                file.close()
                if size < Int64(header.dataEnd) {
                    throw JellyError(.corruption, "\(segmentPath): the segment is \(size) bytes but its hint says its data ends at \(header.dataEnd); the file was cut short. Restore it from a backup")
                }
                for entry in entries { index.apply(entry.meta, segment: id, offset: UInt32(entry.offset)) }
                index.markSealed(id, dataEnd: Int(header.dataEnd))
                maxVersion = max(maxVersion, header.maxVersion)
                continue
            }
            let bytes = try SegmentFiles.readAll(storage, path: segmentPath)
            if mayBeUnsealed && SegmentFiles.neverStarted(bytes, id: id) {
                try storage.remove(segmentPath)
                notes.append("removed \(segmentFileName(id)): a spare file renamed into place before its header was written (a crash while the segment was being started); it held no record of this segment")
                continue
            }
            let scan = try SegmentFiles.scan(bytes, path: segmentPath, mayBeUnsealed: mayBeUnsealed)
            for entry in scan.entries { index.apply(entry.meta, segment: id, offset: UInt32(entry.offset)) }
            let scanMax = scan.entries.reduce(scan.sealVersion) { max($0, $1.version) }
            maxVersion = max(maxVersion, scanMax)
            versionFloor = max(versionFloor, scan.header.versionFloor)
            // A segment that may not be unsealed scans as sealed, with no torn tail, or not at all.
            if scan.sealed {
                index.markSealed(id, dataEnd: scan.dataEnd)
                if !hints.contains(id) {
                    notes += try writeHintIfRoom(storage, directory: directory, id: id, bytes: SegmentFiles.encodeHint(scan.entries, segmentID: id, dataEnd: scan.dataEnd, maxVersion: scanMax))
                }
                continue
            }
            if let torn = scan.tornTail {
                notes.append("\(segmentFileName(id)): cut off a torn write at offset \(torn.offset) (a crash during an unacknowledged append)")
            }
            if scan.blocks == 0 && (isCompactionOutput(id) || id != lastLogSegment) {
                // Started and never written to, and not the segment to continue: nothing points
                // into it.
                try storage.remove(segmentPath)
                notes.append("removed \(segmentFileName(id)): a segment started and never written")
            } else if scan.blocks == 0 && scan.tornTail == nil && bytes.count == configuration.segmentBytes {
                // Started but never written: keep appending to it.
                let file = try storage.openLog(path: segmentPath, create: false, direct: configuration.directIO)
                reuse = (id, file)
                index.segments[id] = SegmentStats(fileBytes: Int64(Format.segmentHeaderBytes))
            } else {
                // Seal where the valid data ends; what follows (a torn write) is never read again.
                let file = try storage.openLog(path: segmentPath, create: false, direct: configuration.directIO)
                defer { file.close() }
                let sealVersion = max(maxVersion, versionFloor - 1)
                var writer = SegmentWriter(id: id, file: file, dataEnd: scan.dataEnd, entries: scan.entries)
                let (dataEnd, hint) = try writer.seal(version: sealVersion, trim: true, buffer: sealBuffer)
                notes += try writeHintIfRoom(storage, directory: directory, id: id, bytes: hint)
                index.markSealed(id, dataEnd: dataEnd)
                maxVersion = max(maxVersion, sealVersion)
            }
        }

        notes += boundRecoveredLeases(&index, now: configuration.clock.nowMilliseconds(), limits: configuration.limits)

        var readers: [UInt32: SegmentReader] = [:]
        for id in index.segments.keys {
            readers[id] = SegmentReader(id: id, file: try storage.openRead(path: path(segmentFileName(id))))
        }
        var state = EngineState(recovered: index, readers: readers, nextVersion: max(maxVersion + 1, versionFloor, 1))
        state.restorableFrom = state.nextVersion
        let epoch = try Epoch.readOrCreate(storage, directory: directory)
        let (frames, frameNotes) = try FrameLog.open(
            directory: path("frames"), storage: storage, clock: configuration.clock, defaults: configuration.limits.streamRetentionDefault,
            segmentBytes: configuration.streams.fileBytes, durability: configuration.streams.durability, queueBytesMax: configuration.streams.queueBytesMax
        )
        notes += frameNotes
        let shared = EngineShared(state: state, directory: directory, storage: storage, directoryLock: lock, epoch: epoch)
        let maintenance = Maintenance(shared: shared, configuration: configuration, prepared: prepared, nextPreparedNumber: preparedNumber, nextOutputID: nextOutputID)
        let committer: Committer
        if let reuse {
            committer = Committer(
                shared: shared, configuration: configuration, maintenance: maintenance,
                log: SegmentWriter(id: reuse.id, file: reuse.file)
            )
            shared.state.withLock { $0.activate(segment: reuse.id) }
            maintenance.startAhead(id: reuse.id + 1)
        } else {
            committer = Committer(shared: shared, configuration: configuration, maintenance: maintenance, log: nil)
            do {
                try committer.activate(id: (lastLogSegment ?? 0) + 1)
            } catch let error as JellyError where error.code == .diskFull {
                // Open anyway: reads work, writes are refused until there is room again.
                committer.startWithoutSegment(id: (lastLogSegment ?? 0) + 1, error: error)
                notes.append("the disk is full: writes are refused until there is room for a new segment (\(error.message))")
            }
        }
        committer.start()
        maintenance.start()
        frames.start()
        return EmbeddedStore(configuration: configuration, shared: shared, committer: committer, maintenance: maintenance, frames: frames, notes: notes)
    }
}

/// A lease's expiry is wall-clock time written by the clock that granted it. If the clock at
/// open is behind that one (a machine whose clock was reset, a restore on another machine), a
/// 30-second lease would block its partition until the old clock's time comes round, maybe
/// hours. No lease is left more than the TTL it was granted with (leases written before the TTL
/// was kept: the longest TTL allowed). Returns a recovery note when it shortened any.
func boundRecoveredLeases(_ index: inout StoreIndex, now: Int64, limits: JellyLimits) -> [String] {
    var shortened = 0
    var largest: Int64 = 0
    for (partition, lease) in index.leases where lease.isLive(at: now) {
        let units = index.leaseTTLUnits[partition] ?? 0
        let ttl = units == 0 ? limits.lockTTLMillisecondsMax : Int64(units) * Format.leaseTTLUnitMilliseconds
        if lease.expiresAtMilliseconds - now > ttl {
            largest = max(largest, lease.expiresAtMilliseconds - now - ttl)
            index.leases[partition]?.expiresAtMilliseconds = now + ttl
            shortened += 1
        }
    }
    index.leaseTTLUnits = [:]
    guard shortened > 0 else { return [] }
    return ["\(shortened) lock(s) expired up to \(largest) ms later than the TTL they were granted with allows from now: the clock is behind the one that granted them; each now expires at most its TTL from now"]
}

/// A hint is an index that the next open rebuilds when it is missing: on a full disk, open goes
/// on without it.
private func writeHintIfRoom(_ storage: any StorageSystem, directory: String, id: UInt32, bytes: [UInt8]) throws -> [String] {
    do {
        try SegmentFiles.writeAtomically(storage, directory: directory, name: hintFileName(id), bytes: bytes)
        return []
    } catch let error as JellyError where error.code == .diskFull {
        return ["\(hintFileName(id)) not written (the disk is full); the next open rebuilds it"]
    }
}
