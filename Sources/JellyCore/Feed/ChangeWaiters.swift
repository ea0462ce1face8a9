import Synchronization

/// Callers waiting for a partition to change past a cursor, woken by the commit itself (the
/// embedded store's committer, the cluster store's subscription), never by polling.
///
/// `notify` costs one atomic load when nobody waits, so a store calls it on every commit.
public final class ChangeWaiters: Sendable {
    private struct Waiter: Sendable {
        var after: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State: Sendable {
        var waiters: [ByteName: [UInt64: Waiter]] = [:]
        /// Waits begun and not yet returned.
        var pending: Set<UInt64> = []
        /// Outcomes decided before the waiter registered (a timer or a cancellation first).
        var decided: [UInt64: Bool] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    private let count = Atomic<Int>(0)

    public init() {}

    /// How many callers wait now (for tests and metrics).
    public var waiting: Int { count.load(ordering: .relaxed) }

    /// Waits until `notify` reports a version above `after` for `partition`, or `timeout`
    /// passes, or the task is cancelled. `current` (the partition's highest version) is asked
    /// once the waiter is registered, so a commit between the caller's read and this call is
    /// not missed.
    ///
    /// - Returns: true when the partition changed, false on timeout or cancellation.
    public func wait(
        partition: String, after: UInt64, timeout: Duration, current: @escaping @Sendable () async throws -> UInt64
    ) async -> Bool {
        let name = ByteName(partition)
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            s.pending.insert(s.nextID)
            return s.nextID
        }
        defer { state.withLock { s in s.pending.remove(id); s.decided[id] = nil } }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.finish(name, id, false)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let early = state.withLock { s -> Bool? in
                    if let value = s.decided.removeValue(forKey: id) { return value }
                    s.waiters[name, default: [:]][id] = Waiter(after: after, continuation: c)
                    return nil
                }
                if let early { return c.resume(returning: early) }
                count.add(1, ordering: .relaxed)
                Task {
                    if let now = try? await current(), now > after { self.finish(name, id, true) }
                }
            }
        } onCancel: {
            self.finish(name, id, false)
        }
    }

    /// Resumes waiter `id` with `value` if it is registered; a wait not registered yet gets the
    /// value when it registers. Later calls for a finished wait do nothing.
    private func finish(_ name: ByteName, _ id: UInt64, _ value: Bool) {
        let waiter = state.withLock { s -> Waiter? in
            if let w = s.waiters[name]?.removeValue(forKey: id) {
                if s.waiters[name]?.isEmpty == true { s.waiters[name] = nil }
                return w
            }
            if s.pending.contains(id) && s.decided[id] == nil { s.decided[id] = value }
            return nil
        }
        if let waiter {
            count.subtract(1, ordering: .relaxed)
            waiter.continuation.resume(returning: value)
        }
    }

    /// A commit made `partition` reach `version`: wakes its waiters whose cursor is below.
    public func notify(partition: ByteName, version: UInt64) {
        guard count.load(ordering: .relaxed) > 0 else { return }
        let woken = state.withLock { s -> [Waiter] in
            guard var list = s.waiters[partition] else { return [] }
            var out: [Waiter] = []
            for (id, w) in list where w.after < version {
                out.append(w)
                list[id] = nil
            }
            s.waiters[partition] = list.isEmpty ? nil : list
            return out
        }
        if !woken.isEmpty { count.subtract(woken.count, ordering: .relaxed) }
        for w in woken { w.continuation.resume(returning: true) }
    }

    /// Wakes every waiter (the store is closing): they return true and read again.
    public func wakeAll() {
        let woken = state.withLock { s -> [Waiter] in
            let all = s.waiters.values.flatMap { $0.values }
            s.waiters = [:]
            return all
        }
        if !woken.isEmpty { count.subtract(woken.count, ordering: .relaxed) }
        for w in woken { w.continuation.resume(returning: true) }
    }
}
