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

/// The single writer of the log (leveldb's group commit, with dedicated threads as leaders).
///
/// Two stages, each on its own thread:
/// - the writer takes the queued requests as one group, copies their records into one
///   page-aligned block and writes it;
/// - the syncer makes written blocks durable with one `fdatasync`, applies them to the index
///   and resumes their writers.
/// The writer fills the next block while the syncer syncs the previous one; at most one
/// written block waits for the syncer, so requests that arrive during a sync form the next group.
final class Committer: @unchecked Sendable {
    // `log` and `buffer` are touched only by the writer thread (and by `crash` after it exited);
    // the syncer's state lives in `stage`. That confinement is why this is @unchecked Sendable.
    private let shared: EngineShared
    private let configuration: EmbeddedStoreConfiguration
    private let maintenance: Maintenance
    private var log: ActiveLog
    var activeSegmentID: UInt32 { log.id }
    private let buffer = AlignedBuffer(capacity: 1 << 20)
    private let writerThread = OSThread()
    private let syncThread = OSThread()
    private let crashed = Atomic<Bool>(false)
    private let closeHandler = Mutex<(@Sendable (Result<Void, JellyError>) -> Void)?>(nil)
    private let stage = Mutex(SyncStage())
    private let syncWake = DispatchSemaphore(value: 0)
    private let writerWake = DispatchSemaphore(value: 0)
    /// Through which offset of the active segment the log is synced.
    private let durableOffset = Atomic<Int>(Format.segmentHeaderBytes)
    /// Statistics for benchmarks and `info`.
    let stats = Mutex(CommitterStats())
    private let serialWrites = getenv("JELLY_SERIAL_WRITES") != nil

    /// A block written and waiting for the syncer.
    struct WrittenGroup: @unchecked Sendable {
        var requests: [CommitRequest]
        var locations: [UInt32]
        var segment: UInt32
        var file: any StorageFile
        var blockEnd: Int
        var needsSync: Bool
    }

    struct SyncStage: @unchecked Sendable {
        var pending: [WrittenGroup] = []
        var busy = false
        var syncerSleeping = false
        var writerWaiting = false
        var exit = false
        /// Written but not synced (interval and never modes).
        var unsyncedFile: (any StorageFile)?
        var unsyncedEnd = 0
        var lastSyncNanos = monotonicNanoseconds()
    }

    init(shared: EngineShared, configuration: EmbeddedStoreConfiguration, maintenance: Maintenance, log: ActiveLog?) {
        self.shared = shared
        self.configuration = configuration
        self.maintenance = maintenance
        // Until `activate` runs, a placeholder that is never written (see EmbeddedStore.open).
        self.log = log ?? ActiveLog(id: 0, file: ClosedFile(), offset: 0, durableOffset: 0)
        durableOffset.store(self.log.durableOffset, ordering: .relaxed)
    }

    var ioMode: String {
        log.file.isDirect ? "direct" : "buffered (\(log.file.bufferedReason ?? "unknown reason"))"
    }

    func start() {
        syncThread.start { [self] in runSyncer() }
        writerThread.start { [self] in runWriter() }
    }

    // MARK: Writer stage

    private func runWriter() {
        let groupMax = configuration.groupCommitBytesMax
        while !crashed.load(ordering: .acquiring) {
            let step = shared.state.withLock { $0.queue.next(maxBytes: groupMax) }
            switch step {
            case .group(let group):
                write(group)
            case .sleep:
                shared.committerWake.wait()
            case .exit:
                waitForSyncerIdle()
                finishClose()
                return
            }
        }
    }

    private func write(_ group: [CommitRequest]) {
        if let failure = shared.state.withLock({ $0.failure }) {
            for request in group { request.completion.finish(.failure(failure)) }
            return
        }
        do {
            let payload = group.reduce(0) { $0 + $1.payloadBytes }
            let blockBytes = Format.alignUp(Format.blockHeaderBytes + payload)
            if log.offset + blockBytes + Format.pageBytes > configuration.segmentBytes {
                let t0 = monotonicNanoseconds()
                waitForSyncerIdle()
                let t1 = monotonicNanoseconds()
                try rotate()
                let t2 = monotonicNanoseconds()
                stats.withLock {
                    $0.rotations += 1
                    $0.rotationNanos += t2 - t0
                    $0.rotationMaxNanos = max($0.rotationMaxNanos, t2 - t0)
                    $0.rotationDrainNanos += t1 - t0
                }
            }
            if serialWrites { waitForSyncerIdle() }
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
                durableOffset: UInt64(durableOffset.load(ordering: .acquiring)), flags: 0
            ).encode(into: base)
            let tw = monotonicNanoseconds()
            try log.file.write(buffer.bytes(blockBytes), at: Int64(log.offset))
            let tw2 = monotonicNanoseconds()
            stats.withLock { $0.writeNanos += tw2 - tw; $0.writeMaxNanos = max($0.writeMaxNanos, tw2 - tw) }
            log.offset += blockBytes
            log.blocks += 1

            var li = 0
            for request in group {
                for (i, meta) in request.metas.enumerated() where request.include[i] {
                    HintEntry(
                        kind: meta.kind, partition: meta.partition.string, key: meta.key, contentType: meta.contentType,
                        offset: UInt64(locations[li]), recordLength: meta.recordLength, version: request.version(of: meta),
                        token: meta.token, expiresAtMilliseconds: meta.expiresAtMilliseconds
                    ).encode(into: &log.hint)
                    log.maxVersion = max(log.maxVersion, request.version(of: meta))
                    li += 1
                }
            }
            log.hintCount += count
            stats.withLock {
                $0.blocks += 1
                $0.records += Int(count)
                $0.logBytes += blockBytes
                $0.payloadBytes += payload
                if group.contains(where: { $0.moveOf != nil }) { $0.moveBytes += payload }
            }
            let needsSync: Bool
            switch configuration.durability {
            case .always: needsSync = true
            case .interval, .never: needsSync = group.contains { $0.needsSync }
            }
            submit(WrittenGroup(requests: group, locations: locations, segment: log.id, file: log.file, blockEnd: log.offset, needsSync: needsSync))
        } catch {
            fail(error, requests: group)
        }
    }

    /// Hands a written block to the syncer; waits while another one is already waiting.
    private func submit(_ group: WrittenGroup) {
        while true {
            let (accepted, wake) = stage.withLock { s -> (Bool, Bool) in
                if s.pending.isEmpty {
                    s.pending.append(group)
                    let wake = s.syncerSleeping
                    s.syncerSleeping = false
                    return (true, wake)
                }
                s.writerWaiting = true
                return (false, false)
            }
            if accepted {
                if wake { syncWake.signal() }
                return
            }
            if crashed.load(ordering: .acquiring) {
                let failure = JellyError(.unavailable, "the store was stopped (simulated crash)")
                for request in group.requests { request.completion.finish(.failure(failure)) }
                return
            }
            writerWake.wait()
        }
    }

    /// Waits until every written block is synced and completed (before a seal or close).
    private func waitForSyncerIdle() {
        while true {
            let idle = stage.withLock { s -> Bool in
                if s.pending.isEmpty && !s.busy {
                    s.unsyncedFile = nil
                    return true
                }
                s.writerWaiting = true
                return false
            }
            if idle || crashed.load(ordering: .acquiring) { return }
            writerWake.wait()
        }
    }

    // MARK: Syncer stage

    private enum SyncWork {
        case groups([WrittenGroup])
        case sleep(timeoutNanos: UInt64?)
        case intervalSync(any StorageFile, end: Int)
        case exit
    }

    private func runSyncer() {
        let intervalNanos: UInt64? = {
            if case .interval(let ms) = configuration.durability { return UInt64(ms) * 1_000_000 }
            return nil
        }()
        while !crashed.load(ordering: .acquiring) {
            var wakeWriter = false
            let work = stage.withLock { s -> SyncWork in
                wakeWriter = s.writerWaiting
                s.writerWaiting = false
                s.syncerSleeping = false
                if !s.pending.isEmpty {
                    let groups = s.pending
                    s.pending = []
                    s.busy = true
                    return .groups(groups)
                }
                if let file = s.unsyncedFile, let intervalNanos {
                    let due = s.lastSyncNanos + intervalNanos
                    let now = monotonicNanoseconds()
                    if now >= due {
                        s.busy = true
                        return .intervalSync(file, end: s.unsyncedEnd)
                    }
                    s.busy = false
                    s.syncerSleeping = true
                    return .sleep(timeoutNanos: due - now)
                }
                s.busy = false
                if s.exit { return .exit }
                s.syncerSleeping = true
                return .sleep(timeoutNanos: nil)
            }
            if wakeWriter { writerWake.signal() }
            switch work {
            case .groups(let groups):
                complete(groups, intervalNanos: intervalNanos)
            case .intervalSync(let file, let end):
                do {
                    try timedSync(file)
                    durableOffset.store(end, ordering: .releasing)
                    stage.withLock { $0.unsyncedFile = nil }
                } catch {
                    fail(error, requests: [])
                }
            case .sleep(let timeout):
                if let timeout {
                    _ = syncWake.wait(timeout: .now() + .nanoseconds(Int(min(timeout, UInt64(Int.max)))))
                } else {
                    syncWake.wait()
                }
            case .exit:
                writerWake.signal()
                return
            }
        }
        writerWake.signal()
    }

    private func timedSync(_ file: any StorageFile) throws {
        let start = monotonicNanoseconds()
        try file.sync()
        let end = monotonicNanoseconds()
        stage.withLock { $0.lastSyncNanos = end }
        stats.withLock { $0.syncs += 1; $0.syncNanos += end - start; $0.syncMaxNanos = max($0.syncMaxNanos, end - start) }
    }

    /// Syncs written blocks (when their durability asks for it), applies them to the index in
    /// order, and resumes their writers.
    private func complete(_ groups: [WrittenGroup], intervalNanos: UInt64?) {
        guard let last = groups.last else { return }
        if let failure = shared.state.withLock({ $0.failure }) {
            for g in groups { for r in g.requests { r.completion.finish(.failure(failure)) } }
            return
        }
        var needsSync = groups.contains { $0.needsSync }
        if !needsSync, let intervalNanos {
            needsSync = monotonicNanoseconds() >= stage.withLock { $0.lastSyncNanos } + intervalNanos
        }
        do {
            if needsSync {
                try timedSync(last.file)
                durableOffset.store(last.blockEnd, ordering: .releasing)
                stage.withLock { $0.unsyncedFile = nil }
            } else {
                stage.withLock { s in
                    s.unsyncedFile = last.file
                    s.unsyncedEnd = last.blockEnd
                }
            }
        } catch {
            fail(error, requests: groups.flatMap(\.requests))
            return
        }
        shared.state.withLock { state in
            for group in groups {
                var li = 0
                for request in group.requests {
                    for (i, meta) in request.metas.enumerated() where request.include[i] {
                        var applied = meta
                        applied.version = request.version(of: meta)
                        state.index.apply(applied, segment: group.segment, offset: group.locations[li], moveOf: request.moveOf?[i], updateLeases: false)
                        li += 1
                        if request.moveOf == nil && meta.kind != .lease && meta.kind != .unlease {
                            let ref = ObjectRef(partition: meta.partition, key: meta.slot)
                            if var pending = state.overlay[ref] {
                                pending.count -= 1
                                state.overlay[ref] = pending.count == 0 ? nil : pending
                            }
                        }
                    }
                }
            }
            state.index.segments[last.segment, default: SegmentStats()].fileBytes = Int64(last.blockEnd)
        }
        for group in groups { for request in group.requests { request.completion.finish(.success(request.version)) } }
    }

    /// A write or sync failed: nothing after it can be trusted to reach the disk, so the store
    /// refuses all further writes (leveldb's background error; PostgreSQL's fsync lesson).
    private func fail(_ error: any Error, requests: [CommitRequest]) {
        let reason = (error as? JellyError)?.message ?? "\(error)"
        let failure = JellyError(
            .unavailable,
            "the store stopped taking writes after a disk failure: \(reason). Writes acknowledged before it are safe; restart the process to recover from the log"
        )
        let rest = shared.state.withLock { state -> [CommitRequest] in
            if state.failure == nil { state.failure = failure }
            state.overlay.removeAll()
            return state.queue.drain()
        }
        let firstFailure = shared.state.withLock { $0.failure } ?? failure
        for request in requests + rest { request.completion.finish(.failure(firstFailure)) }
    }

    // MARK: Segments

    /// Seals the active segment and starts the next one. The syncer is idle.
    private func rotate() throws {
        try sealActive(trim: false)
        try activate(id: log.id + 1)
    }

    private func syncActive() throws {
        let start = monotonicNanoseconds()
        try log.file.sync()
        let end = monotonicNanoseconds()
        stats.withLock { $0.syncs += 1; $0.syncNanos += end - start }
        durableOffset.store(log.offset, ordering: .releasing)
    }

    /// Writes the seal block, syncs, and hands the hint to the maintenance worker. With `trim`
    /// the file is cut to its data (an early seal at close or open); a full segment keeps its
    /// size so that compaction can recycle the file.
    private func sealActive(trim: Bool) throws {
        let maxAssigned = shared.state.withLock { $0.nextVersion - 1 }
        try writeSealBlock(file: log.file, segmentID: log.id, at: log.offset, durableOffset: durableOffset.load(ordering: .acquiring), version: maxAssigned, buffer: buffer)
        let dataEnd = log.offset + Format.pageBytes
        log.offset = dataEnd
        try syncActive()
        if trim { try log.file.truncate(to: Int64(dataEnd)) }
        var hint = log.hint
        HintHeader(entryCount: log.hintCount, segmentID: UInt64(log.id), dataEnd: UInt64(dataEnd), maxVersion: max(log.maxVersion, maxAssigned)).encode(into: &hint)
        maintenance.writeHint(segment: log.id, bytes: hint)
        let id = log.id
        shared.state.withLock { state in
            state.index.segments[id, default: SegmentStats()].sealed = true
            state.index.segments[id, default: SegmentStats()].fileBytes = Int64(dataEnd)
        }
        log.file.close()
    }

    /// Makes a prepared file (zero-filled, or a recycled segment) the new active segment:
    /// rename, header, sync. Called on the writer thread, or before it starts.
    func activate(id: UInt32) throws {
        let path = shared.path(segmentFileName(id))
        let prepared = try maintenance.takePreparedFile()
        try shared.storage.rename(prepared, path)
        let file = try shared.storage.openLog(path: path, create: false, direct: configuration.directIO)
        let floor = shared.state.withLock { $0.nextVersion }
        let base = buffer.pointer
        SegmentHeader(segmentID: UInt64(id), versionFloor: floor, createdAtMilliseconds: configuration.clock.nowMilliseconds()).encode(into: base)
        try file.write(buffer.bytes(Format.segmentHeaderBytes), at: 0)
        try file.sync()
        try shared.storage.syncDirectory(shared.directory)
        let reader = SegmentReader(id: id, file: try shared.storage.openRead(path: path))
        shared.state.withLock { state in
            state.readers[id] = reader
            state.activeSegment = id
            state.index.segments[id] = SegmentStats(recordBytes: 0, liveBytes: 0, fileBytes: Int64(Format.segmentHeaderBytes), sealed: false)
        }
        log = ActiveLog(id: id, file: file, offset: Format.segmentHeaderBytes, durableOffset: Format.segmentHeaderBytes)
        durableOffset.store(Format.segmentHeaderBytes, ordering: .releasing)
        stats.withLock { $0.segmentsStarted += 1 }
    }

    // MARK: Closing

    /// Stops taking writes, commits what is queued, seals the active segment (unless it is
    /// empty), syncs, then calls `handler`.
    func close(_ handler: @escaping @Sendable (Result<Void, JellyError>) -> Void) {
        closeHandler.withLock { $0 = handler }
        let action = shared.state.withLock { state -> CommitQueue.EnqueueAction in
            state.closed = true
            return state.queue.close()
        }
        if action == .wakeCommitter { shared.committerWake.signal() }
        writerThread.join()
        syncThread.join()
        let handler = closeHandler.withLock { $0 }
        handler?(closeResult.withLock { $0 })
    }

    private let closeResult = Mutex<Result<Void, JellyError>>(.success(()))

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
        let wake = stage.withLock { s -> Bool in
            s.exit = true
            let w = s.syncerSleeping
            s.syncerSleeping = false
            return w
        }
        if wake { syncWake.signal() }
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
        syncWake.signal()
        writerWake.signal()
        writerWake.signal()
        writerThread.join()
        syncThread.join()
        let stranded = stage.withLock { s -> [WrittenGroup] in
            let p = s.pending
            s.pending = []
            return p
        }
        for request in rest + stranded.flatMap(\.requests) { request.completion.finish(.failure(failure)) }
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
    /// Bytes of records moved by compaction (included in payloadBytes).
    var moveBytes = 0
    var syncMaxNanos: UInt64 = 0
    var writeNanos: UInt64 = 0
    var writeMaxNanos: UInt64 = 0
    var rotations = 0
    var rotationNanos: UInt64 = 0
    var rotationMaxNanos: UInt64 = 0
    var rotationDrainNanos: UInt64 = 0
    var segmentsStarted = 0
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
    func allocate(size: Int64) throws { throw closed() }
    func close() {}
}
