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
        var listeners: [ByteName: [UInt64: @Sendable (UInt64) -> Void]] = [:]
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
        await wait(partition: partition, after: after, timeout: timeout, check: .later(current))
    }

    /// `wait` with a `current` that answers at once (the embedded store's index): asked right
    /// after the waiter is registered, without a task of its own.
    public func wait(
        partition: String, after: UInt64, timeout: Duration, currentNow: @escaping @Sendable () throws -> UInt64
    ) async -> Bool {
        await wait(partition: partition, after: after, timeout: timeout, check: .now(currentNow))
    }

    private enum Check: Sendable {
        case now(@Sendable () throws -> UInt64)
        case later(@Sendable () async throws -> UInt64)
    }

    private func wait(partition: String, after: UInt64, timeout: Duration, check: Check) async -> Bool {
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
                // The count changes with the table, under its lock: `notify` reads it without the
                // lock only to skip the lock when nobody at all waits or listens.
                let early = state.withLock { s -> Bool? in
                    if let value = s.decided.removeValue(forKey: id) { return value }
                    s.waiters[name, default: [:]][id] = Waiter(after: after, continuation: c)
                    count.add(1, ordering: .relaxed)
                    return nil
                }
                if let early { return c.resume(returning: early) }
                switch check {
                case .now(let current):
                    if let now = try? current(), now > after { self.finish(name, id, true) }
                case .later(let current):
                    Task {
                        if let now = try? await current(), now > after { self.finish(name, id, true) }
                    }
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
                count.subtract(1, ordering: .relaxed)
                return w
            }
            if s.pending.contains(id) && s.decided[id] == nil { s.decided[id] = value }
            return nil
        }
        waiter?.continuation.resume(returning: value)
    }

    /// A commit made `partition` reach `version`: wakes its waiters whose cursor is below and
    /// calls its listeners.
    public func notify(partition: ByteName, version: UInt64) {
        guard count.load(ordering: .relaxed) > 0 else { return }
        let (woken, listeners) = state.withLock { s -> ([Waiter], [@Sendable (UInt64) -> Void]) in
            let listeners = s.listeners[partition].map { Array($0.values) } ?? []
            guard var list = s.waiters[partition] else { return ([], listeners) }
            var out: [Waiter] = []
            for (id, w) in list where w.after < version {
                out.append(w)
                list[id] = nil
            }
            s.waiters[partition] = list.isEmpty ? nil : list
            if !out.isEmpty { count.subtract(out.count, ordering: .relaxed) }
            return (out, listeners)
        }
        for w in woken { w.continuation.resume(returning: true) }
        for l in listeners { l(version) }
    }

    /// Calls `listener` with the version of every later commit of `partition` (on the
    /// notifying thread: it must not block) until the returned listener is stopped. For a
    /// long-lived watch (a feed socket), where a wait per commit would cost a timer each time.
    public func listen(partition: String, _ listener: @escaping @Sendable (UInt64) -> Void) -> ChangeListener {
        let name = ByteName(partition)
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            s.listeners[name, default: [:]][s.nextID] = listener
            count.add(1, ordering: .relaxed)
            return s.nextID
        }
        return ChangeListener { [weak self] in
            guard let self else { return }
            self.state.withLock { s in
                guard s.listeners[name]?.removeValue(forKey: id) != nil else { return }
                if s.listeners[name]?.isEmpty == true { s.listeners[name] = nil }
                self.count.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// Wakes every waiter (the store is closing): they return true and read again. Listeners stay.
    public func wakeAll() {
        let woken = state.withLock { s -> [Waiter] in
            let all = s.waiters.values.flatMap { $0.values }
            s.waiters = [:]
            if !all.isEmpty { count.subtract(all.count, ordering: .relaxed) }
            return all
        }
        for w in woken { w.continuation.resume(returning: true) }
    }
}

/// A registration of `ChangeWaiters.listen`; `stop()` ends it (idempotent).
public final class ChangeListener: Sendable {
    private let stopper: Mutex<(@Sendable () -> Void)?>

    init(_ stop: @escaping @Sendable () -> Void) {
        stopper = Mutex(stop)
    }

    public func stop() {
        let stop = stopper.withLock { s -> (@Sendable () -> Void)? in
            defer { s = nil }
            return s
        }
        stop?()
    }

    deinit { stop() }
}

/// A store that can call back on every commit of a partition (the embedded store): a feed
/// socket listens instead of waiting once per commit. Stores without it are watched with
/// `JellyStore.waitForChanges`.
public protocol ChangeListening: Sendable {
    func listenForChanges(partition: String, _ listener: @escaping @Sendable (UInt64) -> Void) -> ChangeListener
}
