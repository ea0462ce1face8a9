import JellyCore
import Synchronization

/// A clock that moves only when told: lease expiry is tested without sleeping.
public final class ManualClock: JellyClock, Sendable {
    private let now: Mutex<Int64>

    public init(startMilliseconds: Int64 = 1_700_000_000_000) {
        now = Mutex(startMilliseconds)
    }

    public func nowMilliseconds() -> Int64 { now.withLock { $0 } }

    public func advance(milliseconds: Int64) {
        now.withLock { $0 += milliseconds }
    }

    public func set(milliseconds: Int64) {
        now.withLock { $0 = milliseconds }
    }
}
