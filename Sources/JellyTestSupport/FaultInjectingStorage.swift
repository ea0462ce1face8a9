import JellyCore
import JellyEngine
import Synchronization

/// A storage layer over the real one (`PosixStorage`) that can fail syncs and writes on demand
/// and simulate a power loss: every write since a file's last sync is torn at a random byte
/// and everything after it is lost, the way a crash mid-append leaves a log. Directory
/// operations (create, rename, remove) are taken as durable when they return.
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
    }

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

    /// From now on every sync fails with EIO (as a dying disk would).
    public func failSyncs(_ on: Bool = true) { state.withLock { $0.failSyncs = on } }

    /// Writes fail once this many more bytes have been written.
    public func failWrites(afterBytes n: Int?) { state.withLock { $0.failWritesAfterBytes = n; $0.bytesWritten = 0 } }

    public var syncCount: Int { state.withLock { $0.syncs } }

    /// Syncs of files whose path ends with `suffix` (for example a segment's file name).
    public func syncCount(pathSuffix suffix: String) -> Int {
        state.withLock { s in s.syncsByPath.filter { $0.key.hasSuffix(suffix) }.values.reduce(0, +) }
    }

    /// Simulates a power loss: for every file, the writes since its last sync survive up to a
    /// random byte (chosen by `random`, which returns a value in 0..<bound), the rest reverts.
    /// Returns a description of what was cut, for test failure messages.
    @discardableResult
    public func crash(random: (Int) -> Int) throws -> [String] {
        let pending = state.withLock { s -> [String: [PendingWrite]] in
            let p = s.unsynced
            s.unsynced = [:]
            return p
        }
        var report: [String] = []
        for (path, writes) in pending.sorted(by: { $0.key < $1.key }) where !writes.isEmpty {
            let total = writes.reduce(0) { $0 + $1.length }
            let keep = random(total + 1)
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
            if let limit = s.failWritesAfterBytes, s.bytesWritten + length > limit {
                throw JellyError(.io, "write \(path) failed: injected fault (EIO)")
            }
            s.bytesWritten += length
            s.unsynced[path, default: []].append(PendingWrite(offset: offset, length: length, previous: previous, previousSize: previousSize))
        }
    }

    fileprivate func recordSync(path: String) throws {
        try state.withLock { s in
            if s.failSyncs { throw JellyError(.io, "fdatasync \(path) failed: injected fault (EIO)") }
            s.syncs += 1
            s.syncsByPath[path, default: 0] += 1
            s.unsynced[path] = nil
        }
    }

    // MARK: StorageSystem

    public func openLog(path: String, create: Bool, direct: Bool) throws -> any StorageFile {
        FaultFile(try base.openLog(path: path, create: create, direct: false), owner: self)
    }

    public func openRead(path: String) throws -> any StorageFile { try base.openRead(path: path) }

    public func openWrite(path: String, truncate: Bool) throws -> any StorageFile {
        FaultFile(try base.openWrite(path: path, truncate: truncate), owner: self)
    }

    public func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    public func makeDirectory(_ path: String) throws { try base.makeDirectory(path) }
    public func fileExists(_ path: String) -> Bool { base.fileExists(path) }

    public func remove(_ path: String) throws {
        state.withLock { _ = $0.unsynced.removeValue(forKey: path) }
        try base.remove(path)
    }

    public func rename(_ from: String, _ to: String) throws {
        try base.rename(from, to)
        state.withLock { s in
            if let pending = s.unsynced.removeValue(forKey: from) { s.unsynced[to] = pending }
        }
    }

    public func syncDirectory(_ path: String) throws { try base.syncDirectory(path) }
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
    func truncate(to size: Int64) throws { try inner.truncate(to: size) }
    func close() { inner.close() }
}

extension Int64 {
    var clampedToInt: Int { Int(clamping: self) }
}
