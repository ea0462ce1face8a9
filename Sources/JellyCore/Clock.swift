#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Wall-clock time in milliseconds since 1970. Lease expiry is wall-clock time because it is
/// persisted and must mean the same after a restart. Injected so tests never sleep.
public protocol JellyClock: Sendable {
    func nowMilliseconds() -> Int64
    /// A clock that never goes back (CLOCK_MONOTONIC): how much time really passed, whatever
    /// the wall clock did. `StepSafeClock` uses it to keep lease time from going backwards.
    func monotonicNanoseconds() -> UInt64
}

extension JellyClock {
    public func monotonicNanoseconds() -> UInt64 { systemMonotonicNanoseconds() }
}

func systemMonotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The system's real-time clock.
public struct SystemClock: JellyClock {
    public init() {}
    public func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// Lease time: the wall clock, except that it never goes back. When the wall clock steps back
/// (an NTP correction, an operator fixing the date), lease time goes on from where it was at the
/// rate of the monotonic clock until the wall clock catches up; a step forward is taken (leases
/// then expire early, which is safe: an expired token is refused, its holder locks again).
/// Without it, a lease seen expired would come back to life after a step back, and its stale
/// holder's saves would be accepted again.
///
/// Pure state, fed readings of both clocks; `StepSafeClock` holds one behind a lock.
public struct LeaseTime: Sendable, Equatable {
    private var last: Int64?
    private var lastMonotonic: UInt64 = 0

    public init() {}

    /// The lease time for these readings: at least the last answer plus the monotonic time
    /// since it, at least the wall clock.
    public mutating func now(wall: Int64, monotonicNanoseconds mono: UInt64) -> Int64 {
        var now = wall
        if let last {
            let elapsed = mono >= lastMonotonic ? (mono - lastMonotonic) / 1_000_000 : 0
            let carried = last &+ Int64(clamping: elapsed)
            now = max(wall, carried)
            // Keep the remainder below a millisecond for the next reading.
            if now == carried && mono >= lastMonotonic { lastMonotonic += elapsed * 1_000_000 } else { lastMonotonic = mono }
        } else {
            lastMonotonic = mono
        }
        last = now
        return now
    }
}

/// A clock whose time never goes back (see `LeaseTime`), over any clock. Both stores read every
/// lease decision's time from one.
public final class StepSafeClock: JellyClock, Sendable {
    public let wall: any JellyClock
    private let state = Mutex(LeaseTime())

    public init(_ wall: any JellyClock) {
        self.wall = wall
    }

    public func nowMilliseconds() -> Int64 {
        let w = wall.nowMilliseconds(), m = wall.monotonicNanoseconds()
        return state.withLock { $0.now(wall: w, monotonicNanoseconds: m) }
    }

    public func monotonicNanoseconds() -> UInt64 { wall.monotonicNanoseconds() }
}
