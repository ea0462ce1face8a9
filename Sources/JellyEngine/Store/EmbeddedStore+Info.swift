import JellyCore

/// What `jelly info` shows.
public struct StoreInfo: Sendable {
    public var directory: String
    public var objects: Int
    public var partitions: Int
    /// Partitions with a live lease now.
    public var locksHeld: Int
    /// Bytes of records that are current (values, names and framing).
    public var liveBytes: Int64
    /// Bytes of records in all segments, current or not.
    public var recordBytes: Int64
    /// Bytes of segment files on disk (sealed ones trimmed to their data; the active one at its
    /// preallocated size is counted by its written part).
    public var segmentBytes: Int64
    public var segments: Int
    public var sealedSegments: Int
    /// Fraction of record bytes that are garbage (overwritten or deleted), 0 to 1.
    public var garbageRatio: Double
    /// "direct", or "buffered (why)".
    public var ioMode: String
    public var durability: Durability
    public var nextVersion: UInt64
    public var recoveryNotes: [String]
    /// Log writer statistics since open.
    public var blocksWritten: Int
    public var recordsWritten: Int
    public var logBytesWritten: Int
    public var recordBytesWritten: Int
    public var syncs: Int
    public var syncNanoseconds: UInt64
    /// Bytes written to zero-fill new segment files since open.
    public var preparedBytesWritten: Int
    public var segmentsCompacted: Int
    /// Bytes of live records compaction copied since open.
    public var compactionBytesMoved: Int
    /// The value cache's size and hits since open.
    public var valueCache: ValueCacheStatistics
    /// Commit pipeline timings since open, for benchmarks.
    public var timings: [String: Double] = [:]
    /// Streams: frames kept now, stream log files, and the most bytes of appends that ever
    /// waited for the stream log's disk since open (what a slow disk made the store hold).
    public var framesKept = 0
    public var frameFiles = 0
    public var frameQueueBytesPeak = 0
}

extension EmbeddedStore {
    public func info() -> StoreInfo {
        var info = objectInfo()
        frames.state.withLock { s in
            info.framesKept = s.table.streams.values.reduce(0) { $0 + $1.count }
            info.frameFiles = s.files.count
            info.frameQueueBytesPeak = s.pendingBytesPeak
        }
        return info
    }

    private func objectInfo() -> StoreInfo {
        let now = clock.nowMilliseconds()
        let committerStats = committer.stats.withLock { $0 }
        let compaction = maintenance.compactionStats.withLock { $0 }
        let ioMode = committer.ioMode
        let cache = values.statistics
        let perBlock = { (nanos: UInt64) in Double(nanos) / 1e3 / Double(max(1, committerStats.totals.blocks)) }
        return shared.state.withLock { state in
            let segs = state.index.segments
            let record = segs.values.reduce(Int64(0)) { $0 + $1.recordBytes }
            let live = segs.values.reduce(Int64(0)) { $0 + $1.liveBytes }
            return StoreInfo(
                directory: configuration.directory,
                objects: state.index.objectCount,
                partitions: state.index.partitions.values.filter { $0.values.contains { $0.kind == .put } }.count,
                locksHeld: state.index.leases.values.filter { $0.isLive(at: now) }.count,
                liveBytes: live, recordBytes: record,
                segmentBytes: segs.values.reduce(Int64(0)) { $0 + $1.fileBytes },
                segments: segs.count, sealedSegments: segs.values.filter(\.sealed).count,
                garbageRatio: record == 0 ? 0 : Double(record - live) / Double(record),
                ioMode: ioMode, durability: configuration.durability, nextVersion: state.nextVersion,
                recoveryNotes: recoveryNotes,
                blocksWritten: committerStats.totals.blocks, recordsWritten: committerStats.totals.records,
                logBytesWritten: committerStats.totals.logBytes, recordBytesWritten: committerStats.totals.payloadBytes,
                syncs: committerStats.totals.syncs, syncNanoseconds: committerStats.totals.syncNanos,
                preparedBytesWritten: compaction.preparedBytes, segmentsCompacted: compaction.segmentsCompacted,
                compactionBytesMoved: compaction.bytesMoved,
                valueCache: cache,
                timings: [
                    "sync_max_ms": Double(committerStats.totals.syncMaxNanos) / 1e6,
                    "write_mean_ms": Double(committerStats.totals.writeNanos) / 1e6 / Double(max(1, committerStats.totals.blocks)),
                    "write_max_ms": Double(committerStats.writeMaxNanos) / 1e6,
                    "rotations": Double(committerStats.totals.rotations),
                    "rotation_mean_ms": Double(committerStats.totals.rotationNanos) / 1e6 / Double(max(1, committerStats.totals.rotations)),
                    "rotation_max_ms": Double(committerStats.rotationMaxNanos) / 1e6,
                    "groups_over_10ms": Double(committerStats.groupsOver10ms),
                    "committer_sleeps": Double(committerStats.sleeps),
                    "committer_build_us": perBlock(committerStats.totals.buildNanos),
                    "committer_hint_us": perBlock(committerStats.totals.hintNanos),
                    "committer_lock_wait_us": perBlock(committerStats.totals.lockWaitNanos),
                    "committer_apply_us": perBlock(committerStats.totals.applyNanos),
                    "committer_resume_us": perBlock(committerStats.totals.resumeNanos),
                    "groups_of_1": Double(committerStats.groupSizes[0]),
                    "groups_of_2_3": Double(committerStats.groupSizes[1]),
                    "groups_of_4_7": Double(committerStats.groupSizes[2]),
                    "groups_of_8_15": Double(committerStats.groupSizes[3]),
                    "groups_of_16_31": Double(committerStats.groupSizes[4]),
                    "groups_of_32_63": Double(committerStats.groupSizes[5]),
                    "groups_of_64_up": Double(committerStats.groupSizes[6]),
                    "rotation_seal_mean_ms": Double(committerStats.totals.sealNanos) / 1e6 / Double(max(1, committerStats.totals.rotations)),
                    "compaction_seconds": Double(compaction.compactionNanos) / 1e9,
                    "compaction_read_seconds": Double(compaction.readNanos) / 1e9,
                    "compaction_sync_seconds": Double(compaction.outputSyncNanos) / 1e9,
                    "compaction_remove_seconds": Double(compaction.removeNanos) / 1e9,
                    "compaction_merge_rounds": Double(compaction.mergeRounds),
                    "compaction_merge_mib": Double(compaction.mergeBytesMoved) / 1048576,
                    "segments_recycled": Double(compaction.segmentsRecycled),
                    "segments_removed": Double(compaction.segmentsRemoved),
                ]
            )
        }
    }

    /// Compacts now, on the background worker, and waits. With `force`, every sealed segment
    /// holding any garbage is compacted, whatever the configured threshold.
    public func compact(force: Bool = true, progress: (@Sendable (CompactionProgress) -> Void)? = nil) async throws -> CompactionReport {
        try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<CompactionReport, any Error>) in
            maintenance.requestCompaction(force: force, progress: progress) { result in
                switch result {
                case .success(let r): c.resume(returning: r)
                case .failure(let e): c.resume(throwing: e)
                }
            }
        }
    }

    /// Why writes are refused now (a full disk, until it has room again; a failed write or sync,
    /// until a restart; closed), or nil when they are taken. Reads work either way.
    public var writeRefusal: JellyError? { shared.state.withLock { $0.writeBlocker } }

    /// The active segment's id (for tests and `info`).
    public var activeSegment: UInt32 { shared.state.withLock { $0.activeSegment } }
}
