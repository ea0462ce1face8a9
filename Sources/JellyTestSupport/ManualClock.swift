import JellyCore
import Synchronization

/// A clock that moves only when told: lease expiry is tested without sleeping. `advance` moves
/// the wall clock and the monotonic clock together (time passes); `stepWallClock` moves the wall
/// clock alone (an NTP correction or an operator changing the date).
public final class ManualClock: JellyClock, Sendable {
    private struct Readings { var wall: Int64; var monotonic: UInt64 }
    private let now: Mutex<Readings>

    public init(startMilliseconds: Int64 = 1_700_000_000_000) {
        now = Mutex(Readings(wall: startMilliseconds, monotonic: 1_000_000_000))
    }

    public func nowMilliseconds() -> Int64 { now.withLock { $0.wall } }

    public func monotonicNanoseconds() -> UInt64 { now.withLock { $0.monotonic } }

    public func advance(milliseconds: Int64) {
        now.withLock {
            $0.wall += milliseconds
            $0.monotonic += UInt64(max(0, milliseconds)) * 1_000_000
        }
    }

    /// The wall clock jumps by `milliseconds` (negative: back) while no time passes.
    public func stepWallClock(milliseconds: Int64) {
        now.withLock { $0.wall += milliseconds }
    }

    public func set(milliseconds: Int64) {
        now.withLock { $0.wall = milliseconds }
    }
}
