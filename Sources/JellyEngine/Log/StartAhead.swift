/// Who starts the log's next segment: the maintenance worker, ahead of time, or the committer
/// itself when the worker has not. A pure state machine, like `CommitQueue`: `Maintenance` holds
/// it under its mutex and does what the transitions say.
///
///     idle ──want(id)──▶ wanted(id) ──beginStart──▶ starting(id) ──finish(made)──▶ ready(id) / idle
///
/// `take(id)` hands a ready segment over, asks the committer to wait while the worker is starting
/// that very segment, and otherwise tells it to start the segment itself (and drops the wish, so
/// the two never start the same segment).
struct StartAhead<Segment> {
    enum State {
        case idle
        case wanted(UInt32)
        case starting(UInt32, waiters: Int)
        case ready(UInt32, Segment)
    }

    enum Take {
        case ready(Segment)
        /// Wait for `finish`, then take again.
        case wait
        case startItYourself
    }

    private(set) var state = State.idle

    /// The committer made segment `id - 1` active and will need `id` next.
    mutating func want(_ id: UInt32) {
        switch state {
        case .idle, .wanted: state = .wanted(id)
        case .starting, .ready: break
        }
    }

    /// The worker's turn: the segment to start now, if one is wanted.
    mutating func beginStart() -> UInt32? {
        guard case .wanted(let id) = state else { return nil }
        state = .starting(id, waiters: 0)
        return id
    }

    /// The worker finished starting (nil: it failed; the committer will start the segment
    /// itself). Returns how many waiters to wake.
    mutating func finish(_ made: Segment?) -> Int {
        guard case .starting(let id, let waiters) = state else { return 0 }
        state = made.map { .ready(id, $0) } ?? .idle
        return waiters
    }

    /// The committer needs segment `id` now.
    mutating func take(_ id: UInt32) -> Take {
        switch state {
        case .ready(let readyID, let segment) where readyID == id:
            state = .idle
            return .ready(segment)
        case .starting(let startingID, let waiters) where startingID == id:
            state = .starting(startingID, waiters: waiters + 1)
            return .wait
        case .ready, .starting:
            return .startItYourself
        case .idle, .wanted:
            state = .idle
            return .startItYourself
        }
    }

    /// A segment started and not taken (closed at stop; the next open reuses its file).
    var leftover: Segment? {
        if case .ready(_, let segment) = state { return segment }
        return nil
    }
}
