#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import JellyCore
import JellyEngine
import Synchronization

/// A storage layer over the real one (`PosixStorage`) that can fail syncs and writes on demand
/// and simulate a power loss, in the spirit of LevelDB's fault-injection environment: every
/// write since a file's last sync is torn at a random byte and everything after it is lost, the
/// way a crash mid-append leaves a log; and directory entries (files and directories created,
/// renames, removals) since their directory's last sync are undone, newest first, beyond a
/// random prefix, as a filesystem whose metadata journal had not committed them would. A file
/// whose creation is undone is gone with its data, synced or not; a rename undone puts the file
/// back under its old name (and what it replaced under the new one); a removal undone brings
/// the file back as it was.
///
/// The power can be cut at a chosen moment (`cutPower()`, with a sync held at the gate) or after
/// a number of operations (`cutPower(afterOperations:)`: a random point of a running workload).
///
/// Use it with `directIO = false`: it tracks writes made through it, and a crash must happen
/// after the store stopped writing (`EmbeddedStore.crashForTesting()`).
public final class FaultInjectingStorage: StorageSystem, Sendable {
    private let base: any StorageSystem
    let state = Mutex(FaultState())

    struct FaultState {
        /// Per path: writes since the last sync, oldest first, with the bytes they replaced.
        var unsynced: [String: [PendingWrite]] = [:]
        var failSyncs = false
        var failWritesAfterBytes: Int?
        var bytesWritten = 0
        var syncs = 0
        var syncsByPath: [String: Int] = [:]
        /// Syncs of paths ending with this wait at the gate until `releaseSyncs`.
        var holdSuffix: String?
        /// Syncs waiting at the gate now, those of them let go, and all that have waited.
        var held = 0
        var released = 0
        var heldTotal = 0
        /// After `cutPower`, until `crash`: every change fails.
        var powerOff = false
        /// Writes to paths containing this take bytes / rate seconds (a slow disk).
        var throttle: (pathContaining: String, bytesPerSecond: Int)?
        /// Per directory: entry changes since its last sync, oldest first.
        var unsyncedEntries: [String: [EntryChange]] = [:]
        /// Changes (writes, syncs, creates, renames, removals, truncations) left before the
        /// power goes off by itself; nil: never.
        var operationsUntilCut: Int?
        /// Changes made so far (the range to pick `cutPower(afterOperations:)` from).
        var operations = 0
        /// Bytes files may still grow by before writes fail with ENOSPC (nil: the real disk's).
        var freeBytes: Int64?
    }

    /// A directory entry change not yet made durable by a sync of its directory.
    enum EntryChange {
        /// A file or directory that did not exist.
        case created(path: String, isDirectory: Bool)
        /// `from` renamed to `to`; `displaced` is the file `to` named before, if any.
        case renamed(from: String, to: String, displaced: RemovedFile?)
        case removed(RemovedFile)
    }

    /// A file's bytes and unsynced writes at the moment it stopped being reachable.
    struct RemovedFile {
        var path: String
        var bytes: [UInt8]
        var pending: [PendingWrite]
    }

    /// Where held syncs wait: signalled once per held sync by `releaseSyncs`.
    private let gate = DispatchSemaphore(value: 0)

    struct PendingWrite {
        var offset: Int64
        var length: Int
        /// What was there before (shorter than `length` where the write extended the file).
        var previous: [UInt8]
        var previousSize: Int64
    }

    public init(base: any StorageSystem = PosixStorage()) {
        self.base = base
    }

    /// Writes to paths containing `pathContaining` take as long as a disk of `bytesPerSecond`
    /// would (nil: full speed again).
    public func throttleWrites(pathContaining: String, bytesPerSecond: Int?) {
        state.withLock { $0.throttle = bytesPerSecond.map { (pathContaining, $0) } }
    }

    /// A disk with `bytes` free from now on: writes that would grow files beyond it fail with
    /// ENOSPC; removing and truncating files gives room back. nil: the real disk again.
    public func limitSpace(freeBytes bytes: Int64?) { state.withLock { $0.freeBytes = bytes } }

    public var freeBytes: Int64? { state.withLock { $0.freeBytes } }

    /// Gives `n` bytes back to a limited disk.
    fileprivate func released(_ n: Int64) {
        state.withLock { s in if let free = s.freeBytes { s.freeBytes = free + max(0, n) } }
    }

    private func size(of path: String) -> Int64 {
        guard let f = try? base.openRead(path: path) else { return 0 }
        defer { f.close() }
        return (try? f.size()) ?? 0
    }

    /// From now on every sync fails with EIO (as a dying disk would).
    public func failSyncs(_ on: Bool = true) { state.withLock { $0.failSyncs = on } }

    /// Writes fail once this many more bytes have been written.
    public func failWrites(afterBytes n: Int?) { state.withLock { $0.failWritesAfterBytes = n; $0.bytesWritten = 0 } }

    public var syncCount: Int { state.withLock { $0.syncs } }

    /// Syncs of files whose path ends with `suffix` (for example a segment's file name).
    public func syncCount(pathSuffix suffix: String) -> Int {
        state.withLock { s in s.syncsByPath.filter { $0.key.hasSuffix(suffix) }.values.reduce(0, +) }
    }

    /// From now on a sync of a file whose path ends with `suffix` (".log": the log's) waits
    /// before it reaches the disk until `releaseHeldSyncs()` or `stopHoldingSyncs()`: a disk
    /// slow to flush, frozen, so a test can look at the store while a block is written and not
    /// yet durable, or cut the power at that moment (`cutPower()`).
    public func holdSyncs(pathSuffix suffix: String) { state.withLock { $0.holdSuffix = suffix } }

    /// Syncs waiting now.
    public var heldSyncs: Int { state.withLock { $0.held } }

    /// Syncs that have waited so far (those waiting now included).
    public var syncsHeldSoFar: Int { state.withLock { $0.heldTotal } }

    /// Lets the syncs waiting now go on; later ones are held again.
    public func releaseHeldSyncs() {
        let waiting = state.withLock { s -> Int in
            let n = s.held - s.released
            s.released = s.held
            return n
        }
        for _ in 0..<waiting { gate.signal() }
    }

    /// Lets every waiting sync go on, and holds no more.
    public func stopHoldingSyncs() {
        state.withLock { $0.holdSuffix = nil }
        releaseHeldSyncs()
    }

    /// The power goes off: from now on every write, sync, truncation, rename and removal fails
    /// with EIO, so nothing more reaches the disk. `crash` then drops what was not synced, and
    /// turns the power back on. Hold a sync first to cut the power the moment it starts.
    public func cutPower() { state.withLock { $0.powerOff = true } }

    /// The power goes off by itself when `n` more changes (writes, syncs, creates, renames,
    /// removals, truncations) have been asked for: the `n`th and every later one fails.
    public func cutPower(afterOperations n: Int) {
        state.withLock { $0.operationsUntilCut = max(1, n) }
    }

    /// Changes asked for since the storage was made.
    public var operations: Int { state.withLock { $0.operations } }

    public var isPowerOff: Bool { state.withLock { $0.powerOff } }

    /// Counts one change; throws when the power is (or just went) off.
    fileprivate func checkPower(_ what: String, _ path: String) throws {
        let off = state.withLock { s -> Bool in Self.tick(&s) }
        if off { throw JellyError(.io, "\(what) \(path) failed: injected power loss (EIO)") }
    }

    /// Counts a change in `s`; true when the power is off for it.
    fileprivate static func tick(_ s: inout FaultState) -> Bool {
        s.operations += 1
        if let n = s.operationsUntilCut {
            if n <= 1 { s.powerOff = true; s.operationsUntilCut = nil } else { s.operationsUntilCut = n - 1 }
        }
        return s.powerOff
    }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private func snapshot(_ path: String) throws -> [UInt8] {
        let file = try base.openRead(path: path)
        defer { file.close() }
        var bytes = [UInt8](repeating: 0, count: Int(try file.size()))
        let n = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        return Array(bytes[0..<n])
    }

    private func restore(_ file: RemovedFile) throws {
        let f = try base.openWrite(path: file.path, truncate: true)
        defer { f.close() }
        try file.bytes.withUnsafeBytes { try f.write($0, at: 0) }
    }

    private func removeTree(_ path: String) throws {
        if let names = try? base.listDirectory(path) {
            for name in names { try removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            try base.remove(path)
        }
    }

    /// Simulates a power loss: for every file, the writes since its last sync survive up to a
    /// random byte (chosen by `random`, which returns a value in 0..<bound), the rest reverts.
    /// Returns a description of what was cut, for test failure messages.
    @discardableResult
    public func crash(random: (Int) -> Int) throws -> [String] {
        try crash(keeping: { _, bound in random(bound) }, keepingEntries: { _, n in random(n + 1) })
    }

    /// `crash` with the cut chosen per file: `keep(path, total)` returns how many of the file's
    /// `total` unsynced bytes survive (0...total), whatever order the files are visited in.
    ///
    /// Directory entry changes since their directory's last sync: `keepEntries(directory, n)`
    /// says how many of a directory's `n` survive, oldest first (default: none); the rest are
    /// undone before the files' unsynced writes are.
    @discardableResult
    public func crash(keeping keep: (String, Int) -> Int, keepingEntries keepEntries: (String, Int) -> Int = { _, _ in 0 }) throws -> [String] {
        var (pending, entries) = state.withLock { s -> ([String: [PendingWrite]], [String: [EntryChange]]) in
            let p = (s.unsynced, s.unsyncedEntries)
            s.unsynced = [:]
            s.unsyncedEntries = [:]
            s.powerOff = false
            s.operationsUntilCut = nil
            return p
        }
        var report: [String] = []
        // Undo entry changes newest first across directories (a rename between directories is
        // not used by the engine; each change is listed under its target's directory).
        var undo: [(order: Int, change: EntryChange)] = []
        for (directory, changes) in entries.sorted(by: { $0.key < $1.key }) where !changes.isEmpty {
            let kept = min(changes.count, max(0, keepEntries(directory, changes.count)))
            report.append("\(directory): kept \(kept) of \(changes.count) unsynced entry changes")
            undo += changes.enumerated().dropFirst(kept).map { ($0.offset, $0.element) }
        }
        for (_, change) in undo.sorted(by: { $0.order > $1.order }) {
            switch change {
            case .created(let path, let isDirectory):
                if isDirectory { try removeTree(path) } else { try base.remove(path) }
                pending = pending.filter { !$0.key.hasPrefix(path) }
            case .renamed(let from, let to, let displaced):
                if base.fileExists(to) { try base.rename(to, from) }
                if let moved = pending.removeValue(forKey: to) { pending[from] = moved }
                if let displaced {
                    try restore(displaced)
                    pending[to] = displaced.pending
                }
            case .removed(let file):
                try restore(file)
                pending[file.path] = file.pending
            }
        }
        for (path, writes) in pending.sorted(by: { $0.key < $1.key }) where !writes.isEmpty {
            let total = writes.reduce(0) { $0 + $1.length }
            let keep = min(total, max(0, keep(path, total)))
            report.append("\(path): kept \(keep) of \(total) unsynced bytes")
            guard base.fileExists(path) else { continue }
            let file = try base.openWrite(path: path, truncate: false)
            defer { file.close() }
            // Walk back from the newest write, restoring what each replaced beyond `keep`.
            var prefix = total
            for write in writes.reversed() {
                prefix -= write.length
                let keepHere = max(0, min(write.length, keep - prefix))
                if keepHere == write.length { continue }
                let revertFrom = keepHere
                let restore = write.previous.count > revertFrom ? Array(write.previous[revertFrom...]) : []
                if !restore.isEmpty {
                    try restore.withUnsafeBytes { try file.write($0, at: write.offset + Int64(revertFrom)) }
                }
                if write.previousSize < write.offset + Int64(write.length) {
                    try file.truncate(to: max(write.previousSize, write.offset + Int64(keepHere)))
                }
            }
        }
        return report
    }

    fileprivate func recordWrite(path: String, offset: Int64, length: Int, previous: [UInt8], previousSize: Int64) throws {
        try state.withLock { s in
            if Self.tick(&s) { throw JellyError(.io, "write \(path) failed: injected power loss (EIO)") }
            if let limit = s.failWritesAfterBytes, s.bytesWritten + length > limit {
                throw JellyError(.io, "write \(path) failed: injected fault (EIO)")
            }
            let growth = max(0, offset + Int64(length) - previousSize)
            if let free = s.freeBytes {
                if growth > free { throw JellyError(.diskFull, "write \(path) failed: No space left on device (errno 28, injected)") }
                s.freeBytes = free - growth
            }
            s.bytesWritten += length
            s.unsynced[path, default: []].append(PendingWrite(offset: offset, length: length, previous: previous, previousSize: previousSize))
        }
        if let t = state.withLock({ $0.throttle }), path.contains(t.pathContaining) {
            usleep(useconds_t(min(10_000_000, length * 1_000_000 / max(1, t.bytesPerSecond))))
        }
    }

    fileprivate func recordSync(path: String) throws {
        let hold = state.withLock { s -> Bool in
            guard let suffix = s.holdSuffix, path.hasSuffix(suffix) else { return false }
            s.held += 1
            s.heldTotal += 1
            return true
        }
        if hold {
            gate.wait()
            state.withLock { s in
                s.held -= 1
                s.released -= 1
            }
        }
        try state.withLock { s in
            if Self.tick(&s) { throw JellyError(.io, "fdatasync \(path) failed: injected power loss (EIO)") }
            if s.failSyncs { throw JellyError(.io, "fdatasync \(path) failed: injected fault (EIO)") }
            s.syncs += 1
            s.syncsByPath[path, default: 0] += 1
            s.unsynced[path] = nil
        }
    }

    // MARK: StorageSystem

    /// Records the creation of `path` when it does not exist yet (after checking the power).
    private func creating(_ path: String, isDirectory: Bool, _ make: () throws -> Void) throws {
        let isNew = !base.fileExists(path)
        if isNew { try checkPower("create", path) }
        try make()
        if isNew {
            state.withLock { $0.unsyncedEntries[Self.parent(path), default: []].append(.created(path: path, isDirectory: isDirectory)) }
        }
    }

    public func openLog(path: String, create: Bool, direct: Bool) throws -> any StorageFile {
        var file: (any StorageFile)?
        if create {
            try creating(path, isDirectory: false) { file = try base.openLog(path: path, create: true, direct: false) }
        } else {
            file = try base.openLog(path: path, create: false, direct: false)
        }
        guard let file else { throw JellyError(.io, "open \(path) failed") }
        return FaultFile(file, owner: self)
    }

    public func openRead(path: String) throws -> any StorageFile { try base.openRead(path: path) }

    public func openWrite(path: String, truncate: Bool) throws -> any StorageFile {
        var file: (any StorageFile)?
        if truncate && base.fileExists(path) {
            try checkPower("truncate", path)
            released(size(of: path))
        }
        try creating(path, isDirectory: false) { file = try base.openWrite(path: path, truncate: truncate) }
        guard let file else { throw JellyError(.io, "open \(path) failed") }
        return FaultFile(file, owner: self)
    }

    public func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }

    public func makeDirectory(_ path: String) throws {
        // Each missing component is an entry of its parent.
        var missing: [String] = []
        var p = path
        while !p.isEmpty && p != "/" && p != "." && !base.fileExists(p) {
            missing.append(p)
            p = Self.parent(p)
        }
        for dir in missing.reversed() {
            try creating(dir, isDirectory: true) { try base.makeDirectory(dir) }
        }
    }

    public func fileExists(_ path: String) -> Bool { base.fileExists(path) }

    public func remove(_ path: String) throws {
        try checkPower("remove", path)
        guard base.fileExists(path) else { return }
        let bytes = try snapshot(path)
        released(Int64(bytes.count))
        let pending = state.withLock { $0.unsynced.removeValue(forKey: path) } ?? []
        try base.remove(path)
        state.withLock { $0.unsyncedEntries[Self.parent(path), default: []].append(.removed(RemovedFile(path: path, bytes: bytes, pending: pending))) }
    }

    public func rename(_ from: String, _ to: String) throws {
        try checkPower("rename", from)
        let displaced: RemovedFile? = base.fileExists(to)
            ? RemovedFile(path: to, bytes: try snapshot(to), pending: state.withLock { $0.unsynced.removeValue(forKey: to) } ?? [])
            : nil
        released(Int64(displaced?.bytes.count ?? 0))
        try base.rename(from, to)
        state.withLock { s in
            if let pending = s.unsynced.removeValue(forKey: from) { s.unsynced[to] = pending }
            s.unsyncedEntries[Self.parent(to), default: []].append(.renamed(from: from, to: to, displaced: displaced))
        }
    }

    public func availableBytes(_ path: String) -> Int64? { freeBytes ?? base.availableBytes(path) }

    public func syncDirectory(_ path: String) throws {
        try checkPower("fsync", path)
        try base.syncDirectory(path)
        state.withLock { _ = $0.unsyncedEntries.removeValue(forKey: path) }
    }
    public func lockDirectory(_ path: String) throws -> any StorageFile { try base.lockDirectory(path) }
}

/// A file whose writes are recorded by its `FaultInjectingStorage`.
final class FaultFile: StorageFile, @unchecked Sendable {
    // Both properties are immutable; the mutable state (what was written since the last sync)
    // lives in the owner, behind its mutex.
    private let inner: any StorageFile
    private let owner: FaultInjectingStorage

    init(_ inner: any StorageFile, owner: FaultInjectingStorage) {
        self.inner = inner
        self.owner = owner
    }

    var path: String { inner.path }
    var isDirect: Bool { false }
    var bufferedReason: String? { "fault-injecting storage (tests)" }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws {
        let size = try inner.size()
        var previous = [UInt8](repeating: 0, count: max(0, min(Int64(buffer.count), size - offset).clampedToInt))
        if !previous.isEmpty {
            _ = try previous.withUnsafeMutableBytes { try inner.read(into: $0, at: offset) }
        }
        try owner.recordWrite(path: inner.path, offset: offset, length: buffer.count, previous: previous, previousSize: size)
        try inner.write(buffer, at: offset)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int { try inner.read(into: buffer, at: offset) }

    func sync() throws {
        try owner.recordSync(path: inner.path)
        try inner.sync()
    }

    func size() throws -> Int64 { try inner.size() }
    func truncate(to size: Int64) throws {
        try owner.checkPower("truncate", inner.path)
        let before = try inner.size()
        try inner.truncate(to: size)
        owner.released(before - size)
    }
    func close() { inner.close() }
}

extension Int64 {
    var clampedToInt: Int { Int(clamping: self) }
}
