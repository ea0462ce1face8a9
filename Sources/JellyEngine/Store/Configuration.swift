import JellyCore

/// When a write is acknowledged relative to the disk.
public enum Durability: Sendable, Equatable, CustomStringConvertible {
    /// The default. A write returns only after its group's `fdatasync` (F_FULLFSYNC on macOS):
    /// every acknowledged write survives a crash or power loss. Concurrent writers share one
    /// write and one sync (group commit), so this costs latency, not throughput.
    case always
    /// Writes return once handed to the operating system; the log is synced at least every
    /// `milliseconds`. A process crash loses nothing; a power loss or kernel crash may lose the
    /// writes of the last `milliseconds`. Lock operations are still synced before they return.
    case interval(milliseconds: Int)
    /// Writes return once handed to the operating system; the log is synced only when a lock
    /// operation commits, a segment is sealed, or the store closes. THIS IS UNSAFE for data you
    /// cannot recompute: a power loss may lose any amount of recent writes. Lock operations
    /// (and therefore save-and-release) are still synced, so fencing stays correct.
    case never

    public var description: String {
        switch self {
        case .always: return "always"
        case .interval(let ms): return "interval(\(ms) ms)"
        case .never: return "never"
        }
    }

    /// Parses `always`, `never`, `interval` (100 ms) or `interval:N`.
    public init?(parsing text: String) {
        switch text {
        case "always": self = .always
        case "never": self = .never
        case "interval": self = .interval(milliseconds: 100)
        default:
            if text.hasPrefix("interval:"), let ms = Int(text.dropFirst("interval:".count)), ms > 0 {
                self = .interval(milliseconds: ms)
            } else {
                return nil
            }
        }
    }
}

/// When compaction runs by itself.
public struct CompactionPolicy: Sendable, Equatable {
    /// Run compaction in the background. Off, space is reclaimed only by `compact()`.
    public var automatic = true
    /// Compaction starts when garbage (overwritten or deleted records) is more than this fraction
    /// of the sealed segments' bytes *and* more than `garbageBytesAllowance`; it then compacts
    /// the segments with the most garbage first. Disk use stays below
    /// max(live / (1 − garbageRatio), live + garbageBytesAllowance) plus eight segments
    /// (the active one, the next one started ahead, up to four spare files, the open compaction
    /// output, and one being compacted).
    public var garbageRatio = 0.5
    /// Garbage tolerated before compacting at all. Hot data (a player saved every few seconds)
    /// becomes garbage quickly; letting segments age until they are almost all garbage makes
    /// compaction delete or recycle them instead of copying live records. Default 1 GiB.
    public var garbageBytesAllowance: Int64 = 1 << 30
    /// How often the background worker looks for work.
    public var checkIntervalMilliseconds = 1000
    /// How long compaction keeps a tombstone (a deleted object's record) that hides nothing any
    /// more, so that a client replica offline that long still learns of the delete from the
    /// change feed. Dropping one raises its partition's feed floor: a replica whose cursor is
    /// below gets a reset. Cost: one record (about 40 bytes plus the names) and one index entry
    /// per deleted object. Default 30 days.
    public var tombstoneRetentionMilliseconds: Int64 = 30 * 24 * 3600 * 1000
    /// Most tombstones kept per partition regardless of age; the oldest beyond it are dropped
    /// (a partition that deletes heavily resets its stale replicas sooner). Default 10,000.
    public var tombstonesPerPartitionMax = 10_000

    public init() {}
}

/// How the stream log (frames, docs/streams.md) writes.
public struct StreamLogPolicy: Sendable, Equatable {
    /// When appended frames are synced. Default `interval(20 ms)`: an append returns once its
    /// frames are readable and written to the operating system (a process crash loses none);
    /// a power loss may lose the last 20 ms. An append that asks to be durable returns after
    /// the sync. `always` syncs after every write; `never` only when a file is full or the
    /// store closes.
    public var durability: Durability = .interval(milliseconds: 20)
    /// Size at which a stream log file is left for a new one (an append larger than that goes
    /// whole into a file of its own). Files are deleted whole, oldest first, once none of their
    /// frames is kept.
    public var fileBytes = 64 << 20
    /// Bytes of appends queued for the disk beyond which appends are refused (`unavailable`,
    /// "slow down"): what a disk slower than the senders may hold in memory.
    public var queueBytesMax = 64 << 20

    public init() {}
}

/// Everything `EmbeddedStore.open` needs. Only `directory` is required.
public struct EmbeddedStoreConfiguration: Sendable {
    /// The data directory; created if missing. One process at a time may open it.
    public var directory: String
    public var durability: Durability = .always
    public var limits: JellyLimits = .default
    /// Refuse every write that does not carry the partition's current lock token.
    public var requireLocks = false
    /// Size of a log segment file. Larger segments mean fewer files and seals; each new segment is
    /// zero-filled once ahead of use so that syncs do not update file metadata.
    public var segmentBytes = 64 << 20
    /// Use O_DIRECT (F_NOCACHE on macOS) for log writes where the filesystem allows it.
    public var directIO = true
    /// Upper bound of one group commit's block, in bytes (a single larger batch goes alone).
    public var groupCommitBytesMax = 8 << 20
    public var compaction = CompactionPolicy()
    public var streams = StreamLogPolicy()
    /// Threads that perform blocking value reads, off Swift's cooperative pool.
    public var readThreads = 4
    /// Memory for recently written and read values, so that loading a player saved moments ago
    /// (a reconnect, a server hop, a session that follows another) does not read the disk: the
    /// log bypasses the operating system's page cache. Default 128 MiB; 0 turns it off. Reads
    /// check every cached value against the index, so the cache never returns a stale value.
    public var valueCacheBytes = 128 << 20
    /// Values larger than this are not cached (they would push out many small ones). Default
    /// 1 MiB.
    public var valueCacheEntryBytesMax = 1 << 20
    /// Read and verify every record of every segment at open, instead of trusting the sealed
    /// segments' checksummed hint files. Slower (it reads all data); finds damage to sealed data
    /// at open rather than when the damaged record is read, compacted or checked (`jelly check`).
    public var verifyAllSegmentsOnOpen = false
    public var clock: any JellyClock = SystemClock()
    public var storage: any StorageSystem = PosixStorage()
    /// Told about every group commit and sync, on the committer thread (keep it cheap). The
    /// server feeds its metrics from it; the engine itself depends on no metrics library.
    public var commitObserver: (any CommitObserver)?

    public init(directory: String) {
        self.directory = directory
    }

    func validate() throws {
        try limits.validate()
        let largestBlock = Format.alignUp(Format.blockHeaderBytes + max(limits.batchBytesMax, groupCommitBytesMax))
        let needed = Format.segmentHeaderBytes + largestBlock + Format.pageBytes
        if segmentBytes < needed || segmentBytes > Int(UInt32.max) {
            throw JellyError(
                .invalidArgument,
                "segmentBytes \(segmentBytes) must be between \(needed) (room for the largest batch, limits.batchBytesMax = \(limits.batchBytesMax)) and 4 GiB"
            )
        }
        if case .interval(let ms) = durability, ms < 1 {
            throw JellyError(.invalidArgument, "durability interval must be at least 1 ms")
        }
        if valueCacheBytes < 0 || valueCacheEntryBytesMax < 0 {
            throw JellyError(.invalidArgument, "valueCacheBytes and valueCacheEntryBytesMax must be 0 or more (0 turns the value cache off)")
        }
        // An append larger than a file goes whole into a file of its own (the writer starts a
        // new file first), so files need not hold the largest append; offsets are 32-bit, so a
        // file plus one append must stay under 4 GiB.
        let largestAppend = limits.framesPerAppendMax * (limits.frameBytesMax + FrameFormat.recordFixedBytes + 256)
        if streams.fileBytes < 1 << 20 || streams.fileBytes + largestAppend > Int(UInt32.max) {
            throw JellyError(.invalidArgument, "streams.fileBytes \(streams.fileBytes) must be at least 1 MiB, and with the largest append (framesPerAppendMax \(limits.framesPerAppendMax) × frameBytesMax \(limits.frameBytesMax)) under 4 GiB; lower frame_bytes_max or framesPerAppendMax")
        }
        if case .interval(let ms) = streams.durability, ms < 1 {
            throw JellyError(.invalidArgument, "streams.durability interval must be at least 1 ms")
        }
        if streams.queueBytesMax < 1 {
            throw JellyError(.invalidArgument, "streams.queueBytesMax must be at least 1 (an append is refused only while more than it waits, so one larger append still goes)")
        }
        if compaction.tombstoneRetentionMilliseconds < 0 || compaction.tombstonesPerPartitionMax < 0 {
            throw JellyError(.invalidArgument, "compaction.tombstoneRetentionMilliseconds and tombstonesPerPartitionMax must not be negative")
        }
        if !(0.05...0.95).contains(compaction.garbageRatio) {
            throw JellyError(.invalidArgument, "compaction.garbageRatio must be between 0.05 and 0.95")
        }
    }
}

/// Receives the committer's events; called on the committer thread, so it must not block.
public protocol CommitObserver: Sendable {
    /// A group commit was written: how many requests and records it held and its size on disk.
    func committed(requests: Int, records: Int, blockBytes: Int)
    /// The log was synced; `nanoseconds` is how long `fdatasync` took.
    func synced(nanoseconds: UInt64)
}
