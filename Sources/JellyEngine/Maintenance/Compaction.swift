import JellyCore

/// Compaction: picking the segments whose garbage passed the threshold, copying their live
/// records into the compaction output (`CompactionOutput`), repointing the index, removing or
/// recycling the inputs.
extension Maintenance {
    func requestCompaction(force: Bool, progress: (@Sendable (CompactionProgress) -> Void)?, done: @escaping @Sendable (Result<CompactionReport, JellyError>) -> Void) {
        let accepted = work.withLock { w -> Bool in
            guard w.running else { return false }
            w.compactRequests.append(CompactionRequest(force: force, progress: progress, done: done))
            return true
        }
        if accepted { wake.signal() } else { done(.failure(JellyError(.unavailable, "the store is closed"))) }
    }

    /// Compacts while the sealed segments hold too much garbage: with `force`, every sealed
    /// segment holding any garbage; otherwise, while garbage exceeds both `garbageRatio` of the
    /// sealed record bytes and `garbageBytesAllowance`, the segment with the most garbage first.
    /// Waiting lets segments of hot data become almost all garbage before they are touched, so
    /// compaction copies little. Small segments (left by early seals and by compaction) are merged.
    func compact(force: Bool, progress: (@Sendable (CompactionProgress) -> Void)?) throws -> CompactionReport {
        var report = CompactionReport()
        var done = Set<UInt32>()
        let plannedCount = force ? pick(force: true, excluding: []).count : 0
        var round = 0
        while true {
            let inputs = pick(force: force, excluding: done)
            guard !inputs.isEmpty, round < 10_000 else { break }
            round += 1
            startWanted()
            compactionRound.wait()
            defer { compactionRound.signal() }
            // A backup is copying: stop here; compaction resumes after it.
            if compactionHeld { break }
            done.formUnion(inputs)
            progress?(CompactionProgress(segment: inputs[0], index: done.count, count: max(plannedCount, done.count), report: report))
            let moved0 = report.bytesMoved, t0 = monotonicNanoseconds()
            try compactSegments(inputs, report: &report)
            shared.state.withLock { $0.restorableFrom = $0.nextVersion }
            let t1 = monotonicNanoseconds()
            compactionStats.withLock {
                $0.compactionNanos += t1 - t0
                if inputs.count > 1 { $0.mergeRounds += 1; $0.mergeBytesMoved += report.bytesMoved - moved0 }
            }
        }
        compactionStats.withLock {
            $0.segmentsCompacted += report.segmentsCompacted
            $0.bytesMoved += report.bytesMoved
        }
        return report
    }

    /// The next segments to compact together, or none.
    func pick(force: Bool, excluding done: Set<UInt32>) -> [UInt32] {
        let ratio = configuration.compaction.garbageRatio
        let allowance = configuration.compaction.garbageBytesAllowance
        let segmentBytes = Int64(configuration.segmentBytes)
        let small = segmentBytes / 8
        return shared.state.withLock { state -> [UInt32] in
            let sealed = state.compactableSegments(excluding: done)
            // Merge small segments, up to half a segment of live data at a time.
            let smallOnes = sealed.filter { $0.stats.fileBytes < small }
            if smallOnes.count > 1 {
                var group: [UInt32] = []
                var live: Int64 = 0
                for s in smallOnes where live + s.stats.liveBytes <= segmentBytes / 2 || group.isEmpty {
                    group.append(s.id)
                    live += s.stats.liveBytes
                }
                if group.count > 1 { return group }
            }
            func garbageRatio(_ s: SegmentStats) -> Double {
                Double(s.recordBytes - s.liveBytes) / Double(max(1, s.recordBytes))
            }
            if force {
                return sealed.first { $0.stats.recordBytes > $0.stats.liveBytes }.map { [$0.id] } ?? []
            }
            // A segment with nothing live costs nothing to reclaim (no copying), and its file
            // becomes a spare that spares a zero-fill: reclaim it whatever the allowance.
            if let dead = sealed.first(where: { $0.stats.liveBytes == 0 && $0.stats.recordBytes > 0 }) {
                return [dead.id]
            }
            let total = sealed.reduce(Int64(0)) { $0 + $1.stats.recordBytes }
            let garbage = total - sealed.reduce(Int64(0)) { $0 + $1.stats.liveBytes }
            guard garbage > max(segmentBytes, allowance), Double(garbage) > ratio * Double(total) else { return [] }
            return sealed.max { garbageRatio($0.stats) < garbageRatio($1.stats) }.map { [$0.id] } ?? []
        }
    }

    /// Copies the live records of `inputs` into the compaction output (sealing a full output and
    /// starting the next one on the way), syncs it, points the index at the copies, then removes
    /// the inputs. A crash at any point leaves either the inputs or both; both is harmless
    /// because a slot's state is its highest version.
    func compactSegments(_ inputs: [UInt32], report: inout CompactionReport) throws {
        let storage = shared.storage
        var plans: [(id: UInt32, entries: [HintEntry], reader: SegmentReader, fileBytes: Int64)] = []
        for id in inputs {
            let segmentPath = shared.path(segmentFileName(id))
            let hintPath = shared.path(hintFileName(id))
            let entries: [HintEntry]
            if storage.fileExists(hintPath), let (_, e) = try? SegmentFiles.readHint(storage, path: hintPath, segmentID: id) {
                entries = e
            } else {
                entries = try SegmentFiles.scan(SegmentFiles.readAll(storage, path: segmentPath), path: segmentPath, mayBeUnsealed: false).entries
            }
            guard let reader = shared.state.withLock({ $0.reader(id) }) else { continue }
            plans.append((id, entries, reader, (try? reader.file.size()) ?? 0))
        }

        var moved: [(meta: RecordMeta, segment: UInt32, offset: UInt32, from: (segment: UInt32, offset: UInt32))] = []
        var bytesMoved = 0
        var readNanos: UInt64 = 0
        // Partitions whose tombstones this round drops, with the highest version dropped.
        var floors: [ByteName: UInt64] = [:]
        let now = configuration.clock.nowMilliseconds()
        let policy = configuration.compaction
        for plan in plans {
            // Liveness is checked in chunks, so the store's lock is never held for long.
            var keep: [Bool] = []
            keep.reserveCapacity(plan.entries.count)
            forEachUnderLock(plan.entries) { state, entry in
                let meta = entry.meta
                switch state.fate(meta, version: entry.version, segment: plan.id, offset: UInt32(entry.offset), now: now, policy: policy) {
                case .copy: keep.append(true)
                case .leave: keep.append(false)
                case .dropTombstone:
                    keep.append(false)
                    floors[meta.partition] = max(floors[meta.partition] ?? 0, entry.version)
                }
            }
            for (n, entry) in plan.entries.enumerated() where keep[n] {
                let tr = monotonicNanoseconds()
                let (record, _) = try plan.reader.readRecord(at: entry.offset, length: Int(entry.recordLength), version: entry.version, what: "during compaction")
                readNanos += monotonicNanoseconds() - tr
                let out = try outputWithRoom(for: record.count)
                let offset = try out.append(record: record, entry: entry)
                moved.append((entry.meta, out.id, offset, (plan.id, UInt32(entry.offset))))
                bytesMoved += record.count
            }
        }
        // Each partition that lost tombstones gets a floor record, durable with the copies and
        // before the inputs go, so its change feed never answers a cursor it cannot answer exactly.
        var floorRecords: [(meta: RecordMeta, segment: UInt32, offset: UInt32)] = []
        for (partition, version) in floors.sorted(by: { $0.key < $1.key }) {
            if shared.state.withLock({ $0.index.floor(partition: partition) }) >= version { continue }
            var records = EncodedRecords(capacity: 256)
            records.append(kind: .delete, partition: partition.string, key: floorSlotKey, expiresAtMilliseconds: now)
            records.seal(version: version)
            let record = records.bytes
            let entry = HintEntry(kind: .delete, partition: partition.string, key: floorSlotKey, contentType: "", offset: 0, recordLength: UInt32(record.count), version: version, token: 0, expiresAtMilliseconds: now)
            let out = try outputWithRoom(for: record.count)
            let offset = try out.append(record: record, entry: entry)
            floorRecords.append((entry.meta, out.id, offset))
            bytesMoved += record.count
        }
        // Durable before anything points at it; the inputs stay until after.
        let ts = monotonicNanoseconds()
        if let out = output {
            try out.sync()
            let end = Int64(out.offset)
            shared.state.withLock { $0.setDataEnd(out.id, end) }
        }
        let ts2 = monotonicNanoseconds()
        compactionStats.withLock {
            $0.readNanos += readNanos
            $0.outputSyncNanos += ts2 - ts
        }
        // Point the index at the copies, then forget the inputs' records: in chunks, so writers
        // wait at most one chunk. Between chunks every entry points at a readable file: the
        // inputs stay open until the end.
        forEachUnderLock(moved) { state, m in
            state.recordMoved(m.meta, to: m.segment, offset: m.offset, from: m.from)
        }
        forEachUnderLock(floorRecords) { state, f in
            state.recordFloor(f.meta, segment: f.segment, offset: f.offset)
        }
        for plan in plans {
            forEachUnderLock(plan.entries) { state, entry in
                let meta = entry.meta
                state.forgetRecord(meta, segment: plan.id, offset: UInt32(entry.offset))
            }
            shared.state.withLock { state in
                state.removeSegment(plan.id)
            }
        }
        report.bytesMoved += bytesMoved
        report.bytesReclaimed += max(0, Int(plans.reduce(Int64(0)) { $0 + $1.fileBytes }) - bytesMoved)
        let tm = monotonicNanoseconds()
        defer { let d = monotonicNanoseconds() - tm; compactionStats.withLock { $0.removeNanos += d } }
        for plan in plans {
            try storage.remove(shared.path(hintFileName(plan.id)))
            let path = shared.path(segmentFileName(plan.id))
            if plan.fileBytes == Int64(configuration.segmentBytes) && recycle(path) {
                // Kept as a future segment's file: its blocks are allocated and written, so
                // appending to it needs no zero-fill and no journal commit.
            } else {
                try storage.remove(path)
                compactionStats.withLock { $0.segmentsRemoved += 1 }
            }
            report.segmentsCompacted += 1
        }
        try storage.syncDirectory(shared.directory)
    }

    /// Runs `body` on every element under the store's lock, taken once per `lockChunk` elements,
    /// so writers wait at most one chunk.
    func forEachUnderLock<Element>(_ items: [Element], _ body: (inout EngineState, Element) -> Void) {
        for start in stride(from: 0, to: items.count, by: Maintenance.lockChunk) {
            let part = items[start..<min(start + Maintenance.lockChunk, items.count)]
            shared.state.withLock { state in
                for item in part { body(&state, item) }
            }
        }
    }

    /// The open output when `length` more bytes fit in it; otherwise seals it and starts the next.
    func outputWithRoom(for length: Int) throws -> CompactionOutput {
        if let out = output, out.fits(length) { return out }
        try sealOutput(trim: false)
        let id = work.withLock { w -> UInt32 in
            w.nextOutputID += 1
            return w.nextOutputID - 1
        }
        let started = try startSegment(id: id)
        try shared.openForReads(started)
        let out = CompactionOutput(started, segmentBytes: configuration.segmentBytes)
        output = out
        return out
    }

    /// Seals the open output, if any: seal block, sync, hint file; from then on it is a sealed
    /// segment like any other (and compaction may pick it).
    func sealOutput(trim: Bool) throws {
        guard let out = output else { return }
        let version = shared.state.withLock { $0.highestIssuedVersion }
        // On failure the output stays open (and the only unsealed one): the next round retries.
        let (dataEnd, hint) = try out.seal(sealVersion: version, trim: trim)
        output = nil
        // A hint that cannot be written is rebuilt from the segment on the next open.
        try? SegmentFiles.writeAtomically(shared.storage, directory: shared.directory, name: hintFileName(out.id), bytes: hint)
        shared.state.withLock { $0.markSealed(out.id, dataEnd: dataEnd) }
    }
}

public struct CompactionReport: Sendable, Equatable {
    public var segmentsCompacted = 0
    /// Bytes of live records copied to the active segment.
    public var bytesMoved = 0
    /// Bytes of disk released (segment files removed minus bytes moved).
    public var bytesReclaimed = 0
    public init() {}
}

public struct CompactionProgress: Sendable {
    public var segment: UInt32
    public var index: Int
    public var count: Int
    public var report: CompactionReport
}

/// A compaction asked for through `EmbeddedStore.compact`.
struct CompactionRequest: Sendable {
    var force: Bool
    var progress: (@Sendable (CompactionProgress) -> Void)?
    var done: @Sendable (Result<CompactionReport, JellyError>) -> Void
}

struct CompactionStats: Sendable {
    var segmentsCompacted = 0
    var bytesMoved = 0
    /// Bytes written to zero-fill new segment files.
    var preparedBytes = 0
    var segmentsRecycled = 0
    var segmentsRemoved = 0
    /// Rounds that merged small segments, and the bytes they copied.
    var mergeRounds = 0
    var mergeBytesMoved = 0
    var compactionNanos: UInt64 = 0
    /// Where compaction's time goes: reading live records, syncing the output, removing inputs.
    var readNanos: UInt64 = 0
    var outputSyncNanos: UInt64 = 0
    var removeNanos: UInt64 = 0
}
