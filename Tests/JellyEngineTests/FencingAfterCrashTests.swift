import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// Fencing across a crash: a lock operation that is the last record in the log when the process
/// dies. Recovery must count its version as issued, or the next lock after expiry gets the same
/// token (the old holder's saves are accepted again) or a version equal to the lease record's
/// (the new lease loses to the old one on the next open).
@Suite struct FencingAfterCrashTests {
    enum LastOperation: String, CaseIterable, Sendable { case acquire, renew, transfer, release }

    @Test(arguments: LastOperation.allCases)
    func aLockOperationAsTheLastRecordBeforeACrash(_ last: LastOperation) async throws {
        let h = try EmbeddedStoreHarness()
        defer { h.directory.remove() }
        let clock = h.clock
        var issued: [UInt64] = [try await h.store.put(partition: "p", key: "save", value: bytes("before"))]

        // Wait for the log's next segment to be started ahead: its header's version floor was
        // taken before the lock below, so it does not cover the lock's version. Only the lease
        // record itself can tell recovery that its version was issued.
        let next = h.directory.path + "/" + segmentFileName(h.embedded.activeSegment + 1)
        for _ in 0..<2500 where !PosixStorage().fileExists(next) { try await Task.sleep(nanoseconds: 2_000_000) }
        try #require(PosixStorage().fileExists(next), "the next segment was started ahead")

        let lock = try await h.store.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
        issued.append(lock.token.rawValue)
        var stale = [lock.token]
        switch last {
        case .acquire:
            break
        case .renew:
            clock.advance(milliseconds: 1_000)
            _ = try await h.store.renewLock(partition: "p", token: lock.token, ttlMilliseconds: 10_000)
        case .transfer:
            let moved = try await h.store.transferLock(partition: "p", token: lock.token, to: "server-2", ttlMilliseconds: 10_000)
            issued.append(moved.token.rawValue)
            stale.append(moved.token)
        case .release:
            try await h.store.releaseLock(partition: "p", token: lock.token)
        }
        h.embedded.crashForTesting()

        let store = try EmbeddedStore.open(h.configuration)
        clock.advance(milliseconds: 60_000) // every lease above has expired
        let taken = try await store.acquireLock(partition: "p", owner: "server-3", ttlMilliseconds: 600_000)
        let highest = issued.max() ?? 0
        #expect(taken.token.rawValue > highest, "\(last): the first token after the crash (\(taken.token)) is above every version and token issued before it (\(highest))")
        for token in stale {
            let error = try await expectJellyError { try await store.put(partition: "p", key: "save", value: bytes("stale"), lockToken: token) }
            #expect(error.code == .locked, "\(last): the old holder's save with token \(token) is fenced")
        }
        let saved = try await store.put(partition: "p", key: "save", value: bytes("after"), lockToken: taken.token)
        #expect(saved > taken.token.rawValue)
        try await store.close()

        // On the next open the new lease is the lease slot's highest version: no older record of
        // the slot (a renewal, a release) may carry the same version and win.
        let reopened = try EmbeddedStore.open(h.configuration)
        #expect(try await reopened.inspectLock(partition: "p") == taken, "\(last): the lease taken after the crash survives a restart")
        #expect(try await reopened.get(partition: "p", key: "save")?.value == bytes("after"))
        let fenced = try await expectJellyError { try await reopened.put(partition: "p", key: "save", value: bytes("stale"), lockToken: lock.token) }
        #expect(fenced.code == .locked)
        try await reopened.close()
    }
}
