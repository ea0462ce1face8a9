/// A partition's change feed (docs/sync.md): what changed after a cursor, in version order.
///
/// A cursor is a version: `next` of the previous answer, or 0 for the whole state. Versions
/// grow with every commit, so "after the cursor" is exact, and an object changed twice appears
/// once, at its latest version. Deleted objects appear as tombstones while the store keeps
/// them (`floor`); a cursor below the floor, or from another `epoch`, gets a reset.

/// One entry of the feed: an object at its latest version, or a tombstone.
public struct Change: Hashable, Sendable {
    public var key: String
    public var version: UInt64
    /// The object with its value; nil for a tombstone.
    public var object: StoredObject?

    public var deleted: Bool { object == nil }

    public init(key: String, version: UInt64, object: StoredObject?) {
        self.key = key
        self.version = version
        self.object = object
    }
}

/// One answer of the change feed.
public struct ChangeBatch: Hashable, Sendable {
    /// The store's history identifier: a new store, a restore or a recreated stream has another.
    public var epoch: String
    /// The oldest cursor answered exactly: below it, tombstones may be gone.
    public var floor: UInt64
    /// The cursor to pass next time.
    public var next: UInt64
    /// The answer starts from the whole current state: the caller drops whatever it held.
    /// Later pages (with `since: next`) are ordinary increments.
    public var reset: Bool
    /// Changes in ascending version order; the objects of one commit are never split across pages.
    public var changes: [Change]
    /// More changes are waiting after `next`: ask again at once.
    public var more: Bool
    /// The partition's live session lock, if a game server holds one (a client's push waits
    /// for its release, which the feed announces by a new `next` and `lock == nil`).
    public var lock: LockInfo?

    public init(epoch: String, floor: UInt64, next: UInt64, reset: Bool, changes: [Change], more: Bool, lock: LockInfo?) {
        self.epoch = epoch
        self.floor = floor
        self.next = next
        self.reset = reset
        self.changes = changes
        self.more = more
        self.lock = lock
    }
}

/// Who reads a feed or pushes mutations: a game server (everything) or the client of the
/// partition (only what the objects' access lets it read and write).
public enum SyncRole: Hashable, Sendable {
    case server
    case owner

    /// Whether this role may read an object with `access`.
    public func mayRead(_ access: ObjectAccess) -> Bool {
        self == .server || access.read != .server
    }

    /// Whether this role may overwrite or delete an existing object with `access`.
    public func mayWrite(_ access: ObjectAccess) -> Bool {
        self == .server || access.write == .owner
    }
}

/// The part of the feed that is the same on every backend: given the partition's slots
/// (key, version, deleted), which to answer, the next cursor and whether it is a reset.
public enum ChangeFeed {
    public struct Slot: Sendable {
        public var key: String
        public var version: UInt64
        public var deleted: Bool
        public init(key: String, version: UInt64, deleted: Bool) {
            self.key = key
            self.version = version
            self.deleted = deleted
        }
    }

    public struct Page: Sendable {
        /// The slots to answer, in version order (a reset's and a full state's hold no tombstones).
        public var slots: [Slot]
        public var next: UInt64
        public var reset: Bool
        public var more: Bool
    }

    /// Checks a feed request's arguments.
    public static func validate(partition: String, limit: Int, limits: JellyLimits) throws {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        if limit < 1 || limit > limits.changesLimitMax {
            throw JellyError(.invalidArgument, "a change feed page holds 1 to \(limits.changesLimitMax) changes; \(limit) was asked")
        }
    }

    /// Checks a wait's arguments.
    public static func validateWait(partition: String, timeoutMilliseconds: Int, limits: JellyLimits) throws {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        if timeoutMilliseconds < 0 || timeoutMilliseconds > limits.changesWaitMillisecondsMax {
            throw JellyError(.invalidArgument, "a change feed waits 0 to \(limits.changesWaitMillisecondsMax) ms; \(timeoutMilliseconds) was asked")
        }
    }

    /// Chooses a page. `slots` are the partition's objects and tombstones (system keys already
    /// left out); `highest` is the highest version of anything in the partition (its lock and
    /// system keys included), so the cursor moves past commits the caller does not see.
    public static func page(
        slots: [Slot], highest: UInt64, since: UInt64, floor: UInt64, epoch: String, callerEpoch: String?, limit: Int
    ) -> Page {
        let reset = since > 0 && (since < floor || (callerEpoch != nil && callerEpoch != epoch))
        let from: UInt64 = reset ? 0 : since
        // From zero the caller holds nothing, so tombstones tell it nothing.
        var chosen = slots.filter { $0.version > from && !(from == 0 && $0.deleted) }
        chosen.sort { $0.version < $1.version || ($0.version == $1.version && $0.key.utf8.lexicographicallyPrecedes($1.key.utf8)) }
        var more = false
        if chosen.count > limit {
            // Never split one commit: extend the page to the end of its last version.
            var end = limit
            let last = chosen[limit - 1].version
            while end < chosen.count && chosen[end].version == last { end += 1 }
            more = end < chosen.count
            chosen.removeSubrange(end...)
        }
        let next = more ? (chosen.last?.version ?? from) : max(from, highest, floor)
        return Page(slots: chosen, next: next, reset: reset, more: more)
    }
}
