import JellyCore
import NATSClient
import NIOCore
import Synchronization

/// Reads that no compare-and-set protects (a load, a plain read, the change feed) must see every
/// write acknowledged before they began, even when the NATS server answering them is cut off
/// from its cluster and does not know it yet (an isolated stream leader keeps answering from its
/// stale copy for up to nats-server's lost-quorum interval, 10 s). Each such read therefore
/// carries a proof (docs/cluster.md, "Reads"):
///
/// - it is one direct get of every subject it needs (`multi_last`), answered by one replica at
///   one point of the stream; the answer says how far that point is (`Nats-UpTo-Sequence`);
/// - the point must be at or after a sequence the cluster acknowledged after the read began: the
///   lock grant a load follows, or else a *barrier*, an empty message on the shard's barrier
///   subject published for the read (a quorum write). Reads that begin while a barrier is in
///   flight share the next one (`BarrierRounds`), so a barrier costs one write per round, not
///   one per read.
///
/// An answer from behind the proof (a lagging follower, an isolated replica) is asked again
/// shortly and, when it stays behind, refused with `.unavailable`: never a stale answer.
extension ClusterStore {
    /// One partition's state read at one point of its stream.
    struct PartitionSnapshot: Sendable {
        /// Every object subject's last message, keys in byte order, tombstones as nil objects.
        var objects: [(key: String, state: PartitionCache.Object, object: StoredObject?)]
        /// The lock subject's last message (0: never written) and its lease.
        var lockSequence: UInt64
        var lease: Lease?
    }

    /// A sequence the cluster acknowledged after this call began (a barrier, shared with the
    /// plain reads of the same shard that began before it was sent).
    func barrier(_ s: PartitionSubjects) async throws -> UInt64 {
        let rounds = barrierRounds.withLock { table in
            if let rounds = table[s.stream] { return rounds }
            let rounds = BarrierRounds()
            table[s.stream] = rounds
            return rounds
        }
        let subject = s.barrier
        return try await call("writing a read barrier") {
            try await rounds.next { [js] in try await js.publish(subject).seq }
        }
    }

    /// The partition's objects and lock, at a point at or after `atLeast`.
    func partitionSnapshot(_ s: PartitionSubjects, atLeast: UInt64) async throws -> PartitionSnapshot {
        let messages: [StoredMessage]
        do {
            messages = try await provenLastMessages(s.stream, [s.objectPrefix + ">", s.lock, s.barrier], atLeast: atLeast)
        } catch is TooManySubjects {
            messages = try await provenLastMessagesOfLargePartition(s, atLeast: atLeast)
        }
        let now = clock.nowMilliseconds()
        var snapshot = PartitionSnapshot(objects: [], lockSequence: 0, lease: nil)
        for m in messages {
            if m.subject == s.lock {
                snapshot.lockSequence = m.sequence
                snapshot.lease = try Self.lease(of: m, now: now, limits: limits)
            } else if let key = s.key(ofSubject: m.subject) {
                let (state, object) = try Self.object(of: m, key: key)
                snapshot.objects.append((key, state, object))
            }
        }
        snapshot.objects.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return snapshot
    }

    /// One subject's last message (nil: none), at a point at or after a barrier.
    func freshLastMessage(_ s: PartitionSubjects, subject: String) async throws -> StoredMessage? {
        let atLeast = try await barrier(s)
        return try await provenLastMessages(s.stream, [subject, s.barrier], atLeast: atLeast).first { $0.subject == subject }
    }

    /// How long a read waits for the replica answering it to reach its proof before refusing
    /// (from its first answer; the requests' own time counts).
    static let freshReadWaitMilliseconds = 2000

    /// `JetStream.lastMessages` until the answering replica has reached `atLeast` (a follower
    /// applies a write a moment after its acknowledgement), reading on when the answer was cut
    /// at the server's size cap. Later pages win for a subject read twice.
    func provenLastMessages(_ stream: String, _ filters: [String], atLeast: UInt64) async throws -> [StoredMessage] {
        var pause = 1
        var answer = try await lastMessages(stream, filters)
        let deadline = ContinuousClock.now + .milliseconds(Self.freshReadWaitMilliseconds)
        while answer.upToSequence < atLeast {
            guard ContinuousClock.now < deadline else {
                throw JellyError(.unavailable, "the NATS server this node reads from has \(stream) only up to sequence \(answer.upToSequence), behind a write at \(atLeast) that this read must see (cut off from its cluster, or far behind); retry, or through another node")
            }
            try await Task.sleep(for: .milliseconds(pause))
            pause = min(pause * 2, 100)
            answer = try await lastMessages(stream, filters)
        }
        guard answer.pending > 0 else { return answer.messages }
        var bySubject: [String: StoredMessage] = [:]
        for m in answer.messages { bySubject[m.subject] = m }
        while answer.pending > 0, let last = answer.messages.last {
            answer = try await lastMessages(stream, filters, from: last.sequence + 1)
            for m in answer.messages { bySubject[m.subject] = m }
        }
        return bySubject.values.sorted { $0.sequence < $1.sequence }
    }

    /// More subjects match than one direct get may answer (nats-server's 413).
    struct TooManySubjects: Error {}

    private func lastMessages(_ stream: String, _ filters: [String], from: UInt64 = 0) async throws -> LastMessages {
        do {
            return try await whileElecting { try await js.lastMessages(stream: stream, subjects: filters, from: from) }
        } catch let e as JetStreamAPIError where e.code == 413 {
            throw TooManySubjects()
        } catch {
            throw Self.mapped(error, "reading \(stream)")
        }
    }

    /// A partition with more subjects than one direct get may match: its subjects listed through
    /// the stream leader (whose stream must reach `atLeast` too), then read in chunks.
    private func provenLastMessagesOfLargePartition(_ s: PartitionSubjects, atLeast: UInt64) async throws -> [StoredMessage] {
        let (listed, listedUpTo) = try await call("listing a partition") { try await js.subjectsWithLastSequence(stream: s.stream, filter: s.objectPrefix + ">") }
        guard listedUpTo >= atLeast else {
            throw JellyError(.unavailable, "the stream leader of \(s.stream) is at sequence \(listedUpTo), behind a write at \(atLeast) that this read must see (cut off from its cluster?); retry")
        }
        var subjects = Array(listed.keys) + [s.lock]
        subjects.sort()
        let chunk = JetStream.lastMessagesMax - 2
        var out: [StoredMessage] = []
        var index = 0
        while index < subjects.count {
            let slice = Array(subjects[index..<min(index + chunk, subjects.count)])
            index += slice.count
            out += try await provenLastMessages(s.stream, slice + [s.barrier], atLeast: atLeast).filter { $0.subject != s.barrier }
        }
        return out
    }
}

/// Barrier writes shared by the reads waiting for one: a read may use a barrier only if it was
/// sent after the read began, so a read arriving while one is in flight joins the round after it.
/// At most two rounds exist per shard: the one in flight and the one that follows it.
final class BarrierRounds: Sendable {
    private struct Round: Sendable {
        var id: UInt64
        var task: Task<UInt64, any Error>
    }
    private struct State: Sendable {
        var sending: Round?
        var following: Round?
        var nextID: UInt64 = 1
    }
    private let state = Mutex(State())

    /// The sequence of a barrier sent after this call began.
    func next(_ publish: @escaping @Sendable () async throws -> UInt64) async throws -> UInt64 {
        let task: Task<UInt64, any Error> = state.withLock { s in
            if let following = s.following { return following.task }
            let id = s.nextID
            s.nextID += 1
            let previous = s.sending?.task
            let task = Task<UInt64, any Error> { [self] in
                _ = try? await previous?.value
                defer { finished(id) }
                return try await publish()
            }
            if previous == nil { s.sending = Round(id: id, task: task) } else { s.following = Round(id: id, task: task) }
            return task
        }
        return try await task.value
    }

    /// Round `id` is done: the round that followed it (already waiting to send) is now in flight.
    private func finished(_ id: UInt64) {
        state.withLock { s in
            guard s.sending?.id == id else { return }
            s.sending = s.following
            s.following = nil
        }
    }
}
