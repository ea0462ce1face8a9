import JellyCore
import Synchronization

/// What a node remembers of a partition between its own operations: the lock subject's last
/// message, and the last message of objects it has read or written. Every write publishes with
/// these sequences as JetStream expectations, so a stale entry can only cause a refused
/// publish (and a re-read), never a wrong write.
struct PartitionCache: Sendable {
    struct Object: Sendable {
        /// Stream sequence of the subject's last message (0: never written).
        var sequence: UInt64
        /// The object's version, nil when absent (never written or deleted).
        var version: UInt64?
        /// A deleted object's tombstone version (its commit's), when known.
        var tombstone: UInt64? = nil
    }
    var lockSequence: UInt64
    var lease: Lease?
    /// Keyed byte for byte, like every name ("é" precomposed and decomposed are two keys).
    var objects: [ByteName: Object] = [:]
    /// `objects` holds every object subject of the partition (after a full load), so a key
    /// not in it has never been written.
    var complete = false
}

/// Serializes a node's operations on one partition (JetStream allows one fenced publish per
/// checked subject in flight) and keeps each partition's cache. Waiters are served in order.
final class PartitionTable: Sendable {
    private struct Entry: Sendable {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var cache: PartitionCache?
    }

    /// Keyed byte for byte, like every name.
    private let entries = Mutex<[ByteName: Entry]>([:])
    /// Most partitions whose cache is kept; beyond it idle caches are dropped.
    let cachedPartitionsMax: Int

    init(cachedPartitionsMax: Int = 100_000) {
        self.cachedPartitionsMax = cachedPartitionsMax
    }

    /// Runs `body` alone among this node's operations on `partition`, with its cache.
    func exclusive<T: Sendable>(_ name: String, _ body: (inout PartitionCache?) async throws -> T) async throws -> T {
        let partition = ByteName(name)
        await acquire(partition)
        var cache = entries.withLock { $0[partition]?.cache }
        do {
            let value = try await body(&cache)
            release(partition, cache: cache)
            return value
        } catch {
            release(partition, cache: nil)
            throw error
        }
    }

    private func acquire(_ partition: ByteName) async {
        let mustWait = entries.withLock { e -> Bool in
            if e[partition]?.busy == true { return true }
            e[partition, default: Entry()].busy = true
            return false
        }
        guard mustWait else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let run = entries.withLock { e -> Bool in
                if e[partition]?.busy == true {
                    e[partition]?.waiters.append(continuation)
                    return false
                }
                e[partition, default: Entry()].busy = true
                return true
            }
            if run { continuation.resume() }
        }
    }

    private func release(_ partition: ByteName, cache: PartitionCache?) {
        let next = entries.withLock { e -> CheckedContinuation<Void, Never>? in
            guard var entry = e[partition] else { return nil }
            entry.cache = cache
            if !entry.waiters.isEmpty {
                let next = entry.waiters.removeFirst()
                e[partition] = entry
                return next
            }
            entry.busy = false
            if entry.cache == nil {
                e[partition] = nil
            } else {
                e[partition] = entry
                if e.count > cachedPartitionsMax {
                    e = e.filter { $0.value.busy || !$0.value.waiters.isEmpty }
                }
            }
            return nil
        }
        next?.resume()
    }
}
