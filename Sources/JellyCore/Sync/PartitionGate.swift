import Synchronization

/// Runs async work one at a time per partition, in arrival order: a store's pushes to one
/// partition queue here instead of racing each other's compare-and-set and retrying.
public final class PartitionGate: Sendable {
    private struct Entry: Sendable {
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let entries = Mutex<[ByteName: Entry]>([:])

    public init() {}

    public func exclusive<T: Sendable>(_ partition: String, _ body: () async throws -> T) async throws -> T {
        let name = ByteName(partition)
        let mustWait = entries.withLock { e -> Bool in
            if e[name] != nil { return true }
            e[name] = Entry()
            return false
        }
        if mustWait {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = entries.withLock { e -> Bool in
                    // The holder may have left between the two locks.
                    guard e[name] != nil else { e[name] = Entry(); return true }
                    e[name]?.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
        defer { leave(name) }
        return try await body()
    }

    /// Hands the partition to the next waiter, or frees it.
    private func leave(_ name: ByteName) {
        let next = entries.withLock { e -> CheckedContinuation<Void, Never>? in
            guard var entry = e[name], !entry.waiters.isEmpty else {
                e[name] = nil
                return nil
            }
            let first = entry.waiters.removeFirst()
            e[name] = entry
            return first
        }
        next?.resume()
    }
}
