import CJellySystem
import Dispatch
import JellyCore
import Synchronization

/// The background worker, one thread at the lowest I/O priority. Its jobs, each in a file of
/// its own: starting the log's next segment ahead of time (`Maintenance+StartAhead.swift`),
/// writing hint files of sealed segments and keeping spare segment files, recycled or
/// zero-filled (`Maintenance+Files.swift`), and compacting segments whose garbage passed the
/// threshold (`Compaction.swift`, appending to a `CompactionOutput`). This file holds the
/// worker's loop and its start and stop.
final class Maintenance: @unchecked Sendable {
    // Immutable after init except `output` (see there).
    let shared: EngineShared
    let configuration: EmbeddedStoreConfiguration
    let wake = DispatchSemaphore(value: 0)
    let startDone = DispatchSemaphore(value: 0)
    /// Held by a compaction round while it runs (`holdCompaction` waits for it).
    let compactionRound = DispatchSemaphore(value: 1)
    private let thread = OSThread(name: "jelly-maint")
    let work = Mutex(Work())
    /// Where compaction copies live records; touched only on the worker thread, and by `stop`
    /// after it has exited.
    var output: CompactionOutput?
    let compactionStats = Mutex(CompactionStats())
    /// Index updates made per hold of the store's lock during compaction.
    static let lockChunk = 4096
    /// Spare segment files kept for reuse (recycled or zero-filled).
    static let sparesMax = 4

    struct Work {
        var hints: [(segment: UInt32, bytes: [UInt8])] = []
        var prepared: [String] = []
        var nextPreparedNumber = 0
        /// The id of the next compaction output segment.
        var nextOutputID = compactedSegmentIDBase
        var stopping = false
        var running = false
        var compactRequests: [CompactionRequest] = []
        /// Backups copying now: compaction waits for them (it would remove what they copy).
        var backupHolds = 0
        /// The log's next segment, started ahead of the committer's need.
        var startAhead = StartAhead<StartedSegment>()
    }

    init(shared: EngineShared, configuration: EmbeddedStoreConfiguration, prepared: [String], nextPreparedNumber: Int, nextOutputID: UInt32) {
        self.shared = shared
        self.configuration = configuration
        work.withLock {
            $0.prepared = prepared
            $0.nextPreparedNumber = nextPreparedNumber
            $0.nextOutputID = nextOutputID
        }
    }

    func start() {
        work.withLock { $0.running = true }
        thread.start { [self] in run() }
    }

    /// Stops the worker. The compaction output is sealed and trimmed, or with `crash` left as
    /// a crash would leave it (recovery seals it).
    func stop(crash: Bool = false) {
        let wasRunning = work.withLock { w -> Bool in
            let r = w.running
            w.stopping = true
            w.running = false
            return r
        }
        if wasRunning {
            wake.signal()
            thread.join()
        }
        // A started segment stays on disk: the next open reuses it (it holds no blocks).
        work.withLock { $0.startAhead.leftover }?.file.close()
        if crash {
            output?.abandon()
            output = nil
            return
        }
        writePendingHints()
        // Not sealed, it is sealed by the next open: nothing is lost either way.
        do { try sealOutput(trim: true) } catch { output?.abandon(); output = nil }
    }

    private func run() {
        // Compaction, hints and zero-fills give way to the log's writes and syncs.
        _ = jelly_set_thread_io_low()
        let interval = configuration.compaction.checkIntervalMilliseconds
        while true {
            let full = shared.state.withLock { $0.diskFull != nil }
            _ = wake.wait(timeout: .now() + .milliseconds(full ? min(interval, Self.diskFullRecheckMilliseconds) : interval))
            if work.withLock({ $0.stopping }) { return }
            if shared.state.withLock({ $0.diskFull != nil }) { checkDiskSpace() }
            startWanted()
            writePendingHints()
            let requests = work.withLock { w -> [CompactionRequest] in
                let r = w.compactRequests
                w.compactRequests = []
                return r
            }
            for request in requests {
                do {
                    request.done(.success(try compact(force: request.force, progress: request.progress)))
                } catch {
                    request.done(.failure((error as? JellyError) ?? JellyError(.io, "\(error)")))
                }
            }
            // Compaction first: dead segments it removes are recycled as spare files, which is
            // far cheaper than zero-filling new ones.
            if configuration.compaction.automatic && requests.isEmpty {
                _ = try? compact(force: false, progress: nil)
            }
            if work.withLock({ $0.prepared.isEmpty }) {
                do {
                    let path = try prepareFile()
                    work.withLock { $0.prepared.append(path) }
                } catch {
                    // The committer prepares its own file when it needs one and reports failures.
                }
            }
        }
    }

    /// A backup starts: compaction stops before its next round and waits until
    /// `releaseCompaction`. Returns once no round is running, so no file is removed or recycled
    /// while the backup reads it.
    func holdCompaction() {
        work.withLock { $0.backupHolds += 1 }
        compactionRound.wait()
        compactionRound.signal()
    }

    func releaseCompaction() {
        work.withLock { $0.backupHolds -= 1 }
    }

    var compactionHeld: Bool { work.withLock { $0.backupHolds > 0 } }

    // MARK: A full disk

    /// Free space the store wants beyond a new segment before it takes writes again after the
    /// disk filled: room for the hint files, seal blocks and the stream log's next file that
    /// follow, so that it does not fill the disk again at once (docs/limits.md).
    static let diskReserveBytes: Int64 = 16 << 20
    /// How often a full disk is looked at again.
    static let diskFullRecheckMilliseconds = 1_000

    /// While writes are refused for a full disk: when there is room for a new segment and the
    /// reserve again, prepares the segment's file and lets writes in. The committer starts its
    /// segment with that file at the next write.
    func checkDiskSpace() {
        let needed = Int64(configuration.segmentBytes) + Self.diskReserveBytes
        if let free = shared.storage.availableBytes(shared.directory), free < needed { return }
        do {
            let path = try prepareFile()
            work.withLock { $0.prepared.append(path) }
        } catch {
            return
        }
        shared.state.withLock { $0.diskFull = nil }
    }
}
