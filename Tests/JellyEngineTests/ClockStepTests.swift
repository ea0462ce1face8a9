import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// The wall clock jumping (an NTP correction, an operator fixing the date, a restart on a machine
/// whose clock is behind) must never bring a lease back to life or keep a short one alive for
/// hours.
@Suite struct ClockStepTests {
    @Test func leaseTimeNeverGoesBack() {
        var t = LeaseTime()
        #expect(t.now(wall: 10_000, monotonicNanoseconds: 0) == 10_000)
        // The wall clock steps back a minute while 1 s passes: lease time goes on from 10 s.
        #expect(t.now(wall: -50_000, monotonicNanoseconds: 1_000_000_000) == 11_000)
        #expect(t.now(wall: -49_500, monotonicNanoseconds: 1_500_000_000) == 11_500)
        // Sub-millisecond steps add up instead of being lost.
        for i in 1...10 { _ = t.now(wall: 0, monotonicNanoseconds: 1_500_000_000 + UInt64(i) * 400_000) }
        #expect(t.now(wall: 0, monotonicNanoseconds: 1_504_000_000) == 11_504)
        // A step forward is taken at once; then the wall clock leads again.
        #expect(t.now(wall: 100_000, monotonicNanoseconds: 1_505_000_000) == 100_000)
        #expect(t.now(wall: 100_250, monotonicNanoseconds: 1_755_000_000) == 100_250)
    }

    @Test func anExpiredTokenStaysStaleWhenTheClockStepsBack() async throws {
        let h = try EmbeddedStoreHarness()
        defer { h.directory.remove() }
        let lock = try await h.store.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 5_000)
        try await h.store.put(partition: "p", key: "save", value: bytes("1"), lockToken: lock.token)
        h.clock.advance(milliseconds: 6_000)
        let expired = try await expectJellyError { try await h.store.put(partition: "p", key: "save", value: bytes("2"), lockToken: lock.token) }
        #expect(expired.code == .locked)

        // NTP steps the clock back ten minutes: the lease's expiry is in the wall clock's future
        // again, but it was seen expired, so its token stays stale.
        h.clock.stepWallClock(milliseconds: -600_000)
        let afterStep = try await expectJellyError { try await h.store.put(partition: "p", key: "save", value: bytes("3"), lockToken: lock.token) }
        #expect(afterStep.code == .locked, "a token whose lease expired was accepted after the clock stepped back")
        #expect(try await h.store.inspectLock(partition: "p") == nil)
        let renew = try await expectJellyError { try await h.store.renewLock(partition: "p", token: lock.token, ttlMilliseconds: 5_000) }
        #expect(renew.code == .locked)
        // Another server takes the partition; leases granted now still last their TTL.
        let next = try await h.store.acquireLock(partition: "p", owner: "server-2", ttlMilliseconds: 5_000)
        h.clock.advance(milliseconds: 4_000)
        try await h.store.put(partition: "p", key: "save", value: bytes("4"), lockToken: next.token)
        h.clock.advance(milliseconds: 1_001)
        let late = try await expectJellyError { try await h.store.put(partition: "p", key: "save", value: bytes("5"), lockToken: next.token) }
        #expect(late.code == .locked, "a 5 s lease outlived its TTL while the wall clock was behind")
        #expect(try await h.store.get(partition: "p", key: "save")?.value == bytes("4"))
    }

    @Test func aLiveLeaseIsNotStretchedByAStepBack() async throws {
        let h = try EmbeddedStoreHarness()
        defer { h.directory.remove() }
        let lock = try await h.store.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
        h.clock.advance(milliseconds: 4_000)
        h.clock.stepWallClock(milliseconds: -3_600_000)
        h.clock.advance(milliseconds: 6_001)
        let e = try await expectJellyError { try await h.store.put(partition: "p", key: "save", value: bytes("x"), lockToken: lock.token) }
        #expect(e.code == .locked, "the lease outlived its 10 s because the wall clock stepped back an hour")
        _ = try await h.store.acquireLock(partition: "p", owner: "server-2", ttlMilliseconds: 10_000)
    }

    @Test func aRestartWithTheClockFarBehindBoundsLeasesByTheirTTL() async throws {
        let h = try EmbeddedStoreHarness()
        defer { h.directory.remove() }
        let short = try await h.store.acquireLock(partition: "short", owner: "server-1", ttlMilliseconds: 30_000)
        let long = try await h.store.acquireLock(partition: "long", owner: "server-1", ttlMilliseconds: 4 * 3_600_000)
        h.clock.advance(milliseconds: 10_000)
        _ = try await h.store.renewLock(partition: "short", token: short.token, ttlMilliseconds: 30_000)
        try await h.store.close()

        // The machine comes back with its clock an hour behind.
        h.clock.stepWallClock(milliseconds: -3_600_000)
        try await h.reopenAfterCrash()
        #expect(h.embedded.recoveryNotes.contains { $0.contains("expired up to") }, "\(h.embedded.recoveryNotes)")
        // Both leases are held by their holder (their tokens still work) ...
        try await h.store.put(partition: "short", key: "save", value: bytes("1"), lockToken: short.token)
        try await h.store.put(partition: "long", key: "save", value: bytes("1"), lockToken: long.token)
        // ... but the 30 s one is gone 30 s later, not an hour and 30 s later.
        h.clock.advance(milliseconds: 30_001)
        let e = try await expectJellyError { try await h.store.put(partition: "short", key: "save", value: bytes("2"), lockToken: short.token) }
        #expect(e.code == .locked, "a 30 s lease blocked its partition for the hour the clock was behind")
        _ = try await h.store.acquireLock(partition: "short", owner: "server-2", ttlMilliseconds: 30_000)
        // The 4 h one keeps at most its TTL from the open (it had 3 h 59 m 50 s left).
        let held = try #require(try await h.store.inspectLock(partition: "long"))
        #expect(held.expiresAtMilliseconds <= h.clock.nowMilliseconds() - 30_001 + 4 * 3_600_000)

        // The bound is kept through compaction and hints: a second restart behind the clock again.
        _ = try await h.embedded.compact(force: true)
        try await h.store.close()
        h.clock.stepWallClock(milliseconds: -3_600_000)
        try await h.reopenAfterCrash()
        let relocked = try #require(try await h.store.inspectLock(partition: "short"))
        #expect(relocked.expiresAtMilliseconds <= h.clock.nowMilliseconds() + 30_000)
    }
}
