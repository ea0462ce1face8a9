#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import JellyCore
import Synchronization

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
    /// The active segment.
    private var log: SegmentWriter
    var activeSegmentID: UInt32 { log.id }
    private let buffer = AlignedBuffer(capacity: 1 << 20)
    private var unsynced = false
    /// The log segment to start before the next block: set when starting it failed on a full
    /// disk (the previous one is sealed, or none was started at open).
    private var pendingSegment: UInt32?
    private var lastSyncNanos = monotonicNanoseconds()
    private let thread = OSThread(name: "jelly-commit")
    private let crashed = Atomic<Bool>(false)
    private let closeResult = Mutex<Result<Void, JellyError>>(.success(()))
    /// Statistics for benchmarks and `info`, published once per group.
    let stats = Mutex(CommitterStats())

    init(shared: EngineShared, configuration: EmbeddedStoreConfiguration, maintenance: Maintenance, log: SegmentWriter?) {
        self.shared = shared
        self.configuration = configuration
        self.maintenance = maintenance
        // Until `activate` runs, a placeholder that is never written (see EmbeddedStore.open).
        self.log = log ?? SegmentWriter(id: 0, file: ClosedFile())
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
            let step = shared.state.withLock { $0.takeGroup(maxBytes: groupMax) }
            switch step {
            case .group(let group):
                var timing = GroupTiming(requests: group.count)
                commit(group, timing: &timing)
                stats.withLock { $0.record(timing) }
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
            var timing = GroupTiming(requests: 0)
            do {
                try syncActive(&timing)
            } catch {
                fail(error, requests: [])
            }
            stats.withLock { $0.record(timing) }
        }
    }

    /// One group commit: write the block, sync it (as the durability mode and the requests ask),
    /// then apply it to the index and resume its writers. Never resume before the sync.
    private func commit(_ group: [CommitRequest], timing: inout GroupTiming) {
        if let failure = shared.state.withLock({ $0.failure }) {
            for request in group { request.completion.finish(.failure(failure)) }
            return
        }
        let locations: [UInt32]
        do {
            if let id = pendingSegment {
                try activate(id: id)
                pendingSegment = nil
            }
            locations = try writeBlock(group, timing: &timing)
        } catch let error as JellyError where error.code == .diskFull {
            // Nothing of this group reached the log (a block written in part is overwritten by
            // the next one at the same offset): refuse it and wait for room. Not a failed device.
            refuseForDiskFull(error, group: group)
            return
        } catch {
            fail(error, requests: group)
            return
        }
        do {
            if needsSync(group) { try syncActive(&timing) }
            apply(group, locations: locations, timing: &timing)
        } catch {
            fail(error, requests: group)
        }
    }

    /// The disk is full: refuse this group and everything queued, until the maintenance worker
    /// sees room for a new segment again.
    private func refuseForDiskFull(_ error: JellyError, group: [CommitRequest]) {
        let refusal = Self.diskFullRefusal(error, directory: shared.directory, configuration: configuration)
        let rest = shared.state.withLock { $0.refuseForDiskFull(refusal, group: group) }
        for request in group + rest { request.completion.finish(.failure(refusal)) }
        maintenance.wake.signal()
    }

    static func diskFullRefusal(_ error: JellyError, directory: String, configuration: EmbeddedStoreConfiguration) -> JellyError {
        let mib = (Int64(configuration.segmentBytes) + Maintenance.diskReserveBytes) >> 20
        return JellyError(
            .diskFull,
            "the disk holding \(directory) is full (\(error.message)): writes are refused until \(mib) MiB are free there (a new log segment and the reserve), then resume by themselves within a second; reads keep working. Free space on that disk (old backups, logs) or grow it"
        )
    }

    /// At open on a full disk: no segment could be started; writes are refused until one can.
    func startWithoutSegment(id: UInt32, error: JellyError) {
        pendingSegment = id
        let refusal = Self.diskFullRefusal(error, directory: shared.directory, configuration: configuration)
        shared.state.withLock { $0.diskFull = refusal }
    }

    private func needsSync(_ group: [CommitRequest]) -> Bool {
        switch configuration.durability {
        case .always: return true
        case .interval(let ms) where monotonicNanoseconds() >= lastSyncNanos + UInt64(ms) * 1_000_000: return true
        case .interval, .never: return group.contains { $0.needsSync }
        }
    }

    /// Copies a group's records into one page-aligned block and appends it to the active
    /// segment, rotating to the next segment first when the block does not fit. Returns the
    /// records' offsets.
    private func writeBlock(_ group: [CommitRequest], timing: inout GroupTiming) throws -> [UInt32] {
        let payload = group.reduce(0) { $0 + $1.payloadBytes }
        let blockBytes = Format.alignUp(Format.blockHeaderBytes + payload)
        if !log.fits(blockBytes: blockBytes, segmentBytes: configuration.segmentBytes) {
            try rotate(&timing)
        }
        let tb = monotonicNanoseconds()
        buffer.reserve(blockBytes)
        let base = buffer.pointer
        // The block goes at the segment's current end: each record's place is known as it is copied.
        let blockOffset = log.offset
        var at = Format.blockHeaderBytes
        var count: UInt32 = 0
        var locations: [UInt32] = []
        locations.reserveCapacity(group.count)
        for request in group {
            request.records.bytes.withUnsafeBytes { raw in
                guard let src = raw.baseAddress else { return }
                for (i, r) in request.records.records.enumerated() where request.include[i] {
                    (base + at).copyMemory(from: src + r.offset, byteCount: r.length)
                    locations.append(UInt32(blockOffset + at))
                    at += r.length
                    count += 1
                }
            }
        }
        let tw = monotonicNanoseconds()
        let written = try log.appendBlock(buffer, payloadBytes: payload, recordCount: count)
        assert(written == blockOffset, "a block is appended at the segment's end")
        let tw2 = monotonicNanoseconds()
        unsynced = true

        var li = 0
        for request in group {
            for (i, meta) in request.metas.enumerated() where request.include[i] {
                log.addHintEntry(HintEntry(
                    kind: meta.kind, partition: meta.partition.string, key: meta.key, contentType: meta.contentType,
                    offset: UInt64(locations[li]), recordLength: meta.recordLength, version: request.version,
                    token: meta.token, expiresAtMilliseconds: meta.expiresAtMilliseconds, flags: meta.flags,
                    leaseTTLUnits: meta.leaseTTLUnits
                ))
                li += 1
            }
        }
        timing.wrote(records: Int(count), blockBytes: blockBytes, payloadBytes: payload, build: tw - tb, write: tw2 - tw, hint: monotonicNanoseconds() - tw2)
        configuration.commitObserver?.committed(requests: group.count, records: Int(count), blockBytes: blockBytes)
        return locations
    }

    private func syncActive(_ timing: inout GroupTiming) throws {
        let start = monotonicNanoseconds()
        try log.sync()
        let end = monotonicNanoseconds()
        timing.synced(end - start)
        configuration.commitObserver?.synced(nanoseconds: end - start)
        lastSyncNanos = end
        unsynced = false
    }

    /// Applies a written (and, as its durability asks, synced) block to the index and resumes
    /// its writers.
    private func apply(_ group: [CommitRequest], locations: [UInt32], timing: inout GroupTiming) {
        let segment = log.id
        let blockEnd = Int64(log.offset)
        let t0 = monotonicNanoseconds()
        let (t1, t2) = shared.state.withLock { state -> (UInt64, UInt64) in
            let t1 = monotonicNanoseconds()
            state.applyCommitted(group, segment: segment, locations: locations, blockEnd: blockEnd)
            return (t1, monotonicNanoseconds())
        }
        for request in group { request.completion.finish(.success(request.version)) }
        // Change feed waiters: after the index has the commits, so what they read includes them.
        // One atomic load per group when nobody waits (the common case of a game server).
        if shared.changeWaiters.waiting > 0 {
            for request in group {
                if let partition = request.metas.first?.partition { shared.changeWaiters.notify(partition: partition, version: request.version) }
            }
        }
        timing.applied(lockWait: t1 - t0, apply: t2 - t1, resume: monotonicNanoseconds() - t2)
    }

    /// A write or sync failed: nothing after it can be trusted to reach the disk, so the store
    /// refuses all further writes (leveldb's background error; PostgreSQL's fsync lesson).
    private func fail(_ error: any Error, requests: [CommitRequest]) {
        let reason = (error as? JellyError)?.message ?? "\(error)"
        let failure = JellyError(
            .unavailable,
            "the store stopped taking writes after a disk failure: \(reason). Writes acknowledged before it are safe; restart the process to recover from the log"
        )
        let (rest, first) = shared.state.withLock { $0.poison(failure) }
        for request in requests + rest { request.completion.finish(.failure(first)) }
    }

    // MARK: Segments

    /// Seals the active segment and starts the next one.
    private func rotate(_ timing: inout GroupTiming) throws {
        let t0 = monotonicNanoseconds()
        try sealActive(trim: false, &timing)
        let t1 = monotonicNanoseconds()
        pendingSegment = log.id + 1
        try activate(id: log.id + 1)
        pendingSegment = nil
        timing.rotated(total: monotonicNanoseconds() - t0, seal: t1 - t0)
    }

    /// Writes the seal block, syncs, and hands the hint to the maintenance worker. With `trim`
    /// the file is cut to its data (an early seal at close); a full segment keeps its size so
    /// that compaction can recycle the file.
    private func sealActive(trim: Bool, _ timing: inout GroupTiming) throws {
        let maxAssigned = shared.state.withLock { $0.highestIssuedVersion }
        try log.appendSeal(version: maxAssigned, buffer: buffer)
        try syncActive(&timing)
        let (dataEnd, hint) = try log.sealed(trim: trim)
        maintenance.writeHint(segment: log.id, bytes: hint)
        let id = log.id
        shared.state.withLock { $0.markSealed(id, dataEnd: dataEnd) }
        log.file.close()
    }

    /// Makes log segment `id` the active one: the one the maintenance worker started ahead of
    /// time, or, when it has none ready, one started here. Then asks for the next one. Called on
    /// the committer thread, or before it starts.
    func activate(id: UInt32) throws {
        let started = try maintenance.takeStarted(id: id) ?? maintenance.startSegment(id: id)
        try shared.openForReads(started)
        shared.state.withLock { $0.activate(segment: id) }
        log = SegmentWriter(id: id, file: started.file)
        unsynced = false
        stats.withLock { $0.segmentsStarted += 1 }
        maintenance.startAhead(id: id + 1)
    }

    // MARK: Closing

    /// Stops taking writes, commits what is queued, seals the active segment (unless it is
    /// empty), syncs, then calls `handler`.
    func close(_ handler: @escaping @Sendable (Result<Void, JellyError>) -> Void) {
        let action = shared.state.withLock { $0.beginClose() }
        if action == .wakeCommitter { shared.committerWake.signal() }
        thread.join()
        handler(closeResult.withLock { $0 })
    }

    private func finishClose() {
        var result: Result<Void, JellyError> = .success(())
        let failed = shared.state.withLock { $0.failure != nil }
        if !failed && pendingSegment == nil {
            var timing = GroupTiming(requests: 0)
            do {
                if log.blocks > 0 { try sealActive(trim: true, &timing) } else { try log.file.sync(); log.file.close() }
            } catch {
                result = .failure((error as? JellyError) ?? JellyError(.io, "\(error)"))
            }
            stats.withLock { $0.record(timing) }
        } else {
            log.file.close()
        }
        shared.state.withLock { $0.closeReaders() }
        closeResult.withLock { $0 = result }
    }

    /// Stops without sealing or syncing, as a crash would.
    func crash() {
        crashed.store(true, ordering: .releasing)
        let failure = JellyError(.unavailable, "the store was stopped (simulated crash)")
        let rest = shared.state.withLock { $0.crash(failure) }
        shared.committerWake.signal()
        thread.join()
        for request in rest { request.completion.finish(.failure(failure)) }
        log.file.close()
        shared.state.withLock { $0.closeReaders() }
    }
}

/// Where one group's time went, gathered on the committer thread and added to
/// `CommitterStats` under one lock, so the commit loop itself reads as the algorithm it is.
/// Added up, the same fields are the committer's totals since open.
struct GroupTiming: Sendable {
    var requests: Int
    var records = 0
    var blocks = 0
    /// Bytes written to the log: blocks with their headers and padding.
    var logBytes = 0
    /// Bytes of records in those blocks.
    var payloadBytes = 0
    var buildNanos: UInt64 = 0
    var writeNanos: UInt64 = 0
    var hintNanos: UInt64 = 0
    var syncs = 0
    var syncNanos: UInt64 = 0
    var syncMaxNanos: UInt64 = 0
    var rotations = 0
    var rotationNanos: UInt64 = 0
    /// The part of rotations spent sealing (seal block, sync); the rest starts the next segment.
    var sealNanos: UInt64 = 0
    /// Where the committer's CPU goes, per block: copying records into the block (build),
    /// encoding hint entries, waiting for the store's lock, applying the block to the index,
    /// resuming the writers (JELLY_BENCH_VERBOSE shows them as committer_*_us).
    var lockWaitNanos: UInt64 = 0
    var applyNanos: UInt64 = 0
    var resumeNanos: UInt64 = 0

    init(requests: Int) { self.requests = requests }

    /// Adds another group's (or total's) figures; maxima stay maxima.
    mutating func add(_ t: GroupTiming) {
        requests += t.requests
        records += t.records
        blocks += t.blocks
        logBytes += t.logBytes
        payloadBytes += t.payloadBytes
        buildNanos += t.buildNanos
        writeNanos += t.writeNanos
        hintNanos += t.hintNanos
        syncs += t.syncs
        syncNanos += t.syncNanos
        syncMaxNanos = max(syncMaxNanos, t.syncMaxNanos)
        rotations += t.rotations
        rotationNanos += t.rotationNanos
        sealNanos += t.sealNanos
        lockWaitNanos += t.lockWaitNanos
        applyNanos += t.applyNanos
        resumeNanos += t.resumeNanos
    }

    mutating func wrote(records: Int, blockBytes: Int, payloadBytes: Int, build: UInt64, write: UInt64, hint: UInt64) {
        self.records += records
        blocks += 1
        logBytes += blockBytes
        self.payloadBytes += payloadBytes
        buildNanos += build
        writeNanos += write
        hintNanos += hint
    }

    mutating func synced(_ nanos: UInt64) {
        syncs += 1
        syncNanos += nanos
        syncMaxNanos = max(syncMaxNanos, nanos)
    }

    mutating func rotated(total: UInt64, seal: UInt64) {
        rotations += 1
        rotationNanos += total
        sealNanos += seal
    }

    mutating func applied(lockWait: UInt64, apply: UInt64, resume: UInt64) {
        lockWaitNanos += lockWait
        applyNanos += apply
        resumeNanos += resume
    }
}

/// The committer's figures since open, for benchmarks and `info`: the groups' timings added up,
/// and what only the whole run has (maxima per group, sleeps, group sizes).
struct CommitterStats: Sendable {
    var totals = GroupTiming(requests: 0)
    /// The slowest block write and the slowest rotation.
    var writeMaxNanos: UInt64 = 0
    var rotationMaxNanos: UInt64 = 0
    /// Groups whose write and sync took over 10 ms (the disk stalled): what makes p99.
    var groupsOver10ms = 0
    var segmentsStarted = 0
    /// Times the committer found nothing queued and waited to be woken.
    var sleeps = 0
    /// Groups by number of requests: 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64+.
    var groupSizes = [Int](repeating: 0, count: 7)

    mutating func record(_ t: GroupTiming) {
        totals.add(t)
        if t.requests > 0 {
            groupSizes[min(6, Int.bitWidth - 1 - t.requests.leadingZeroBitCount)] += 1
        }
        if t.blocks > 0 { writeMaxNanos = max(writeMaxNanos, t.writeNanos) }
        if t.rotations > 0 { rotationMaxNanos = max(rotationMaxNanos, t.rotationNanos) }
        if t.writeNanos + t.syncNanos > 10_000_000 { groupsOver10ms += 1 }
    }
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
