import JellyCore

/// A stream of a partition, as the in-memory table names it.
struct StreamKey: Hashable, Sendable {
    var partition: ByteName
    var stream: ByteName

    /// The name waiters are registered under (`\0` cannot occur in a name).
    var waitName: String { partition.string + "\u{0}" + stream.string }
}

/// Where a kept frame is: 40 bytes of memory per frame.
struct FrameEntry: Sendable, Equatable {
    var seq: UInt64
    var time: Int64
    var base: UInt64
    var segment: UInt32
    var offset: UInt32
    /// The record's length; the value is `recordLength - overhead` of its stream.
    var recordLength: UInt32
}

/// One stream's kept frames, oldest first, and its settings.
struct StreamState: Sendable {
    /// nil: the store's default.
    var retention: StreamRetention?
    var entries: [FrameEntry] = []
    /// entries[..<head] are dropped (removed from the array in chunks).
    var head = 0
    /// Bytes of the kept frames' values.
    var bytes: Int64 = 0
    /// Frames below this sequence are gone.
    var floor: UInt64 = 0
    /// The highest sequence ever appended (published) to the stream.
    var last: UInt64 = 0
    /// The newest frame's time, so that a stream's times never go backwards with the clock.
    var lastTime: Int64 = 0

    var count: Int { entries.count - head }
    var kept: ArraySlice<FrameEntry> { entries[head...] }
}

/// Every stream's kept frames and the live frame count of each stream log file: the pure
/// state of the stream log (no I/O), under the log's lock. Retention and trims act here.
struct FrameTable: Sendable {
    var streams: [StreamKey: StreamState] = [:]
    /// Kept frames per file; a file whose count is 0 (and every older one's) can be deleted.
    var liveBySegment: [UInt32: Int] = [:]
    /// Bytes of the kept frames' records per file, for deciding when to move them forward.
    var liveBytesBySegment: [UInt32: Int64] = [:]
    /// The next sequence to issue (store-wide).
    var nextSeq: UInt64 = 1
    var defaults: StreamRetention

    init(defaults: StreamRetention) { self.defaults = defaults }

    static func overhead(_ key: StreamKey) -> Int { FrameFormat.recordFixedBytes + key.partition.string.utf8.count + key.stream.string.utf8.count }

    func retention(_ key: StreamKey) -> StreamRetention { streams[key]?.retention ?? defaults }

    /// Adds written frames (in sequence order) and applies the stream's retention.
    mutating func publish(_ key: StreamKey, _ new: [FrameEntry], now: Int64) {
        let overhead = Int64(Self.overhead(key))
        var s = streams[key] ?? StreamState()
        for e in new where e.seq >= s.floor && e.seq > s.last {
            s.entries.append(e)
            s.bytes += Int64(e.recordLength) - overhead
            s.last = e.seq
            liveBySegment[e.segment, default: 0] += 1
            liveBytesBySegment[e.segment, default: 0] += Int64(e.recordLength)
        }
        streams[key] = s
        enforce(key, now: now)
    }

    /// Drops the stream's frames beyond its retention, oldest first. Returns how many.
    @discardableResult
    mutating func enforce(_ key: StreamKey, now: Int64) -> Int {
        guard var s = streams[key] else { return 0 }
        let r = s.retention ?? defaults
        let overhead = Int64(Self.overhead(key))
        var dropped = 0
        while s.head < s.entries.count {
            let e = s.entries[s.head]
            guard s.count > r.frames || s.bytes > r.bytes || now - e.time > r.ageMilliseconds else { break }
            drop(&s, e, overhead)
            dropped += 1
        }
        compactEntries(&s)
        streams[key] = s
        return dropped
    }

    private mutating func drop(_ s: inout StreamState, _ e: FrameEntry, _ overhead: Int64) {
        s.head += 1
        s.bytes -= Int64(e.recordLength) - overhead
        s.floor = max(s.floor, e.seq + 1)
        liveBySegment[e.segment, default: 1] -= 1
        liveBytesBySegment[e.segment, default: Int64(e.recordLength)] -= Int64(e.recordLength)
    }

    /// Every kept frame in file `segment`: its stream, sequence, offset and length.
    func kept(in segment: UInt32) -> [(key: StreamKey, seq: UInt64, offset: UInt32, length: UInt32)] {
        var out: [(key: StreamKey, seq: UInt64, offset: UInt32, length: UInt32)] = []
        for (key, s) in streams {
            for e in s.kept where e.segment == segment { out.append((key, e.seq, e.offset, e.recordLength)) }
        }
        return out.sorted { $0.offset < $1.offset }
    }

    /// Frame `seq` of `key`, if still kept at (from, offset), now lives at (to, newOffset).
    mutating func move(_ key: StreamKey, seq: UInt64, from: UInt32, offset: UInt32, to: UInt32, newOffset: UInt32) {
        guard var s = streams[key] else { return }
        var lo = s.head, hi = s.entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if s.entries[mid].seq < seq { lo = mid + 1 } else { hi = mid }
        }
        guard lo < s.entries.count, s.entries[lo].seq == seq, s.entries[lo].segment == from, s.entries[lo].offset == offset else { return }
        let length = Int64(s.entries[lo].recordLength)
        s.entries[lo].segment = to
        s.entries[lo].offset = newOffset
        streams[key] = s
        liveBySegment[from, default: 1] -= 1
        liveBytesBySegment[from, default: length] -= length
        liveBySegment[to, default: 0] += 1
        liveBytesBySegment[to, default: 0] += length
    }

    private func compactEntries(_ s: inout StreamState) {
        if s.head == s.entries.count {
            s.entries.removeAll(keepingCapacity: false)
            s.head = 0
        } else if s.head >= 1024 && s.head * 2 >= s.entries.count {
            s.entries.removeFirst(s.head)
            s.head = 0
        }
    }

    /// Drops frames below `before` (at most up to the next sequence to issue). Returns the floor.
    @discardableResult
    mutating func trim(_ key: StreamKey, before: UInt64) -> UInt64 {
        let floor = min(before, nextSeq)
        var s = streams[key] ?? StreamState()
        let overhead = Int64(Self.overhead(key))
        while s.head < s.entries.count, s.entries[s.head].seq < floor { drop(&s, s.entries[s.head], overhead) }
        s.floor = max(s.floor, floor)
        compactEntries(&s)
        streams[key] = s
        return s.floor
    }

    /// Removes the stream: every frame, and its retention. Returns the floor its record carries.
    mutating func remove(_ key: StreamKey) -> UInt64 {
        let floor = trim(key, before: nextSeq)
        streams[key]?.retention = nil
        forgetIfEmpty(key)
        return floor
    }

    /// Sets the stream's retention (nil: the default) and applies it.
    mutating func setRetention(_ key: StreamKey, _ retention: StreamRetention?, now: Int64) {
        streams[key, default: StreamState()].retention = retention == defaults ? nil : retention
        enforce(key, now: now)
    }

    /// A stream with nothing kept and the default retention is the same as no stream.
    private mutating func forgetIfEmpty(_ key: StreamKey) {
        if let s = streams[key], s.count == 0, s.retention == nil { streams[key] = nil }
    }

    /// Applies the age bound to every stream.
    mutating func expire(now: Int64) {
        for key in Array(streams.keys) {
            enforce(key, now: now)
            forgetIfEmpty(key)
        }
    }

    /// Frames at or after `from`, at most `limit`; the page's `next` and `first`.
    func page(_ key: StreamKey, from: UInt64, limit: Int) -> (entries: [FrameEntry], next: UInt64, first: UInt64) {
        guard let s = streams[key], s.count > 0 else {
            return ([], max(from, (streams[key]?.last ?? 0) + 1), 0)
        }
        let kept = s.kept
        // Binary search for the first frame at or after `from`.
        var lo = kept.startIndex, hi = kept.endIndex
        while lo < hi {
            let mid = (lo + hi) / 2
            if kept[mid].seq < from { lo = mid + 1 } else { hi = mid }
        }
        let slice = kept[lo..<min(lo + limit, kept.endIndex)]
        let next = slice.last.map { $0.seq + 1 } ?? max(from, s.last + 1)
        return (Array(slice), next, kept[kept.startIndex].seq)
    }

    /// The highest sequence appended to the stream (0: none).
    func last(_ key: StreamKey) -> UInt64 { streams[key]?.last ?? 0 }

    /// Streams whose retention is not the default, for the checkpoint at the start of a file.
    var customRetentions: [(StreamKey, StreamRetention)] {
        streams.compactMap { k, s in s.retention.map { (k, $0) } }
    }
}
