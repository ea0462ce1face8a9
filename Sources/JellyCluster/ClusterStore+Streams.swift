import Foundation
import JellyCore
import NATSClient
import NIOCore

/// What a node remembers of a stream between calls.
struct StreamNodeState: Sendable {
    var retention: StreamRetention
    var readAtMilliseconds: Int64
    /// Frames appended through this node since it last enforced the retention.
    var appendedSincePurge = 0
}

/// Streams (docs/streams.md) on the cluster store. Frames are messages of the partition's
/// shard stream, one subject per frame (`Subjects.swift`), so an append is one atomic batch
/// ending with the same fence marker as a save: the stream leader refuses a stale holder's
/// frames exactly as it refuses its saves. A frame's sequence is its JetStream sequence; its
/// age bound is JetStream's per-message TTL; the frame and byte bounds are enforced with
/// JetStream purges after every tenth of the frame bound appended through a node.
extension ClusterStore {
    /// How long a node trusts a stream's retention it read (another node may change it).
    static let retentionCacheMilliseconds: Int64 = 5000

    @discardableResult
    public func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool
    ) async throws -> [UInt64] {
        let limits = self.limits
        try StreamRules.validateAppend(partition: partition, stream: stream, frames, retention: retention, limits: limits)
        guard frames.count < JetStream.atomicBatchMessagesMax else {
            throw JellyError(.tooLarge, "an append of \(frames.count) frames is over the cluster store's limit of \(JetStream.atomicBatchMessagesMax - 1); split it")
        }
        try checkReady()
        let s = subjects(partition)
        let kept = try await streamRetention(s, stream, setting: retention)
        let ttl = "\(max(1, (kept.ageMilliseconds + 999) / 1000))s"
        let seqs = try await decided(partition, what: "stream \(Names.quoted(stream)) of partition \(Names.quoted(partition))") { cache -> [UInt64] in
            let (c, fromCache) = try await lockState(s, cached: cache)
            cache = c
            if let error = LeaseRules.checkWrite(token: lockToken, current: c.lease, partition: partition, now: clock.nowMilliseconds(), requireLocks: false) {
                throw fromCache ? StaleCache() : error
            }
            let now = String(clock.nowMilliseconds())
            var messages: [JetStream.BatchMessage] = []
            messages.reserveCapacity(frames.count + 1)
            for frame in frames {
                var h = NATSHeaders()
                h[Header.frameTime] = now
                if frame.baseVersion != 0 { h[Header.frameBase] = String(frame.baseVersion) }
                h[Header.ttl] = ttl
                let unique = frameTag + "-" + String(frameCounter.wrappingAdd(1, ordering: .relaxed).newValue, radix: 36)
                messages.append(.init(subject: s.frame(stream, unique: unique), headers: h, payload: ByteBuffer(bytes: frame.value)))
            }
            var fence = NATSHeaders()
            fence[Header.expectedSequence] = String(c.lockSequence)
            fence[Header.expectedSubject] = s.lock
            messages.append(.init(subject: s.fence, headers: fence))
            let ack = try await whileElecting { try await js.publishAtomic(messages) }
            let first = ack.seq - UInt64(messages.count - 1)
            return (0..<UInt64(frames.count)).map { first + $0 }
        }
        // The frame and byte bounds, enforced by a purge now and then (the age bound is the TTL).
        let averageBytes = max(1, frames.reduce(0) { $0 + $1.value.count } / frames.count)
        let due = streamStates.withLock { states -> Bool in
            let id = s.frames(stream)
            states[id]?.appendedSincePurge += frames.count
            guard let state = states[id], state.appendedSincePurge >= max(1, kept.frames / 10) else { return false }
            states[id]?.appendedSincePurge = 0
            return true
        }
        if due {
            let keep = UInt64(max(1, min(Int64(kept.frames), kept.bytes / Int64(averageBytes))))
            _ = try await call("enforcing the retention of stream \(Names.quoted(stream))") { try await js.purge(stream: s.stream, filter: s.frames(stream), keep: keep) }
        }
        return seqs
    }

    /// The stream's retention: the cached one while fresh, else its retain subject's (or the
    /// default). With `setting` different from it, stores `setting` and enforces it at once.
    func streamRetention(_ s: PartitionSubjects, _ stream: String, setting: StreamRetention?) async throws -> StreamRetention {
        let id = s.frames(stream)
        let now = clock.nowMilliseconds()
        var current = streamStates.withLock { states in
            states[id].flatMap { now - $0.readAtMilliseconds < Self.retentionCacheMilliseconds ? $0.retention : nil }
        }
        if current == nil {
            let m = try await call("reading the retention of stream \(Names.quoted(stream))") { try await js.lastMessage(stream: s.stream, subject: s.retention(stream)) }
            current = m.flatMap { try? JSONDecoder().decode(RetentionRecord.self, from: Data($0.payload)) }.map {
                StreamRetention(frames: $0.frames, bytes: $0.bytes, ageMilliseconds: $0.age_ms)
            } ?? limits.streamRetentionDefault
        }
        var kept = current ?? limits.streamRetentionDefault
        var enforce = false
        if let setting, setting != kept {
            let body = try JSONEncoder().encode(RetentionRecord(frames: setting.frames, bytes: setting.bytes, age_ms: setting.ageMilliseconds))
            _ = try await call("storing the retention of stream \(Names.quoted(stream))") { try await js.publish(s.retention(stream), payload: ByteBuffer(bytes: body)) }
            kept = setting
            enforce = true
        }
        streamStates.withLock { states in
            let appended = states[id]?.appendedSincePurge ?? 0
            states[id] = StreamNodeState(retention: kept, readAtMilliseconds: now, appendedSincePurge: enforce ? kept.frames : appended)
        }
        return kept
    }

    public func readFrames(partition: String, stream: String, from: UInt64, limit: Int) async throws -> FramePage {
        try StreamRules.validateRead(partition: partition, stream: stream, limit: limit, limits: limits)
        try checkReady()
        let limit = StreamRules.pageLimit(limit, limits: limits)
        let s = subjects(partition)
        let filter = s.frames(stream)
        let what = "reading stream \(Names.quoted(stream)) of partition \(Names.quoted(partition))"
        guard let oldest = try await call(what, { try await js.message(stream: s.stream, from: 1, subject: filter) }) else {
            return FramePage(frames: [], next: from, first: 0)
        }
        var frames: [Frame] = []
        var next = max(from, 1)
        var m: StoredMessage? = oldest.sequence >= next ? oldest : try await call(what, { try await js.message(stream: s.stream, from: next, subject: filter) })
        while let message = m {
            frames.append(try Self.frame(of: message))
            next = message.sequence + 1
            if frames.count >= limit { break }
            m = try await call(what, { try await js.message(stream: s.stream, from: next, subject: filter) })
        }
        return FramePage(frames: frames, next: frames.isEmpty ? from : next, first: oldest.sequence)
    }

    static func frame(of m: StoredMessage) throws -> Frame {
        guard let time = m.headers?[Header.frameTime].flatMap({ Int64($0) }) else {
            throw JellyError(.corruption, "the message at sequence \(m.sequence) on \(m.subject) is not a Jelly frame (no \(Header.frameTime) header)")
        }
        return Frame(seq: m.sequence, timeMilliseconds: time, baseVersion: m.headers?[Header.frameBase].flatMap { UInt64($0) } ?? 0, value: m.payload)
    }

    public func waitForFrames(partition: String, stream: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool {
        try StreamRules.validateWait(partition: partition, stream: stream, timeoutMilliseconds: timeoutMilliseconds, limits: limits)
        try checkReady()
        let s = subjects(partition)
        let filter = s.frames(stream)
        let subscription = try connection.subscribe(filter)
        defer { subscription.unsubscribe() }
        // Subscribed first, then read, so an append in between is not missed.
        if try await call("reading a stream", { try await js.message(stream: s.stream, from: after + 1, subject: filter) }) != nil { return true }
        return await Self.firstMessage([subscription], timeoutMilliseconds: timeoutMilliseconds)
    }

    /// The lease is checked, then the frames purged: a purge carries no expectation, so a trim
    /// racing a transfer through another node may still land (a trim drops, never adds, data).
    public func trimStream(partition: String, stream: String, before: UInt64?, lockToken: LockToken?) async throws {
        try StreamRules.validateNames(partition: partition, stream: stream, limits: limits)
        try checkReady()
        let s = subjects(partition)
        try await decided(partition, what: "stream \(Names.quoted(stream)) of partition \(Names.quoted(partition))") { cache in
            let (c, fromCache) = try await lockState(s, cached: cache)
            cache = c
            if let error = LeaseRules.checkWrite(token: lockToken, current: c.lease, partition: partition, now: clock.nowMilliseconds(), requireLocks: false) {
                throw fromCache ? StaleCache() : error
            }
            if let before {
                _ = try await js.purge(stream: s.stream, filter: s.frames(stream), before: before)
            } else {
                _ = try await js.purge(stream: s.stream, filter: s.frames(stream))
                _ = try await js.purge(stream: s.stream, filter: s.retention(stream))
                streamStates.withLock { _ = $0.removeValue(forKey: s.frames(stream)) }
            }
        }
    }
}

/// A retain subject's message.
struct RetentionRecord: Codable {
    var frames: Int
    var bytes: Int64
    var age_ms: Int64
}
