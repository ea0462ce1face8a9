/// Every bound the store enforces, in one place. The defaults are documented in
/// `docs/limits.md`; a request that exceeds one fails with `.invalidArgument` or `.tooLarge`
/// and writes nothing.
public struct JellyLimits: Sendable, Equatable {
    /// Largest partition name, in UTF-8 bytes. Fixed by the format (one length byte): at most 128.
    public var partitionBytesMax: Int = 128
    /// Largest object key, in UTF-8 bytes. At most 512.
    public var keyBytesMax: Int = 512
    /// Largest lock owner name, in UTF-8 bytes. At most 128.
    public var ownerBytesMax: Int = 128
    /// Largest content type, in bytes of printable ASCII. At most 255.
    public var contentTypeBytesMax: Int = 255
    /// Largest value, in bytes. Default 16 MiB; at most 256 MiB.
    public var valueBytesMax: Int = 16 << 20
    /// Most operations in one atomic batch.
    public var batchOperationsMax: Int = 1000
    /// Largest atomic batch, in bytes as `WriteRules.batchBytes` counts them: values, names and
    /// content types plus 40 bytes of framing per object. Default 32 MiB; must be at least
    /// `valueBytesMax` plus 2 KiB.
    public var batchBytesMax: Int = 32 << 20
    /// Shortest and longest lock lease.
    public var lockTTLMillisecondsMin: Int64 = 100
    public var lockTTLMillisecondsMax: Int64 = 24 * 3600 * 1000
    /// Most objects returned by one list call.
    public var listLimitMax: Int = 1000
    /// Most changes in one page of a partition's change feed (a page never splits a commit,
    /// so it may hold up to one batch more).
    public var changesLimitMax: Int = 1000
    /// Longest a change feed request may wait for a change (long-poll), in milliseconds.
    public var changesWaitMillisecondsMax: Int = 60_000
    /// Most mutations in one client push (`sync`). A push also writes up to three system
    /// records in the same batch, so at most `batchOperationsMax - 3`.
    public var syncMutationsMax: Int = 500
    /// Sync clients a partition remembers; beyond it the one that pushed least recently is
    /// forgotten (docs/sync.md says what that costs it).
    public var syncClientsMax: Int = 64
    /// Results a partition keeps per sync client, for answering a retried push: at least
    /// `syncMutationsMax`.
    public var syncResultsKept: Int = 1000
    /// Longest sync client id, in UTF-8 bytes (the same characters as a partition name).
    public var clientIDBytesMax: Int = 128
    /// Longest stream name, in UTF-8 bytes (the same characters as a partition name). At most 128.
    public var streamNameBytesMax: Int = 128
    /// Largest frame, in bytes. Default 64 KiB (a frame is one moment of an entity's state;
    /// larger state belongs in an object).
    public var frameBytesMax: Int = 64 << 10
    /// Most frames in one atomic append.
    public var framesPerAppendMax: Int = 1000
    /// Most frames returned by one read of a stream.
    public var framesPageMax: Int = 1000
    /// What a stream keeps when its creator names no retention (docs/streams.md): 100,000
    /// frames, 64 MiB, 7 days, whichever is reached first. The embedded store holds 40 bytes of
    /// memory per kept frame, so the default costs at most 4 MB per stream.
    public var streamRetentionDefault = StreamRetention(frames: 100_000, bytes: 64 << 20, ageMilliseconds: 7 * 24 * 3600 * 1000)
    /// The largest retention a stream may ask for.
    public var streamRetentionMax = StreamRetention(frames: 10_000_000, bytes: 16 << 30, ageMilliseconds: 366 * 24 * 3600 * 1000)

    public init() {}

    public static let `default` = JellyLimits()

    /// Checks that the limits fit the on-disk format and each other.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw JellyError(.invalidArgument, "invalid limits: \(message)") }
        }
        try check((1...128).contains(partitionBytesMax), "partitionBytesMax must be 1...128")
        try check((1...512).contains(keyBytesMax), "keyBytesMax must be 1...512")
        try check((1...128).contains(ownerBytesMax), "ownerBytesMax must be 1...128")
        try check((0...255).contains(contentTypeBytesMax), "contentTypeBytesMax must be 0...255")
        try check((1...(256 << 20)).contains(valueBytesMax), "valueBytesMax must be 1 byte...256 MiB")
        try check(batchOperationsMax >= 1, "batchOperationsMax must be at least 1")
        try check(batchBytesMax >= valueBytesMax + 2048, "batchBytesMax must be at least valueBytesMax + 2 KiB")
        try check(batchBytesMax <= 512 << 20, "batchBytesMax must be at most 512 MiB")
        try check(lockTTLMillisecondsMin >= 1 && lockTTLMillisecondsMin <= lockTTLMillisecondsMax, "lock TTL range is empty")
        try check(listLimitMax >= 1, "listLimitMax must be at least 1")
        try check(changesLimitMax >= 1, "changesLimitMax must be at least 1")
        try check(changesWaitMillisecondsMax >= 0, "changesWaitMillisecondsMax must not be negative")
        try check(syncMutationsMax >= 1 && syncMutationsMax <= batchOperationsMax - 3, "syncMutationsMax must be 1...batchOperationsMax - 3")
        try check(syncClientsMax >= 1, "syncClientsMax must be at least 1")
        try check(syncResultsKept >= syncMutationsMax, "syncResultsKept must be at least syncMutationsMax")
        try check((1...128).contains(clientIDBytesMax), "clientIDBytesMax must be 1...128")
        try check((1...128).contains(streamNameBytesMax), "streamNameBytesMax must be 1...128")
        try check((1...(16 << 20)).contains(frameBytesMax), "frameBytesMax must be 1 byte...16 MiB")
        try check(framesPerAppendMax >= 1 && framesPageMax >= 1, "framesPerAppendMax and framesPageMax must be at least 1")
        try check(streamRetentionMax.frames >= 1 && streamRetentionMax.bytes >= 1 && streamRetentionMax.ageMilliseconds >= 1, "streamRetentionMax must be at least 1 in each bound")
        try streamRetentionDefault.validate(limits: self)
    }

    /// Throws `.invalidArgument` when `ttl` is outside the lock TTL range.
    public func checkTTL(_ ttl: Int64) throws {
        guard ttl >= lockTTLMillisecondsMin && ttl <= lockTTLMillisecondsMax else {
            throw JellyError(
                .invalidArgument,
                "lock ttl \(ttl) ms is outside the allowed range \(lockTTLMillisecondsMin)...\(lockTTLMillisecondsMax) ms"
            )
        }
    }
}
