import JellyCore
import Testing

/// The lease state machine, without a store or a clock.
@Suite struct LeaseRulesTests {
    let held = Lease(owner: "s1", token: LockToken(10), expiresAtMilliseconds: 1_000)

    @Test func acquireUnlockedGrantsNewToken() {
        #expect(LeaseRules.decide(.acquire(owner: "s1", ttlMilliseconds: 500), current: nil, partition: "p", now: 100)
            == .grantNewToken(owner: "s1", expiresAtMilliseconds: 600))
    }

    @Test func sameOwnerExtendsWithSameToken() {
        let d = LeaseRules.decide(.acquire(owner: "s1", ttlMilliseconds: 500), current: held, partition: "p", now: 900)
        #expect(d == .extend(Lease(owner: "s1", token: LockToken(10), expiresAtMilliseconds: 1_400)))
    }

    @Test func otherOwnerIsLockedWithHolder() {
        guard case .reject(let e) = LeaseRules.decide(.acquire(owner: "s2", ttlMilliseconds: 500), current: held, partition: "p", now: 999) else {
            Issue.record("expected reject")
            return
        }
        #expect(e.code == .locked)
        #expect(e.holder == held.info(partition: "p"))
    }

    @Test func expiryIsExclusive() {
        // At exactly expiresAt the lease is over.
        #expect(LeaseRules.decide(.acquire(owner: "s2", ttlMilliseconds: 500), current: held, partition: "p", now: 1_000)
            == .grantNewToken(owner: "s2", expiresAtMilliseconds: 1_500))
        #expect(LeaseRules.checkWrite(token: held.token, current: held, partition: "p", now: 1_000, requireLocks: false)?.code == .locked)
        #expect(LeaseRules.checkWrite(token: held.token, current: held, partition: "p", now: 999, requireLocks: false) == nil)
    }

    @Test func expiredOwnerGetsNewToken() {
        #expect(LeaseRules.decide(.acquire(owner: "s1", ttlMilliseconds: 500), current: held, partition: "p", now: 2_000)
            == .grantNewToken(owner: "s1", expiresAtMilliseconds: 2_500))
    }

    @Test func renewTransferReleaseNeedTheLiveToken() {
        for request in [
            LeaseRequest.renew(token: LockToken(9), ttlMilliseconds: 10),
            .transfer(token: LockToken(9), toOwner: "s2", ttlMilliseconds: 10),
            .release(token: LockToken(9)),
        ] {
            guard case .reject(let e) = LeaseRules.decide(request, current: held, partition: "p", now: 5) else {
                Issue.record("\(request) with a wrong token was accepted")
                continue
            }
            #expect(e.code == .locked)
        }
        guard case .reject(let e) = LeaseRules.decide(.renew(token: LockToken(10), ttlMilliseconds: 10), current: held, partition: "p", now: 1_000) else {
            Issue.record("renewed an expired lease")
            return
        }
        #expect(e.message.contains("expired"))
        #expect(LeaseRules.decide(.transfer(token: LockToken(10), toOwner: "s2", ttlMilliseconds: 10), current: held, partition: "p", now: 5)
            == .grantNewToken(owner: "s2", expiresAtMilliseconds: 15))
        #expect(LeaseRules.decide(.release(token: LockToken(10)), current: held, partition: "p", now: 5) == .clear(previous: held))
    }

    /// A write's token against the live lease (token 10, live until 1,000): only the equal
    /// token passes; a lower or higher one, an expired lease's or a released one's is stale.
    @Test func aWriteTokenMustBeExactlyTheLiveOne() {
        func check(_ token: UInt64, _ current: Lease?, now: Int64 = 500) -> JellyError? {
            LeaseRules.checkWrite(token: LockToken(token), current: current, partition: "p", now: now, requireLocks: false)
        }
        #expect(check(10, held) == nil, "equal")
        #expect(check(9, held)?.code == .locked, "lower: an older holder")
        #expect(check(1, held)?.code == .locked, "much lower")
        #expect(check(11, held)?.code == .locked, "higher: never issued for this lease")
        #expect(check(10, held, now: 1_000)?.code == .locked, "expired at exactly its expiry")
        #expect(check(10, held, now: 5_000)?.code == .locked, "expired long ago")
        #expect(check(10, nil)?.code == .locked, "released")
        #expect(check(9, held)?.holder == held.info(partition: "p"), "a stale token is told who holds the lock now")
        for token: UInt64 in [9, 11] {
            #expect(LeaseRules.checkWrite(token: LockToken(token), current: held, partition: "p", now: 500, requireLocks: true)?.code == .locked)
        }
    }

    /// Renew, transfer and release accept exactly the live token, like writes.
    @Test func leaseRequestsNeedExactlyTheLiveToken() {
        for token: UInt64 in [9, 11] {
            for request in [
                LeaseRequest.renew(token: LockToken(token), ttlMilliseconds: 10),
                .transfer(token: LockToken(token), toOwner: "s2", ttlMilliseconds: 10),
                .release(token: LockToken(token)),
            ] {
                guard case .reject(let e) = LeaseRules.decide(request, current: held, partition: "p", now: 500) else {
                    Issue.record("\(request) against token 10 was accepted")
                    continue
                }
                #expect(e.code == .locked)
            }
        }
        func rejected(_ d: LeaseDecision) -> Bool { if case .reject = d { return true } else { return false } }
        #expect(rejected(LeaseRules.decide(.release(token: LockToken(10)), current: held, partition: "p", now: 1_000)), "an expired lease cannot be released by its token")
        #expect(rejected(LeaseRules.decide(.transfer(token: LockToken(10), toOwner: "s2", ttlMilliseconds: 10), current: held, partition: "p", now: 1_000)), "nor transferred")
        #expect(rejected(LeaseRules.decide(.renew(token: LockToken(10), ttlMilliseconds: 10), current: nil, partition: "p", now: 5)), "a released lease cannot be renewed")
    }

    @Test func breakClearsEvenExpired() {
        #expect(LeaseRules.decide(.breakLock, current: held, partition: "p", now: 5_000) == .clear(previous: held))
        #expect(LeaseRules.decide(.breakLock, current: nil, partition: "p", now: 5) == .clear(previous: nil))
    }

    @Test func writeRules() {
        #expect(LeaseRules.checkWrite(token: nil, current: nil, partition: "p", now: 0, requireLocks: false) == nil)
        #expect(LeaseRules.checkWrite(token: nil, current: nil, partition: "p", now: 0, requireLocks: true)?.code == .locked)
        #expect(LeaseRules.checkWrite(token: nil, current: held, partition: "p", now: 0, requireLocks: false)?.holder?.owner == "s1")
        #expect(LeaseRules.checkWrite(token: LockToken(3), current: nil, partition: "p", now: 0, requireLocks: false)?.code == .locked)
        #expect(LeaseRules.checkWrite(token: LockToken(10), current: held, partition: "p", now: 0, requireLocks: true) == nil)
        // Once expired, a token-less write to the partition is allowed again.
        #expect(LeaseRules.checkWrite(token: nil, current: held, partition: "p", now: 1_000, requireLocks: false) == nil)
    }
}
