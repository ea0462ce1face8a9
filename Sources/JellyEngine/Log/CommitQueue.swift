import JellyCore

/// How a commit reports back: an awaiting writer, or a callback (tests).
enum CommitCompletion: Sendable {
    case continuation(UnsafeContinuation<UInt64, any Error>)
    case callback(@Sendable (Result<UInt64, JellyError>) -> Void)

    func finish(_ result: Result<UInt64, JellyError>) {
        switch (self, result) {
        case (.continuation(let c), .success(let v)): c.resume(returning: v)
        case (.continuation(let c), .failure(let e)): c.resume(throwing: e)
        case (.callback(let f), _): f(result)
        }
    }
}

/// One atomic commit: encoded, versioned records and what they tell the index.
struct CommitRequest: Sendable {
    var records: EncodedRecords
    /// Parallel to `records.records`: false for records not to be written (deletes of missing
    /// objects).
    var include: [Bool]
    /// Parallel to `records.records`; their `version` is not set: the commit's is `version`.
    var metas: [RecordMeta]
    /// The commit's version, carried by every record of it.
    var version: UInt64
    /// Lock operations are synced in every durability mode.
    var needsSync: Bool
    var completion: CommitCompletion
    /// The partition's lease before this request changed it at queuing (a lock operation, a
    /// save that releases): restored if the request fails without poisoning the store.
    var leaseBefore: (partition: ByteName, lease: Lease?)?

    var payloadBytes: Int {
        var n = 0
        for (i, r) in records.records.enumerated() where include[i] { n += r.length }
        return n
    }
}

/// The commit queue as a pure state machine: writers enqueue under the store's lock; the
/// committer takes groups of requests in order, writes each group as one block with one sync,
/// and reports. The queue decides only who goes next and when the committer must be woken.
struct CommitQueue: Sendable {
    private(set) var waiting: [CommitRequest] = []
    private(set) var waitingBytes = 0
    /// True while the committer sleeps and must be woken by the next enqueue.
    private(set) var committerSleeping = false
    private(set) var closing = false

    enum EnqueueAction: Equatable { case none, wakeCommitter }
    enum NextStep { case group([CommitRequest]), sleep, exit }

    mutating func enqueue(_ request: CommitRequest) -> EnqueueAction {
        waiting.append(request)
        waitingBytes += request.payloadBytes
        if committerSleeping {
            committerSleeping = false
            return .wakeCommitter
        }
        return .none
    }

    /// The next group: requests in order while their payload fits `maxBytes` (a single larger
    /// request goes alone). With nothing waiting, the committer sleeps, or exits once closing.
    mutating func next(maxBytes: Int) -> NextStep {
        if waiting.isEmpty {
            if closing { return .exit }
            committerSleeping = true
            return .sleep
        }
        var bytes = 0
        var count = 0
        for request in waiting {
            let size = request.payloadBytes
            if count > 0 && bytes + size > maxBytes { break }
            bytes += size
            count += 1
        }
        let group: [CommitRequest]
        if count == waiting.count {
            group = waiting
            waiting.removeAll(keepingCapacity: true)
        } else {
            group = Array(waiting.prefix(count))
            waiting.removeFirst(count)
        }
        waitingBytes -= bytes
        return .group(group)
    }

    /// Stops taking new requests; the committer drains what is queued, then exits.
    mutating func close() -> EnqueueAction {
        closing = true
        if committerSleeping {
            committerSleeping = false
            return .wakeCommitter
        }
        return .none
    }

    /// Removes everything waiting (when the store fails), for the caller to fail.
    mutating func drain() -> [CommitRequest] {
        let all = waiting
        waiting.removeAll()
        waitingBytes = 0
        return all
    }
}
