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

    /// Appends the frames above the floor and the last sequence; returns those added.
    mutating func add(_ new: [FrameEntry], overhead: Int64) -> [FrameEntry] {
        var added: [FrameEntry] = []
        added.reserveCapacity(new.count)
        for e in new where e.seq >= floor && e.seq > last {
            entries.append(e)
            bytes += Int64(e.recordLength) - overhead
            last = e.seq
            added.append(e)
        }
        return added
    }

    /// Drops frames from the oldest while `beyond(self, oldest)` holds; returns them.
    mutating func dropOldest(overhead: Int64, while beyond: (StreamState, FrameEntry) -> Bool) -> [FrameEntry] {
        var dropped: [FrameEntry] = []
        while head < entries.count, beyond(self, entries[head]) {
            let e = entries[head]
            head += 1
            bytes -= Int64(e.recordLength) - overhead
            floor = max(floor, e.seq + 1)
            dropped.append(e)
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: false)
            head = 0
        } else if head >= 1024 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return dropped
    }

    /// Drops the frames below `floor` and keeps the floor at least there; returns those dropped.
    mutating func trim(below floor: UInt64, overhead: Int64) -> [FrameEntry] {
        let dropped = dropOldest(overhead: overhead) { _, e in e.seq < floor }
        self.floor = max(self.floor, floor)
        return dropped
    }

    /// Points frame `seq`, if still kept at (from, offset), at (to, newOffset); its record length.
    mutating func relocate(seq: UInt64, from: UInt32, offset: UInt32, to: UInt32, newOffset: UInt32) -> Int64? {
        var lo = head, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].seq < seq { lo = mid + 1 } else { hi = mid }
        }
        guard lo < entries.count, entries[lo].seq == seq, entries[lo].segment == from, entries[lo].offset == offset else { return nil }
        entries[lo].segment = to
        entries[lo].offset = newOffset
        return Int64(entries[lo].recordLength)
    }
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

    /// Adds written frames (in sequence order) and applies the stream's retention. Streams are
    /// changed in place (`streams[key, default:]`): a copy out of the dictionary and back would
    /// copy the stream's whole entry array on every append.
    mutating func publish(_ key: StreamKey, _ new: [FrameEntry], now: Int64) {
        let overhead = Int64(Self.overhead(key))
        let added = streams[key, default: StreamState()].add(new, overhead: overhead)
        for e in added {
            liveBySegment[e.segment, default: 0] += 1
            liveBytesBySegment[e.segment, default: 0] += Int64(e.recordLength)
        }
        enforce(key, now: now)
    }

    /// Drops the stream's frames beyond its retention, oldest first. Returns how many.
    @discardableResult
    mutating func enforce(_ key: StreamKey, now: Int64) -> Int {
        let r = streams[key]?.retention ?? defaults
        let overhead = Int64(Self.overhead(key))
        let dropped = streams[key]?.dropOldest(overhead: overhead) { s, e in
            s.count > r.frames || s.bytes > r.bytes || now - e.time > r.ageMilliseconds
        } ?? []
        forget(dropped)
        return dropped.count
    }

    /// Takes dropped frames off their files' counts.
    private mutating func forget(_ dropped: [FrameEntry]) {
        for e in dropped {
            liveBySegment[e.segment, default: 1] -= 1
            liveBytesBySegment[e.segment, default: Int64(e.recordLength)] -= Int64(e.recordLength)
        }
    }

    /// Drops frames below `before` (at most up to the next sequence to issue). Returns the floor.
    @discardableResult
    mutating func trim(_ key: StreamKey, before: UInt64) -> UInt64 {
        let floor = min(before, nextSeq)
        let overhead = Int64(Self.overhead(key))
        forget(streams[key, default: StreamState()].trim(below: floor, overhead: overhead))
        return streams[key]?.floor ?? floor
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
        guard let length = streams[key]?.relocate(seq: seq, from: from, offset: offset, to: to, newOffset: newOffset) else { return }
        liveBySegment[from, default: 1] -= 1
        liveBytesBySegment[from, default: length] -= length
        liveBySegment[to, default: 0] += 1
        liveBytesBySegment[to, default: 0] += length
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
