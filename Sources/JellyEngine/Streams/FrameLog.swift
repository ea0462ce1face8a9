#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import JellyCore
import Synchronization

/// The stream log: frames in files of their own (`frames/`), apart from the object log, so
/// that a game's per-frame state never waits behind, nor makes wait, a save's fdatasync
/// (docs/architecture.md, "Streams"). One writer thread takes every queued append in order,
/// writes them with one `pwrite`, makes them readable, and syncs the file on the stream
/// durability interval. Files are deleted oldest first once none of their frames is kept.
final class FrameLog: Sendable {
    /// An append (or trim, retention change, removal) queued for the writer, in sequence order.
    struct Pending: Sendable {
        var key: StreamKey
        /// The encoded records.
        var bytes: [UInt8]
        /// Each frame's sequence, time, base version, offset in `bytes` and record length.
        var frames: [(seq: UInt64, time: Int64, base: UInt64, offset: Int, length: Int)]
        var completion: (@Sendable (Result<[UInt64], JellyError>) -> Void)?
        var durable: Bool
    }

    struct State: Sendable {
        var table: FrameTable
        var pending: [Pending] = []
        var pendingBytes = 0
        /// The most `pendingBytes` ever reached since open (`StoreInfo.frameQueueBytesPeak`).
        var pendingBytesPeak = 0
        var failure: JellyError?
        var closing = false
        /// Read handles of every file, by id.
        var files: [UInt32: any StorageFile] = [:]
        var active: UInt32 = 0
    }

    let directory: String
    let storage: any StorageSystem
    let clock: any JellyClock
    let segmentBytes: Int
    let durability: Durability
    let queueBytesMax: Int
    let state: Mutex<State>
    let waiters = ChangeWaiters()
    private let wake = DispatchSemaphore(value: 0)
    private let thread = OSThread(name: "jelly-frames")
    private let writer: FrameWriter

    private init(directory: String, storage: any StorageSystem, clock: any JellyClock, segmentBytes: Int, durability: Durability, queueBytesMax: Int, state: State, writer: FrameWriter) {
        self.directory = directory
        self.storage = storage
        self.clock = clock
        self.segmentBytes = segmentBytes
        self.durability = durability
        self.queueBytesMax = queueBytesMax
        self.state = Mutex(state)
        self.writer = writer
    }

    func path(_ id: UInt32) -> String { directory + "/" + FrameLog.fileName(id) }
    static func fileName(_ id: UInt32) -> String {
        let digits = String(id)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".frames"
    }
    static func parseFileName(_ name: String) -> UInt32? {
        guard name.hasSuffix(".frames") else { return nil }
        return UInt32(name.dropLast(".frames".count))
    }

    // MARK: Queueing (callers hold the engine's lock when a lease was checked)

    /// Queues frames; their sequences are issued here, in queue order. Returns the refusal, if any.
    func enqueueFrames(_ key: StreamKey, _ frames: [FrameInput], retention: StreamRetention?, durable: Bool, completion: @escaping @Sendable (Result<[UInt64], JellyError>) -> Void) -> JellyError? {
        let now = clock.nowMilliseconds()
        let partition = key.partition.string, stream = key.stream.string
        let (refusal, wake) = state.withLock { s -> (JellyError?, Bool) in
            if let refusal = s.refusal(queueBytesMax) { return (refusal, false) }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(frames.reduce(0) { $0 + $1.value.count } + frames.count * (FrameFormat.recordFixedBytes + partition.utf8.count + stream.utf8.count))
            if let retention, retention != s.table.retention(key) {
                s.table.setRetention(key, retention, now: now)
                let floor = s.table.streams[key]?.floor ?? 0
                FrameFormat.append(.trim, partition: partition, stream: stream, a: floor, b: 0, c: 0, to: &bytes)
                FrameFormat.append(.retain, partition: partition, stream: stream, a: UInt64(retention.frames), b: UInt64(retention.bytes), c: UInt64(retention.ageMilliseconds), to: &bytes)
            }
            let time = max(now, s.table.streams[key]?.lastTime ?? 0)
            s.table.streams[key, default: StreamState()].lastTime = time
            var placed: [(seq: UInt64, time: Int64, base: UInt64, offset: Int, length: Int)] = []
            placed.reserveCapacity(frames.count)
            for frame in frames {
                let seq = s.table.nextSeq
                s.table.nextSeq += 1
                let offset = bytes.count
                FrameFormat.append(.frame, partition: partition, stream: stream, a: seq, b: UInt64(bitPattern: time), c: frame.baseVersion, value: frame.value, to: &bytes)
                placed.append((seq, time, frame.baseVersion, offset, bytes.count - offset))
            }
            s.pendingBytes += bytes.count
            s.pendingBytesPeak = max(s.pendingBytesPeak, s.pendingBytes)
            s.pending.append(Pending(key: key, bytes: bytes, frames: placed, completion: completion, durable: durable))
            return (nil, s.pending.count == 1)
        }
        // The writer is woken when the queue stops being empty; it takes everything queued.
        if wake { self.wake.signal() }
        return refusal
    }

    /// Queues a trim (`before`: frames below it go) or a removal (`before` nil).
    func enqueueTrim(_ key: StreamKey, before: UInt64?, completion: @escaping @Sendable (Result<[UInt64], JellyError>) -> Void) -> JellyError? {
        let partition = key.partition.string, stream = key.stream.string
        let (refusal, wake) = state.withLock { s -> (JellyError?, Bool) in
            if let refusal = s.refusal(queueBytesMax) { return (refusal, false) }
            var bytes: [UInt8] = []
            if let before {
                let floor = s.table.trim(key, before: before)
                FrameFormat.append(.trim, partition: partition, stream: stream, a: floor, b: 0, c: 0, to: &bytes)
            } else {
                let floor = s.table.remove(key)
                FrameFormat.append(.remove, partition: partition, stream: stream, a: floor, b: 0, c: 0, to: &bytes)
            }
            s.pendingBytes += bytes.count
            s.pending.append(Pending(key: key, bytes: bytes, frames: [], completion: completion, durable: false))
            return (nil, s.pending.count == 1)
        }
        if wake { self.wake.signal() }
        return refusal
    }

    // MARK: Reading

    /// A page of the stream: the entries under the lock, the records from the files.
    func read(_ key: StreamKey, from: UInt64, limit: Int) throws -> FramePage {
        let now = clock.nowMilliseconds()
        let (entries, next, first, files) = try state.withLock { s -> ([FrameEntry], UInt64, UInt64, [UInt32: any StorageFile]) in
            if s.closing { throw JellyError(.unavailable, "the store is closed") }
            if s.table.streams[key] != nil { s.table.enforce(key, now: now) }
            let (entries, next, first) = s.table.page(key, from: from, limit: limit)
            var files: [UInt32: any StorageFile] = [:]
            for e in entries where files[e.segment] == nil { files[e.segment] = s.files[e.segment] }
            return (entries, next, first, files)
        }
        var frames: [Frame] = []
        frames.reserveCapacity(entries.count)
        let overhead = FrameTable.overhead(key)
        var i = 0
        while i < entries.count {
            // Neighbouring records of one file are read with one pread.
            var j = i + 1
            while j < entries.count, entries[j].segment == entries[i].segment,
                  Int(entries[j].offset) - Int(entries[j - 1].offset + entries[j - 1].recordLength) < 4096,
                  Int(entries[j].offset + entries[j].recordLength) - Int(entries[i].offset) <= 1 << 20 {
                j += 1
            }
            guard let file = files[entries[i].segment] else {
                throw JellyError(.io, "internal error: stream log file \(entries[i].segment) is not open")
            }
            let start = Int(entries[i].offset)
            let length = Int(entries[j - 1].offset + entries[j - 1].recordLength) - start
            var buffer = [UInt8](repeating: 0, count: length)
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: Int64(start)) }
            try buffer.withUnsafeBytes { raw in
                for e in entries[i..<j] {
                    let at = Int(e.offset) - start
                    let where_ = "\(file.path) at offset \(e.offset)"
                    guard at + Int(e.recordLength) <= n else { throw JellyError(.corruption, "\(where_): the frame record is cut short; run `jelly check`") }
                    let record: FrameFormat.Record
                    do { record = try FrameFormat.decode(raw, at: at) } catch {
                        throw JellyError(.corruption, "\(where_): the frame record is damaged (\(error)); run `jelly check`")
                    }
                    guard record.kind == .frame, record.a == e.seq, record.length == Int(e.recordLength), record.value.count == Int(e.recordLength) - overhead else {
                        throw JellyError(.corruption, "\(where_): the record is not frame \(e.seq) of the stream; run `jelly check`")
                    }
                    frames.append(Frame(seq: e.seq, timeMilliseconds: e.time, baseVersion: e.base, value: Array(raw[record.value])))
                }
            }
            i = j
        }
        return FramePage(frames: frames, next: next, first: first)
    }

    func last(_ key: StreamKey) throws -> UInt64 {
        try state.withLock { s in
            if s.closing { throw JellyError(.unavailable, "the store is closed") }
            return s.table.last(key)
        }
    }

    // MARK: Lifecycle

    func start() {
        thread.start { [self] in writer.run(self) }
    }

    /// Writes what is queued, syncs, stops the writer.
    func close() {
        let first = state.withLock { s -> Bool in
            let first = !s.closing
            s.closing = true
            return first
        }
        guard first else { return }
        wake.signal()
        thread.join()
        waiters.wakeAll()
    }

    /// Stops as a crash would: queued appends fail, nothing more is written or synced.
    func crash() {
        let queued = state.withLock { s -> [Pending] in
            s.failure = s.failure ?? JellyError(.unavailable, "the store crashed (test)")
            s.closing = true
            let q = s.pending
            s.pending = []
            return q
        }
        writer.crashed.store(true, ordering: .relaxed)
        wake.signal()
        thread.join()
        for p in queued { p.completion?(.failure(JellyError(.unavailable, "the store crashed (test)"))) }
    }

    func signal() { wake.signal() }
    func waitForWork(until deadline: DispatchTime) { _ = wake.wait(timeout: deadline) }

    static func open(directory: String, storage: any StorageSystem, clock: any JellyClock, defaults: StreamRetention, segmentBytes: Int, durability: Durability, queueBytesMax: Int) throws -> (FrameLog, notes: [String]) {
        try storage.makeDirectoryDurably(directory)
        var recovered = try FrameRecovery.recover(directory: directory, storage: storage, defaults: defaults, now: clock.nowMilliseconds())
        var state = State(table: recovered.table)
        state.files = recovered.files
        let writer = FrameWriter(segmentBytes: segmentBytes, durability: durability)
        let log = FrameLog(directory: directory, storage: storage, clock: clock, segmentBytes: segmentBytes, durability: durability, queueBytesMax: queueBytesMax, state: state, writer: writer)
        if let last = recovered.last, last.end + 4096 < Int64(segmentBytes) {
            writer.file = try storage.openWrite(path: log.path(last.id), truncate: false)
            writer.id = last.id
            writer.end = last.end
            log.state.withLock { $0.active = last.id }
        } else {
            do {
                try writer.startFile((recovered.last?.id ?? 0) + 1, log: log)
            } catch let error as JellyError where error.code == .diskFull {
                // The store opens for reads on a full disk; streams wait for a restart with room.
                log.state.withLock { $0.failure = JellyError(.diskFull, "the stream log could not start a file when the store opened (\(error.message)); free space and restart to append frames") }
                recovered.notes.append("streams refused: the disk is full (\(error.message))")
            }
        }
        recovered.files = [:]
        return (log, recovered.notes)
    }
}

extension FrameLog.State {
    func refusal(_ queueBytesMax: Int) -> JellyError? {
        if let failure { return failure }
        if closing { return JellyError(.unavailable, "the store is closed") }
        if pendingBytes > queueBytesMax {
            return JellyError(.unavailable, "the stream log is \(pendingBytes) bytes behind the disk; slow down and retry")
        }
        return nil
    }
}

/// The writer thread's own state (touched only by that thread after open).
final class FrameWriter: @unchecked Sendable {
    let segmentBytes: Int
    let durability: Durability
    var file: (any StorageFile)?
    var id: UInt32 = 0
    var end: Int64 = 0
    /// Written and not yet synced since (monotonic ns); 0 when everything is synced.
    var unsyncedSince: UInt64 = 0
    var awaitingSync: [(@Sendable (Result<[UInt64], JellyError>) -> Void, [UInt64])] = []
    var lastExpiry: UInt64 = 0
    /// When the last write began: rounds start at most every `roundNanosecondsMin`, so that
    /// thousands of sockets' single frames share a write instead of costing one each.
    var lastRound: UInt64 = 0
    static let roundNanosecondsMin: UInt64 = 500_000
    let crashed = Atomic<Bool>(false)

    init(segmentBytes: Int, durability: Durability) {
        self.segmentBytes = segmentBytes
        self.durability = durability
    }

    var intervalNanoseconds: UInt64? {
        switch durability {
        case .always: return 0
        case .interval(let ms): return UInt64(ms) * 1_000_000
        case .never: return nil
        }
    }

    func run(_ log: FrameLog) {
        while true {
            let now = monotonicNanoseconds()
            var deadline = now + 1_000_000_000
            if unsyncedSince != 0, let interval = intervalNanoseconds { deadline = min(deadline, unsyncedSince + interval) }
            log.waitForWork(until: DispatchTime(uptimeNanoseconds: max(deadline, now)))
            if crashed.load(ordering: .relaxed) { return }
            let since = monotonicNanoseconds() &- lastRound
            if since < Self.roundNanosecondsMin { usleep(useconds_t((Self.roundNanosecondsMin - since) / 1000)) }
            lastRound = monotonicNanoseconds()
            let (batch, closing) = log.state.withLock { s -> ([FrameLog.Pending], Bool) in
                let b = s.pending
                s.pending.removeAll(keepingCapacity: true)
                s.pendingBytes = 0
                return (b, s.closing)
            }
            do {
                if !batch.isEmpty { try write(batch, log: log) }
                let t = monotonicNanoseconds()
                if unsyncedSince != 0, closing || (intervalNanoseconds.map { t >= unsyncedSince + $0 } ?? false) { try sync(log) }
                if t >= lastExpiry + 1_000_000_000 {
                    lastExpiry = t
                    let now = log.clock.nowMilliseconds()
                    log.state.withLock { $0.table.expire(now: now) }
                    try relocateOldest(log)
                    try deleteUnused(log)
                }
            } catch {
                fail(error as? JellyError ?? JellyError(.io, "\(error)"), batch: [], log: log)
            }
            if closing {
                let empty = log.state.withLock { $0.pending.isEmpty }
                if empty {
                    file?.close()
                    return
                }
            }
        }
    }

    private func fail(_ error: JellyError, batch: [FrameLog.Pending], log: FrameLog) {
        let queued = log.state.withLock { s -> [FrameLog.Pending] in
            if s.failure == nil { s.failure = JellyError(.unavailable, "the stream log cannot write (\(error.message)); restart the store once the cause is fixed") }
            let q = s.pending
            s.pending = []
            s.pendingBytes = 0
            return q
        }
        let failure = log.state.withLock { $0.failure } ?? error
        for (c, _) in awaitingSync { c(.failure(failure)) }
        awaitingSync = []
        for p in batch + queued { p.completion?(.failure(failure)) }
    }

    private func write(_ batch: [FrameLog.Pending], log: FrameLog) throws {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batch.reduce(0) { $0 + $1.bytes.count })
        var placed: [(StreamKey, [FrameEntry])] = []
        placed.reserveCapacity(batch.count)
        do {
            for p in batch {
                if end + Int64(buffer.count + p.bytes.count) > Int64(segmentBytes), end > Int64(FrameFormat.headerBytes) + 4096 {
                    try flush(&buffer)
                    try rotate(log)
                }
                let base = end + Int64(buffer.count)
                let entries = p.frames.map {
                    FrameEntry(seq: $0.seq, time: $0.time, base: $0.base, segment: id, offset: UInt32(base + Int64($0.offset)), recordLength: UInt32($0.length))
                }
                buffer.append(contentsOf: p.bytes)
                placed.append((p.key, entries))
            }
            try flush(&buffer)
        } catch {
            fail(error as? JellyError ?? JellyError(.io, "\(error)"), batch: batch, log: log)
            return
        }
        let now = log.clock.nowMilliseconds()
        log.state.withLock { s in
            for (key, entries) in placed where !entries.isEmpty { s.table.publish(key, entries, now: now) }
        }
        if log.waiters.waiting > 0 {
            for (key, entries) in placed {
                if let last = entries.last { log.waiters.notify(partition: ByteName(key.waitName), version: last.seq) }
            }
        }
        for p in batch {
            guard let completion = p.completion else { continue }
            let seqs = p.frames.map(\.seq)
            if p.durable && intervalNanoseconds != nil { awaitingSync.append((completion, seqs)) } else { completion(.success(seqs)) }
        }
        if case .always = durability { try sync(log) }
    }

    private func flush(_ buffer: inout [UInt8]) throws {
        guard !buffer.isEmpty, let file else { return }
        try buffer.withUnsafeBytes { try file.write($0, at: end) }
        if unsyncedSince == 0 { unsyncedSince = monotonicNanoseconds() }
        end += Int64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    private func sync(_ log: FrameLog) throws {
        if let file, unsyncedSince != 0 { try file.sync() }
        unsyncedSince = 0
        let done = awaitingSync
        awaitingSync = []
        for (c, seqs) in done { c(.success(seqs)) }
    }

    /// Syncs and leaves the active file; starts the next one.
    private func rotate(_ log: FrameLog) throws {
        try sync(log)
        file?.close()
        try startFile(id + 1, log: log)
    }

    /// Creates file `newID` with its header and checkpoint (the next sequence and every
    /// custom retention), durable with its directory entry before it is used.
    func startFile(_ newID: UInt32, log: FrameLog) throws {
        let path = log.path(newID)
        let (next, retentions) = log.state.withLock { s in (s.table.nextSeq, s.table.customRetentions) }
        var bytes = FrameFormat.encodeHeader(segment: newID, createdAt: log.clock.nowMilliseconds())
        FrameFormat.append(.next, partition: "", stream: "", a: next, b: 0, c: 0, to: &bytes)
        for (key, r) in retentions {
            FrameFormat.append(.retain, partition: key.partition.string, stream: key.stream.string, a: UInt64(r.frames), b: UInt64(r.bytes), c: UInt64(r.ageMilliseconds), to: &bytes)
        }
        let f = try log.storage.openWrite(path: path, truncate: true)
        do {
            try bytes.withUnsafeBytes { try f.write($0, at: 0) }
            try f.sync()
            try log.storage.syncDirectory(log.directory)
            let reader = try log.storage.openRead(path: path)
            log.state.withLock { s in
                s.files[newID] = reader
                s.active = newID
            }
        } catch {
            f.close()
            throw error
        }
        file = f
        id = newID
        end = Int64(bytes.count)
    }

    /// Files are deleted oldest first, so a frame kept long (a quiet stream, a long retention)
    /// would hold every newer file on disk. When the oldest file is at most half kept frames,
    /// they are copied, record for record (a record names no file), to the active file and the
    /// table points at the copies; the old file then goes with the next deletion. A crash in
    /// between leaves both copies, which recovery reads as one.
    private func relocateOldest(_ log: FrameLog) throws {
        let found = log.state.withLock { s -> (UInt32, any StorageFile, [(key: StreamKey, seq: UInt64, offset: UInt32, length: UInt32)])? in
            guard let oldest = s.files.keys.min(), oldest < s.active, let file = s.files[oldest] else { return nil }
            let live = s.table.liveBytesBySegment[oldest] ?? 0
            guard (s.table.liveBySegment[oldest] ?? 0) > 0, live * 2 <= Int64(segmentBytes) else { return nil }
            return (oldest, file, s.table.kept(in: oldest))
        }
        guard let (oldest, file, moves) = found, !moves.isEmpty else { return }
        var placed: [(key: StreamKey, seq: UInt64, offset: UInt32, to: UInt32, newOffset: UInt32)] = []
        var buffer: [UInt8] = []
        for m in moves {
            var record = [UInt8](repeating: 0, count: Int(m.length))
            let n = try record.withUnsafeMutableBytes { try file.read(into: $0, at: Int64(m.offset)) }
            guard n == Int(m.length) else { throw JellyError(.corruption, "\(file.path) at offset \(m.offset): a kept frame is cut short; run `jelly check`") }
            if end + Int64(buffer.count + record.count) > Int64(segmentBytes) {
                try flush(&buffer)
                try rotate(log)
            }
            placed.append((m.key, m.seq, m.offset, id, UInt32(end + Int64(buffer.count))))
            buffer.append(contentsOf: record)
        }
        try flush(&buffer)
        try sync(log)
        log.state.withLock { s in
            for p in placed { s.table.move(p.key, seq: p.seq, from: oldest, offset: p.offset, to: p.to, newOffset: p.newOffset) }
        }
    }

    /// Deletes the oldest files while none of their frames is kept. Runs after a sync, so the
    /// active file's checkpoint (which carries what they held besides frames) is durable.
    private func deleteUnused(_ log: FrameLog) throws {
        if unsyncedSince != 0 { try sync(log) }
        let unused = log.state.withLock { s -> [UInt32] in
            var out: [UInt32] = []
            for fileID in s.files.keys.sorted() where fileID < s.active {
                guard (s.table.liveBySegment[fileID] ?? 0) <= 0 else { break }
                out.append(fileID)
                s.files[fileID] = nil // readers holding it keep the descriptor open
                s.table.liveBySegment[fileID] = nil
                s.table.liveBytesBySegment[fileID] = nil
            }
            return out
        }
        for fileID in unused { try log.storage.remove(log.path(fileID)) }
        if !unused.isEmpty { try log.storage.syncDirectory(log.directory) }
    }
}
