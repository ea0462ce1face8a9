#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import JellyCore
import Synchronization

/// The segment being appended to. Confined to the committer thread.
struct ActiveLog {
    var id: UInt32
    var file: any StorageFile
    /// Where the next block goes.
    var offset: Int
    /// Through here the segment is synced.
    var durableOffset: Int
    /// Hint entries of the records written so far, encoded.
    var hint: [UInt8] = []
    var hintCount: UInt32 = 0
    var maxVersion: UInt64 = 0
    var blocks = 0
}

/// The single writer of the log (leveldb's group commit, with a dedicated thread as leader):
/// takes the queued requests as one group, copies their records into one page-aligned block,
/// writes it, syncs once, applies the group to the index and resumes every writer of the group,
/// then takes the next group, made of the requests that arrived meanwhile.
///
/// One thread does all of it, in turn. We measured the alternatives on this project's virtual
/// disks (docs/benchmarks.md): overlapping the next write with the current flush slowed both
/// (64 KiB saves: 12,500/s overlapped, 16,500/s in turn), and handing completion to another
/// thread added a wake-up per group without gaining throughput.
final class Committer: @unchecked Sendable {
    // `log`, `buffer`, `unsynced` and `lastSyncNanos` are touched only by the committer thread
    // (and by `crash` after that thread has exited), which is why this is @unchecked Sendable.
    private let shared: EngineShared
    private let configuration: EmbeddedStoreConfiguration
    private let maintenance: Maintenance
    private var log: ActiveLog
    var activeSegmentID: UInt32 { log.id }
    private let buffer = AlignedBuffer(capacity: 1 << 20)
    private var unsynced = false
    private var lastSyncNanos = monotonicNanoseconds()
    private let thread = OSThread(name: "jelly-commit")
    private let crashed = Atomic<Bool>(false)
    private let closeResult = Mutex<Result<Void, JellyError>>(.success(()))
    /// Statistics for benchmarks and `info`.
    let stats = Mutex(CommitterStats())

    init(shared: EngineShared, configuration: EmbeddedStoreConfiguration, maintenance: Maintenance, log: ActiveLog?) {
        self.shared = shared
        self.configuration = configuration
        self.maintenance = maintenance
        // Until `activate` runs, a placeholder that is never written (see EmbeddedStore.open).
        self.log = log ?? ActiveLog(id: 0, file: ClosedFile(), offset: 0, durableOffset: 0)
    }

    var ioMode: String {
        log.file.isDirect ? "direct" : "buffered (\(log.file.bufferedReason ?? "unknown reason"))"
    }

    func start() {
        thread.start { [self] in run() }
    }

    private func run() {
        let groupMax = configuration.groupCommitBytesMax
        while !crashed.load(ordering: .acquiring) {
            let step = shared.state.withLock { $0.queue.next(maxBytes: groupMax) }
            switch step {
            case .group(let group):
                let bucket = min(6, Int.bitWidth - 1 - group.count.leadingZeroBitCount)
                stats.withLock { $0.groupSizes[bucket] += 1 }
                commit(group)
            case .sleep:
                stats.withLock { $0.sleeps += 1 }
                sleep()
            case .exit:
                finishClose()
                return
            }
        }
    }

    /// Waits for work; in interval mode, wakes to sync data left unsynced.
    private func sleep() {
        guard unsynced, case .interval(let ms) = configuration.durability else {
            shared.committerWake.wait()
            return
        }
        let due = lastSyncNanos + UInt64(ms) * 1_000_000
        let now = monotonicNanoseconds()
        if now >= due || shared.committerWake.wait(timeout: .now() + .nanoseconds(Int(due - now))) == .timedOut {
            do {
                try syncActive()
            } catch {
                fail(error, requests: [])
            }
        }
    }

    private func commit(_ group: [CommitRequest]) {
        if let failure = shared.state.withLock({ $0.failure }) {
            for request in group { request.completion.finish(.failure(failure)) }
            return
        }
        do {
            let tw = monotonicNanoseconds()
            let locations = try writeBlock(group)
            var needsSync: Bool
            switch configuration.durability {
            case .always: needsSync = true
            case .interval(let ms): needsSync = monotonicNanoseconds() >= lastSyncNanos + UInt64(ms) * 1_000_000
            case .never: needsSync = false
            }
            if !needsSync { needsSync = group.contains { $0.needsSync } }
            if needsSync { try syncActive() }
            if monotonicNanoseconds() - tw > 10_000_000 { stats.withLock { $0.groupsOver10ms += 1 } }
            apply(group, locations: locations, blockEnd: log.offset)
        } catch {
            fail(error, requests: group)
        }
    }

    /// Copies a group's records into one page-aligned block and writes it after the log's last
    /// block, rotating to the next segment first when the block does not fit. Returns the
    /// records' offsets.
    private func writeBlock(_ group: [CommitRequest]) throws -> [UInt32] {
        let payload = group.reduce(0) { $0 + $1.payloadBytes }
        let blockBytes = Format.alignUp(Format.blockHeaderBytes + payload)
        if log.offset + blockBytes + Format.pageBytes > configuration.segmentBytes {
            let t0 = monotonicNanoseconds()
            try rotate()
            let t1 = monotonicNanoseconds()
            stats.withLock {
                $0.rotations += 1
                $0.rotationNanos += t1 - t0
                $0.rotationMaxNanos = max($0.rotationMaxNanos, t1 - t0)
            }
        }
        let tb = monotonicNanoseconds()
        buffer.reserve(blockBytes)
        let base = buffer.pointer
        var at = Format.blockHeaderBytes
        var count: UInt32 = 0
        var locations: [UInt32] = []
        locations.reserveCapacity(group.count)
        for request in group {
            request.records.bytes.withUnsafeBytes { raw in
                guard let src = raw.baseAddress else { return }
                for (i, r) in request.records.records.enumerated() where request.include[i] {
                    (base + at).copyMemory(from: src + r.offset, byteCount: r.length)
                    locations.append(UInt32(log.offset + at))
                    at += r.length
                    count += 1
                }
            }
        }
        (base + at).initializeMemory(as: UInt8.self, repeating: 0, count: blockBytes - at)
        BlockHeader(
            segmentID: UInt64(log.id), payloadBytes: UInt32(payload), recordCount: count,
            durableOffset: UInt64(log.durableOffset), flags: 0
        ).encode(into: base)
        let tw = monotonicNanoseconds()
        try log.file.write(buffer.bytes(blockBytes), at: Int64(log.offset))
        let tw2 = monotonicNanoseconds()
        log.offset += blockBytes
        log.blocks += 1
        unsynced = true

        var li = 0
        for request in group {
            for (i, meta) in request.metas.enumerated() where request.include[i] {
                HintEntry(
                    kind: meta.kind, partition: meta.partition.string, key: meta.key, contentType: meta.contentType,
                    offset: UInt64(locations[li]), recordLength: meta.recordLength, version: request.version,
                    token: meta.token, expiresAtMilliseconds: meta.expiresAtMilliseconds, flags: meta.flags
                ).encode(into: &log.hint)
                log.maxVersion = max(log.maxVersion, request.version)
                li += 1
            }
        }
        log.hintCount += count
        let th = monotonicNanoseconds()
        stats.withLock {
            $0.buildNanos += tw - tb
            $0.hintNanos += th - tw2
            $0.blocks += 1
            $0.records += Int(count)
            $0.logBytes += blockBytes
            $0.payloadBytes += payload
            $0.writeNanos += tw2 - tw
            $0.writeMaxNanos = max($0.writeMaxNanos, tw2 - tw)
        }
        configuration.commitObserver?.committed(requests: group.count, records: Int(count), blockBytes: blockBytes)
        return locations
    }

    private func syncActive() throws {
        let start = monotonicNanoseconds()
        try log.file.sync()
        let end = monotonicNanoseconds()
        stats.withLock { $0.syncs += 1; $0.syncNanos += end - start; $0.syncMaxNanos = max($0.syncMaxNanos, end - start) }
        configuration.commitObserver?.synced(nanoseconds: end - start)
        lastSyncNanos = end
        log.durableOffset = log.offset
        unsynced = false
    }

    /// Applies a written (and, as its durability asks, synced) block to the index and resumes
    /// its writers.
    private func apply(_ group: [CommitRequest], locations: [UInt32], blockEnd: Int) {
        let segment = log.id
        let t0 = monotonicNanoseconds()
        let (t1, t2) = shared.state.withLock { state -> (UInt64, UInt64) in
            let t1 = monotonicNanoseconds()
            var li = 0
            for request in group {
                for (i, meta) in request.metas.enumerated() where request.include[i] {
                    state.index.apply(meta, version: request.version, segment: segment, offset: locations[li], updateLeases: false)
                    li += 1
                    if meta.kind != .lease && meta.kind != .unlease {
                        state.settlePending(ObjectRef(partition: meta.partition, key: meta.slot))
                    }
                }
            }
            state.index.segments[segment, default: SegmentStats()].fileBytes = Int64(blockEnd)
            return (t1, monotonicNanoseconds())
        }
        for request in group { request.completion.finish(.success(request.version)) }
        let t3 = monotonicNanoseconds()
        stats.withLock {
            $0.lockWaitNanos += t1 - t0
            $0.applyNanos += t2 - t1
            $0.resumeNanos += t3 - t2
        }
    }

    /// A write or sync failed: nothing after it can be trusted to reach the disk, so the store
    /// refuses all further writes (leveldb's background error; PostgreSQL's fsync lesson).
    private func fail(_ error: any Error, requests: [CommitRequest]) {
        let reason = (error as? JellyError)?.message ?? "\(error)"
        let failure = JellyError(
            .unavailable,
            "the store stopped taking writes after a disk failure: \(reason). Writes acknowledged before it are safe; restart the process to recover from the log"
        )
        let (rest, first) = shared.state.withLock { state -> ([CommitRequest], JellyError) in
            if state.failure == nil { state.failure = failure }
            state.overlay.removeAll()
            return (state.queue.drain(), state.failure ?? failure)
        }
        for request in requests + rest { request.completion.finish(.failure(first)) }
    }

    // MARK: Segments

    /// Seals the active segment and starts the next one.
    private func rotate() throws {
        let t0 = monotonicNanoseconds()
        try sealActive(trim: false)
        let t1 = monotonicNanoseconds()
        try activate(id: log.id + 1)
        stats.withLock { $0.sealNanos += t1 - t0 }
    }

    /// Writes the seal block, syncs, and hands the hint to the maintenance worker. With `trim`
    /// the file is cut to its data (an early seal at close); a full segment keeps its size so
    /// that compaction can recycle the file.
    private func sealActive(trim: Bool) throws {
        let maxAssigned = shared.state.withLock { $0.nextVersion - 1 }
        try writeSealBlock(file: log.file, segmentID: log.id, at: log.offset, durableOffset: log.durableOffset, version: maxAssigned, buffer: buffer)
        let dataEnd = log.offset + Format.pageBytes
        log.offset = dataEnd
        try syncActive()
        if trim { try log.file.truncate(to: Int64(dataEnd)) }
        var hint = log.hint
        HintHeader(entryCount: log.hintCount, segmentID: UInt64(log.id), dataEnd: UInt64(dataEnd), maxVersion: max(log.maxVersion, maxAssigned)).encode(into: &hint)
        maintenance.writeHint(segment: log.id, bytes: hint)
        let id = log.id
        shared.state.withLock { $0.index.markSealed(id, dataEnd: dataEnd) }
        log.file.close()
    }

    /// Makes log segment `id` the active one: the one the maintenance worker started ahead of
    /// time, or, when it has none ready, one started here. Then asks for the next one. Called on
    /// the committer thread, or before it starts.
    func activate(id: UInt32) throws {
        let started = try maintenance.takeStarted(id: id) ?? maintenance.startSegment(id: id)
        try shared.openForReads(started)
        shared.state.withLock { $0.activeSegment = id }
        log = ActiveLog(id: id, file: started.file, offset: Format.segmentHeaderBytes, durableOffset: Format.segmentHeaderBytes)
        unsynced = false
        stats.withLock { $0.segmentsStarted += 1 }
        maintenance.startAhead(id: id + 1)
    }

    // MARK: Closing

    /// Stops taking writes, commits what is queued, seals the active segment (unless it is
    /// empty), syncs, then calls `handler`.
    func close(_ handler: @escaping @Sendable (Result<Void, JellyError>) -> Void) {
        let action = shared.state.withLock { state -> CommitQueue.EnqueueAction in
            state.closed = true
            return state.queue.close()
        }
        if action == .wakeCommitter { shared.committerWake.signal() }
        thread.join()
        handler(closeResult.withLock { $0 })
    }

    private func finishClose() {
        var result: Result<Void, JellyError> = .success(())
        let failed = shared.state.withLock { $0.failure != nil }
        if !failed {
            do {
                if log.blocks > 0 { try sealActive(trim: true) } else { try log.file.sync(); log.file.close() }
            } catch {
                result = .failure((error as? JellyError) ?? JellyError(.io, "\(error)"))
            }
        } else {
            log.file.close()
        }
        shared.state.withLock { $0.readers.removeAll() }
        closeResult.withLock { $0 = result }
    }

    /// Stops without sealing or syncing, as a crash would.
    func crash() {
        crashed.store(true, ordering: .releasing)
        let failure = JellyError(.unavailable, "the store was stopped (simulated crash)")
        let rest = shared.state.withLock { state -> [CommitRequest] in
            state.closed = true
            state.failure = failure
            return state.queue.drain()
        }
        shared.committerWake.signal()
        thread.join()
        for request in rest { request.completion.finish(.failure(failure)) }
        log.file.close()
        shared.state.withLock { $0.readers.removeAll() }
    }
}

struct CommitterStats: Sendable {
    var blocks = 0
    var records = 0
    /// Bytes written to the log: blocks with their headers and padding.
    var logBytes = 0
    /// Bytes of records in those blocks.
    var payloadBytes = 0
    var syncs = 0
    var syncNanos: UInt64 = 0
    var syncMaxNanos: UInt64 = 0
    var writeNanos: UInt64 = 0
    var writeMaxNanos: UInt64 = 0
    var rotations = 0
    var rotationNanos: UInt64 = 0
    var rotationMaxNanos: UInt64 = 0
    /// The part of rotations spent sealing (seal block, sync); the rest starts the next segment.
    var sealNanos: UInt64 = 0
    /// Groups whose write and sync took over 10 ms (the disk stalled): what makes p99.
    var groupsOver10ms = 0
    var segmentsStarted = 0
    /// Times the committer found nothing queued and waited to be woken.
    var sleeps = 0
    /// Where the committer's CPU goes, per block: copying records into the block, encoding
    /// hint entries, waiting for the store's lock, applying the block to the index, resuming
    /// the writers (JELLY_BENCH_VERBOSE shows them as committer_*_us).
    var buildNanos: UInt64 = 0
    var hintNanos: UInt64 = 0
    var lockWaitNanos: UInt64 = 0
    var applyNanos: UInt64 = 0
    var resumeNanos: UInt64 = 0
    /// Groups by number of requests: 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64+.
    var groupSizes = [Int](repeating: 0, count: 7)
}

func segmentFileName(_ id: UInt32) -> String { hex16(UInt64(id)) + ".log" }
func hintFileName(_ id: UInt32) -> String { hex16(UInt64(id)) + ".hint" }

func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// Writes a seal block (one seal record carrying `version`, the highest version issued) at
/// `offset` and syncs. The segment's data ends one page later.
func writeSealBlock(file: any StorageFile, segmentID: UInt32, at offset: Int, durableOffset: Int, version: UInt64, buffer: AlignedBuffer) throws {
    var seal = EncodedRecords(capacity: 64)
    seal.append(kind: .seal, partition: "", key: "")
    seal.seal(version: version)
    let base = buffer.pointer
    base.initializeMemory(as: UInt8.self, repeating: 0, count: Format.pageBytes)
    seal.bytes.withUnsafeBytes { raw in
        if let src = raw.baseAddress { (base + Format.blockHeaderBytes).copyMemory(from: src, byteCount: raw.count) }
    }
    BlockHeader(
        segmentID: UInt64(segmentID), payloadBytes: UInt32(seal.bytes.count), recordCount: 1,
        durableOffset: UInt64(durableOffset), flags: Format.blockFlagSeal
    ).encode(into: base)
    try file.write(buffer.bytes(Format.pageBytes), at: Int64(offset))
}

/// Stands in for the active segment before the first one is activated.
final class ClosedFile: StorageFile, Sendable {
    var path: String { "(no segment)" }
    var isDirect: Bool { false }
    var bufferedReason: String? { nil }
    private func closed() -> JellyError { JellyError(.io, "internal error: no active segment") }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws { throw closed() }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int { throw closed() }
    func sync() throws { throw closed() }
    func size() throws -> Int64 { 0 }
    func truncate(to size: Int64) throws { throw closed() }
    func close() {}
}
