/// Streams: a partition's named, append-only sequences of frames (docs/streams.md).
///
/// A frame is bytes with the time it was committed (the store's clock, milliseconds since
/// 1970), a sequence number that strictly increases within the stream (not necessarily by one:
/// the embedded store numbers frames store-wide, the cluster store with the JetStream stream's
/// sequence) and the object version it builds on (0: none), which is what lets the next holder
/// of a partition resume a world from its last save plus the frames after it.

/// A frame to append.
public struct FrameInput: Sendable, Hashable {
    public var value: [UInt8]
    /// The version of the save this frame builds on (0: none). Stored and returned as given.
    public var baseVersion: UInt64

    public init(_ value: [UInt8], baseVersion: UInt64 = 0) {
        self.value = value
        self.baseVersion = baseVersion
    }
}

/// A frame as stored.
public struct Frame: Sendable, Hashable {
    public var seq: UInt64
    /// When the store committed it, milliseconds since 1970.
    public var timeMilliseconds: Int64
    public var baseVersion: UInt64
    public var value: [UInt8]

    public init(seq: UInt64, timeMilliseconds: Int64, baseVersion: UInt64, value: [UInt8]) {
        self.seq = seq
        self.timeMilliseconds = timeMilliseconds
        self.baseVersion = baseVersion
        self.value = value
    }
}

/// How much of a stream the store keeps: the newest frames within all three bounds; older
/// frames are dropped as new ones arrive (and, for age, as time passes).
public struct StreamRetention: Sendable, Hashable, CustomStringConvertible {
    /// Most frames kept.
    public var frames: Int
    /// Most bytes of frame values kept.
    public var bytes: Int64
    /// Oldest frame kept, by commit time, in milliseconds.
    public var ageMilliseconds: Int64

    public init(frames: Int, bytes: Int64, ageMilliseconds: Int64) {
        self.frames = frames
        self.bytes = bytes
        self.ageMilliseconds = ageMilliseconds
    }

    public var description: String { "\(frames) frames, \(bytes) bytes, \(ageMilliseconds) ms" }

    /// Checks each bound against `limits.streamRetentionMax`.
    public func validate(limits: JellyLimits) throws {
        let max = limits.streamRetentionMax
        guard (1...max.frames).contains(frames), (1...max.bytes).contains(bytes), (1...max.ageMilliseconds).contains(ageMilliseconds) else {
            throw JellyError(.invalidArgument, "stream retention \(self) is outside the allowed range: 1 to \(max.frames) frames, 1 to \(max.bytes) bytes, 1 to \(max.ageMilliseconds) ms")
        }
    }
}

/// A page of a stream.
public struct FramePage: Sendable, Hashable {
    public var frames: [Frame]
    /// Where to read from next: one past the last frame returned, or, when none was, past
    /// everything the stream holds now (so a reader polling with it never reads a frame twice).
    public var next: UInt64
    /// The oldest frame the stream holds (0: it holds none). Above the `from` asked for, the
    /// frames in between were trimmed or dropped by retention.
    public var first: UInt64

    public init(frames: [Frame], next: UInt64, first: UInt64) {
        self.frames = frames
        self.next = next
        self.first = first
    }
}

/// The rules every backend checks before it touches a stream.
public enum StreamRules {
    /// Validates an append: names, frame count and sizes, retention. Returns the frames' bytes.
    @discardableResult
    public static func validateAppend(partition: String, stream: String, _ frames: [FrameInput], retention: StreamRetention?, limits: JellyLimits) throws -> Int {
        try validateNames(partition: partition, stream: stream, limits: limits)
        guard !frames.isEmpty else {
            throw JellyError(.invalidArgument, "an append needs at least one frame")
        }
        guard frames.count <= limits.framesPerAppendMax else {
            throw JellyError(.tooLarge, "an append of \(frames.count) frames is over the limit of \(limits.framesPerAppendMax); split it")
        }
        var total = 0
        for (i, frame) in frames.enumerated() {
            guard frame.value.count <= limits.frameBytesMax else {
                throw JellyError(.tooLarge, "frame \(i) is \(frame.value.count) bytes; the limit is \(limits.frameBytesMax) bytes (store larger state as an object)")
            }
            total += frame.value.count
        }
        try retention?.validate(limits: limits)
        return total
    }

    public static func validateNames(partition: String, stream: String, limits: JellyLimits) throws {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        try Names.validate(stream, as: .stream, maxBytes: limits.streamNameBytesMax)
    }

    public static func validateRead(partition: String, stream: String, limit: Int, limits: JellyLimits) throws {
        try validateNames(partition: partition, stream: stream, limits: limits)
        guard limit >= 1 else { throw JellyError(.invalidArgument, "limit must be at least 1") }
    }

    public static func validateWait(partition: String, stream: String, timeoutMilliseconds: Int, limits: JellyLimits) throws {
        try validateNames(partition: partition, stream: stream, limits: limits)
        guard (0...limits.changesWaitMillisecondsMax).contains(timeoutMilliseconds) else {
            throw JellyError(.invalidArgument, "wait of \(timeoutMilliseconds) ms is outside 0...\(limits.changesWaitMillisecondsMax) ms")
        }
    }

    /// The page rule shared by the backends: frames at or after `from`, oldest first, at most
    /// `limit` (clamped to `limits.framesPageMax`).
    public static func pageLimit(_ limit: Int, limits: JellyLimits) -> Int { max(1, min(limit, limits.framesPageMax)) }
}
