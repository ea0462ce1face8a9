/// The lock (session lease) rules of the contract, as a pure function of the current lease,
/// the time and the request. Both backends use it, so the rules live in one place; the
/// backend performs the decided change durably.
///
/// A lease is *live* while `now < expiresAtMilliseconds`; an expired lease is the same as no
/// lease, except that its token is never issued again (new tokens come from the store's
/// version sequence, which only grows).
public struct Lease: Hashable, Sendable {
    public var owner: String
    public var token: LockToken
    public var expiresAtMilliseconds: Int64

    public init(owner: String, token: LockToken, expiresAtMilliseconds: Int64) {
        self.owner = owner
        self.token = token
        self.expiresAtMilliseconds = expiresAtMilliseconds
    }

    public func isLive(at now: Int64) -> Bool { now < expiresAtMilliseconds }

    public func info(partition: String) -> LockInfo {
        LockInfo(partition: partition, owner: owner, token: token, expiresAtMilliseconds: expiresAtMilliseconds)
    }
}

public enum LeaseRequest: Hashable, Sendable {
    case acquire(owner: String, ttlMilliseconds: Int64)
    case renew(token: LockToken, ttlMilliseconds: Int64)
    case transfer(token: LockToken, toOwner: String, ttlMilliseconds: Int64)
    case release(token: LockToken)
    /// Administrative: removes any lease, live or not, whoever holds it.
    case breakLock
}

extension LeaseRequest {
    /// The argument checks of every lock operation, the same on every backend, before anything
    /// is read: the owner's name and the TTL's range (when the request has them), then the
    /// partition's name.
    ///
    /// - Throws: `.invalidArgument` naming the bad argument.
    public func validate(partition: String, limits: JellyLimits) throws {
        switch self {
        case .acquire(let owner, let ttl), .transfer(_, let owner, let ttl):
            try Names.validate(owner, as: .owner, maxBytes: limits.ownerBytesMax)
            try limits.checkTTL(ttl)
        case .renew(_, let ttl):
            try limits.checkTTL(ttl)
        case .release, .breakLock:
            break
        }
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
    }
}

public enum LeaseDecision: Equatable, Sendable {
    /// Write a lease for `owner` until `expiresAtMilliseconds` with a new token: the version
    /// of the commit that writes it.
    case grantNewToken(owner: String, expiresAtMilliseconds: Int64)
    /// Write the lease again with the same token and a new expiry (idempotent acquire, renew).
    case extend(Lease)
    /// Remove the lease.
    case clear(previous: Lease?)
    /// Nothing to write; the request fails.
    case reject(JellyError)
}

public enum LeaseRules {
    /// Decides `request` against `current` (the partition's stored lease, live or expired, or nil).
    public static func decide(
        _ request: LeaseRequest, current: Lease?, partition: String, now: Int64
    ) -> LeaseDecision {
        let live = current.flatMap { $0.isLive(at: now) ? $0 : nil }
        switch request {
        case .acquire(let owner, let ttl):
            guard let live else {
                return .grantNewToken(owner: owner, expiresAtMilliseconds: now + ttl)
            }
            if live.owner == owner {
                var renewed = live
                renewed.expiresAtMilliseconds = now + ttl
                return .extend(renewed)
            }
            return .reject(lockedError(partition: partition, holder: live))

        case .renew(let token, let ttl):
            guard let live, live.token == token else {
                return .reject(staleTokenError(partition: partition, token: token, live: live, current: current, now: now))
            }
            var renewed = live
            renewed.expiresAtMilliseconds = now + ttl
            return .extend(renewed)

        case .transfer(let token, let toOwner, let ttl):
            guard let live, live.token == token else {
                return .reject(staleTokenError(partition: partition, token: token, live: live, current: current, now: now))
            }
            return .grantNewToken(owner: toOwner, expiresAtMilliseconds: now + ttl)

        case .release(let token):
            guard let live, live.token == token else {
                return .reject(staleTokenError(partition: partition, token: token, live: live, current: current, now: now))
            }
            return .clear(previous: live)

        case .breakLock:
            return .clear(previous: current)
        }
    }

    /// Whether a data write may proceed. A write that carries a token is accepted only if the
    /// token is the current live lease; a write without one only while the partition is not
    /// locked (and, with `requireLocks`, never).
    public static func checkWrite(
        token: LockToken?, current: Lease?, partition: String, now: Int64, requireLocks: Bool
    ) -> JellyError? {
        let live = current.flatMap { $0.isLive(at: now) ? $0 : nil }
        if let token {
            if let live, live.token == token { return nil }
            return staleTokenError(partition: partition, token: token, live: live, current: current, now: now)
        }
        if let live {
            return JellyError(
                .locked,
                "partition \(Names.quoted(partition)) is locked by \(Names.quoted(live.owner)) until \(live.expiresAtMilliseconds) ms; send the lock token with the write, or acquire the lock first",
                holder: live.info(partition: partition)
            )
        }
        if requireLocks {
            return JellyError(
                .locked,
                "the store requires a lock for every write; acquire the lock on partition \(Names.quoted(partition)) and send its token"
            )
        }
        return nil
    }

    static func lockedError(partition: String, holder: Lease) -> JellyError {
        JellyError(
            .locked,
            "partition \(Names.quoted(partition)) is locked by \(Names.quoted(holder.owner)) until \(holder.expiresAtMilliseconds) ms; retry after it is released or expires",
            holder: holder.info(partition: partition)
        )
    }

    static func staleTokenError(
        partition: String, token: LockToken, live: Lease?, current: Lease?, now: Int64
    ) -> JellyError {
        let why: String
        if let live {
            why = "the current lock is token \(live.token) held by \(Names.quoted(live.owner))"
        } else if let current, current.token == token {
            why = "that lock expired at \(current.expiresAtMilliseconds) ms (now \(now) ms); acquire the lock again"
        } else {
            why = "the partition is not locked by that token (it was released, transferred or expired); acquire the lock again"
        }
        return JellyError(
            .locked,
            "lock token \(token) is not the current lock of partition \(Names.quoted(partition)): \(why)",
            holder: live?.info(partition: partition)
        )
    }
}
