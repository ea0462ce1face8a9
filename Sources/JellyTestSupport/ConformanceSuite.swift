import JellyCore

/// A failed expectation in the conformance suite.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What a conformance case gets: a store, the manual clock it runs on, and a way to restart it.
public protocol ConformanceHarness: AnyObject, Sendable {
    var store: any JellyStore { get }
    var clock: ManualClock { get }
    /// Closes the store and opens it again on the same data (a clean restart).
    func restart() async throws
    /// Closes the store and removes what the harness made.
    func finish() async
    /// The store as the client of `partition` sees it (`SyncRole.owner`): in-process backends
    /// return `store` (the role travels with each call); a remote one a connection with a
    /// client token, so the server decides the role as it would in production.
    func clientStore(partition: String) async throws -> any JellyStore
}

extension ConformanceHarness {
    public func clientStore(partition: String) async throws -> any JellyStore { store }
}

/// One rule of the store contract, checked against any backend.
public struct ConformanceCase: Sendable, CustomStringConvertible {
    public let name: String
    public let run: @Sendable (any ConformanceHarness) async throws -> Void
    public var description: String { name }

    /// Runs the case on `harness`, then finishes the harness, also when the case fails.
    public func perform(on harness: some ConformanceHarness) async throws {
        do {
            try await run(harness)
        } catch {
            await harness.finish()
            throw error
        }
        await harness.finish()
    }
}

public func expect(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) throws {
    if !condition { throw ConformanceFailure("\(file):\(line): \(message())") }
}

/// Runs `body`, expecting it to throw a `JellyError` with `code`; returns the error.
@discardableResult
public func expectError<T>(
    _ code: JellyError.Code, _ what: String, file: StaticString = #fileID, line: UInt = #line,
    _ body: () async throws -> T
) async throws -> JellyError {
    do {
        let value = try await body()
        throw ConformanceFailure("\(file):\(line): \(what): expected error \(code), got success \(value)")
    } catch let error as JellyError {
        if error.code != code {
            throw ConformanceFailure("\(file):\(line): \(what): expected error \(code), got \(error)")
        }
        return error
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The contract of `JellyStore`, as executable cases. Every backend runs all of them.
public enum ConformanceSuite {
    public static let cases: [ConformanceCase] = coreCases + feedCases + syncCases + streamCases + partitionCases

    static let coreCases: [ConformanceCase] = [
        ConformanceCase(name: "object access is stored with each version and survives a restart") { h in
            let s = h.store
            let open = ObjectAccess(read: .public, write: .owner)
            try await s.put(partition: "p", key: "shared", value: bytes("1"), contentType: "text/plain", access: open)
            try await s.put(partition: "p", key: "private", value: bytes("2"), contentType: "text/plain")
            try await s.write(partition: "p", [.put(key: "mine", value: bytes("3"), access: ObjectAccess(read: .owner))], lockToken: nil, releaseLock: false)
            for round in 0..<2 {
                let s = h.store
                try expect(try await s.get(partition: "p", key: "shared")?.access == open, "round \(round): shared access")
                try expect(try await s.get(partition: "p", key: "private")?.access == .serverOnly, "round \(round): default is server-only")
                let listed = try await s.list(partition: "p", after: nil, limit: 10).objects.map(\.access)
                try expect(listed == [ObjectAccess(read: .owner), .serverOnly, open], "round \(round): listed \(listed)")
                let loaded = try await s.acquireLockAndLoad(partition: "p", owner: "o", ttlMilliseconds: 1000)
                try expect(loaded.objects.map(\.access) == listed, "round \(round): loaded \(loaded.objects.map(\.access))")
                try await s.releaseLock(partition: "p", token: loaded.lock.token)
                if round == 0 { try await h.restart() }
            }
            // A new version replaces the access with its own.
            try await h.store.put(partition: "p", key: "shared", value: bytes("4"))
            try expect(try await h.store.get(partition: "p", key: "shared")?.access == .serverOnly, "a put without access resets it")
        },
        ConformanceCase(name: "put then get returns value, version and content type") { h in
            let s = h.store
            let v1 = try await s.put(partition: "p", key: "a", value: bytes("one"))
            let v2 = try await s.put(partition: "p", key: "b", value: bytes("two"), contentType: "application/json")
            try expect(v2 > v1, "versions must increase: \(v1) then \(v2)")
            let a = try await s.get(partition: "p", key: "a")
            try expect(a == StoredObject(key: "a", version: v1, contentType: defaultContentType, value: bytes("one")), "got \(String(describing: a))")
            let b = try await s.get(partition: "p", key: "b")
            try expect(b?.contentType == "application/json" && b?.version == v2, "got \(String(describing: b))")
            try expect(try await s.get(partition: "p", key: "missing") == nil, "missing key must read nil")
            try expect(try await s.get(partition: "other", key: "a") == nil, "other partition must not see the key")
        },
        ConformanceCase(name: "empty values and overwrites") { h in
            let s = h.store
            let v1 = try await s.put(partition: "p", key: "k", value: [])
            try expect(try await s.get(partition: "p", key: "k")?.value == [], "empty value")
            let v2 = try await s.put(partition: "p", key: "k", value: bytes("x"))
            try expect(v2 > v1, "overwrite gets a higher version")
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("x"), "overwrite visible")
        },
        ConformanceCase(name: "versions strictly increase within a partition") { h in
            var last: [String: UInt64] = [:]
            for i in 0..<20 {
                let partition = "p\(i % 3)"
                let v = try await h.store.put(partition: partition, key: "k\(i % 2)", value: bytes("\(i)"))
                try expect(v > last[partition, default: 0], "version \(v) after \(last[partition, default: 0]) in \(partition)")
                last[partition] = v
            }
        },
        ConformanceCase(name: "a batch is one commit with one version") { h in
            let r = try await h.store.write(partition: "p", [
                .put(key: "a", value: bytes("1")), .put(key: "b", value: bytes("2")), .delete(key: "c"),
            ], lockToken: nil, releaseLock: false)
            guard let v = r.version else { throw ConformanceFailure("batch had no version") }
            try expect(r.applied == [true, true, false], "applied \(r.applied): deleting a missing object is a no-op")
            try expect(r.previousVersions == [nil, nil, nil], "nothing existed before: \(r.previousVersions)")
            try expect(try await h.store.get(partition: "p", key: "a")?.version == v, "a at batch version")
            try expect(try await h.store.get(partition: "p", key: "b")?.version == v, "b at batch version")
            let again = try await h.store.write(partition: "p", [.put(key: "a", value: bytes("3")), .put(key: "new", value: [])], lockToken: nil, releaseLock: false)
            try expect(again.previousVersions == [v, nil], "a was replaced, new was created: \(again.previousVersions)")
        },
        ConformanceCase(name: "a batch with one failing condition writes nothing") { h in
            let s = h.store
            let v = try await s.put(partition: "p", key: "a", value: bytes("old"))
            try await expectError(.preconditionFailed, "batch with stale ifVersion") {
                try await s.write(partition: "p", [
                    .put(key: "a", value: bytes("new")), .put(key: "b", value: bytes("new"), condition: .ifVersion(v + 100)),
                ], lockToken: nil, releaseLock: false)
            }
            try expect(try await s.get(partition: "p", key: "a")?.value == bytes("old"), "a unchanged")
            try expect(try await s.get(partition: "p", key: "b") == nil, "b not written")
        },
        ConformanceCase(name: "ifVersion is compare-and-set") { h in
            let s = h.store
            let v1 = try await s.put(partition: "p", key: "k", value: bytes("1"))
            let v2 = try await s.put(partition: "p", key: "k", value: bytes("2"), condition: .ifVersion(v1))
            try await expectError(.preconditionFailed, "CAS on old version") {
                try await s.put(partition: "p", key: "k", value: bytes("3"), condition: .ifVersion(v1))
            }
            try expect(try await s.get(partition: "p", key: "k")?.version == v2, "still at v2")
            try await expectError(.preconditionFailed, "ifVersion on a missing object") {
                try await s.put(partition: "p", key: "nope", value: bytes("3"), condition: .ifVersion(v1))
            }
        },
        ConformanceCase(name: "ifAbsent creates only once") { h in
            let s = h.store
            try await s.put(partition: "p", key: "k", value: bytes("1"), condition: .ifAbsent)
            try await expectError(.preconditionFailed, "second ifAbsent") {
                try await s.put(partition: "p", key: "k", value: bytes("2"), condition: .ifAbsent)
            }
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("1"), "first value kept")
            try await s.delete(partition: "p", key: "k")
            try await s.put(partition: "p", key: "k", value: bytes("3"), condition: .ifAbsent)
        },
        ConformanceCase(name: "delete writes a tombstone; deleting a missing object is a no-op") { h in
            let s = h.store
            let v = try await s.put(partition: "p", key: "k", value: bytes("1"))
            try await expectError(.preconditionFailed, "delete with wrong ifVersion") {
                try await s.delete(partition: "p", key: "k", condition: .ifVersion(v + 1))
            }
            try expect(try await s.delete(partition: "p", key: "k", condition: .ifVersion(v)), "delete reports existed")
            try expect(try await s.get(partition: "p", key: "k") == nil, "deleted")
            try expect(try await s.list(partition: "p", after: nil, limit: 10).objects.isEmpty, "list excludes deleted")
            try expect(try await s.delete(partition: "p", key: "k") == false, "second delete is a no-op")
            try await expectError(.preconditionFailed, "delete missing with ifVersion") {
                try await s.delete(partition: "p", key: "k", condition: .ifVersion(v))
            }
            try await h.restart()
            try expect(try await h.store.get(partition: "p", key: "k") == nil, "still deleted after restart")
        },
        ConformanceCase(name: "list is in byte order with a cursor") { h in
            let s = h.store
            let keys = ["b", "a", "B", "é", "e\u{301}", "a0", "zz", "A"]
            for (i, k) in keys.enumerated() { try await s.put(partition: "p", key: k, value: [UInt8](repeating: 1, count: i)) }
            var seen: [String] = []
            var after: String? = nil
            repeat {
                let page = try await s.list(partition: "p", after: after, limit: 3)
                try expect(page.objects.count <= 3, "page size")
                seen += page.objects.map(\.key)
                after = page.next
            } while after != nil
            let expected = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            try expect(seen == expected, "listed \(seen), expected \(expected)")
            let all = try await s.list(partition: "p", after: nil, limit: 100)
            try expect(all.next == nil, "no next on last page")
            try expect(all.objects.first { $0.key == "zz" }?.size == 6, "size of zz")
        },
        ConformanceCase(name: "names are compared byte for byte") { h in
            let s = h.store
            try await s.put(partition: "p", key: "é", value: bytes("precomposed"))
            try await s.put(partition: "p", key: "e\u{301}", value: bytes("decomposed"))
            try expect(try await s.get(partition: "p", key: "é")?.value == bytes("precomposed"), "precomposed")
            try expect(try await s.get(partition: "p", key: "e\u{301}")?.value == bytes("decomposed"), "decomposed")
            // In one batch they are two keys, not one named twice.
            let r = try await s.write(partition: "p", [.put(key: "é", value: bytes("1")), .put(key: "e\u{301}", value: bytes("2"))], lockToken: nil, releaseLock: false)
            try expect(r.applied == [true, true], "a batch of both forms writes both: \(r.applied)")
            try expect(try await s.get(partition: "p", key: "e\u{301}")?.value == bytes("2"), "decomposed, from the batch")
        },
        ConformanceCase(name: "invalid names are rejected and nothing is written") { h in
            let s = h.store
            let long = s.limits.partitionBytesMax + 1
            for bad in ["", ".", "..", "a/b", "tab\there", "nul\u{0}", "del\u{7F}", String(repeating: "x", count: long)] {
                try await expectError(.invalidArgument, "partition \(Names.quoted(bad))") {
                    try await s.put(partition: bad, key: "k", value: bytes("v"))
                }
                try await expectError(.invalidArgument, "key \(Names.quoted(bad))") {
                    try await s.put(partition: "p", key: bad == String(repeating: "x", count: long) ? String(repeating: "y", count: s.limits.keyBytesMax + 1) : bad, value: bytes("v"))
                }
            }
            try await expectError(.invalidArgument, "duplicate key in batch") {
                try await s.write(partition: "p", [.put(key: "k", value: []), .delete(key: "k")], lockToken: nil, releaseLock: false)
            }
            try await expectError(.invalidArgument, "owner with slash") {
                try await s.acquireLock(partition: "p", owner: "a/b", ttlMilliseconds: 1000)
            }
            try expect(try await s.list(partition: "p", after: nil, limit: 10).objects.isEmpty, "nothing written")
        },
        ConformanceCase(name: "oversized values are rejected and nothing is written") { h in
            let s = h.store
            try await s.put(partition: "p", key: "k", value: bytes("small"))
            let error = try await expectError(.tooLarge, "value over the limit") {
                try await s.put(partition: "p", key: "k", value: [UInt8](repeating: 0, count: s.limits.valueBytesMax + 1))
            }
            try expect(error.message.contains("\(s.limits.valueBytesMax)"), "error names the limit: \(error.message)")
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("small"), "old value kept")
            try await s.put(partition: "p", key: "max", value: [UInt8](repeating: 7, count: s.limits.valueBytesMax))
            try expect(try await s.get(partition: "p", key: "max")?.value.count == s.limits.valueBytesMax, "a value of exactly the limit fits")
        },
        ConformanceCase(name: "acquire by the same owner is idempotent and extends expiry") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            h.clock.advance(milliseconds: 4_000)
            let b = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            try expect(a.token == b.token, "same token: \(a.token) vs \(b.token)")
            try expect(b.expiresAtMilliseconds == a.expiresAtMilliseconds + 4_000, "expiry reset to now + ttl")
            try expect(try await s.inspectLock(partition: "p") == b, "inspect shows the lease")
        },
        ConformanceCase(name: "another owner gets locked with the holder and expiry") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            let error = try await expectError(.locked, "second owner") {
                try await s.acquireLock(partition: "p", owner: "server-2", ttlMilliseconds: 10_000)
            }
            try expect(error.holder?.owner == "server-1" && error.holder?.expiresAtMilliseconds == a.expiresAtMilliseconds, "holder in error: \(String(describing: error.holder))")
        },
        ConformanceCase(name: "writes to a locked partition need the current token") { h in
            let s = h.store
            try await s.put(partition: "p", key: "k", value: bytes("before"))
            let lock = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            try await expectError(.locked, "write without token") { try await s.put(partition: "p", key: "k", value: bytes("x")) }
            try await expectError(.locked, "write with wrong token") {
                try await s.put(partition: "p", key: "k", value: bytes("x"), lockToken: LockToken(lock.token.rawValue + 1))
            }
            try await expectError(.locked, "delete without token") { try await s.delete(partition: "p", key: "k") }
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("before"), "nothing written")
            try await s.put(partition: "p", key: "k", value: bytes("with token"), lockToken: lock.token)
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("with token"), "token write applied")
            try await s.put(partition: "other", key: "k", value: bytes("free"))
        },
        ConformanceCase(name: "a token sent to a never-locked partition is stale") { h in
            try await expectError(.locked, "token on unlocked partition") {
                try await h.store.put(partition: "p", key: "k", value: bytes("x"), lockToken: LockToken(12345))
            }
            try expect(try await h.store.get(partition: "p", key: "k") == nil, "nothing written")
        },
        ConformanceCase(name: "an expired lease fences its holder and gives a higher token") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 1_000)
            h.clock.advance(milliseconds: 999)
            try await s.put(partition: "p", key: "k", value: bytes("in time"), lockToken: a.token)
            h.clock.advance(milliseconds: 1)
            try expect(try await s.inspectLock(partition: "p") == nil, "expired lease is not shown")
            try await expectError(.locked, "write with expired token") {
                try await s.put(partition: "p", key: "k", value: bytes("late"), lockToken: a.token)
            }
            try await expectError(.locked, "renew of an expired lease") {
                try await s.renewLock(partition: "p", token: a.token, ttlMilliseconds: 1_000)
            }
            let b = try await s.acquireLock(partition: "p", owner: "server-2", ttlMilliseconds: 1_000)
            try expect(b.token > a.token, "new token \(b.token) > \(a.token)")
            try await expectError(.locked, "old holder after takeover") {
                try await s.put(partition: "p", key: "k", value: bytes("stale"), lockToken: a.token)
            }
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("in time"), "only the timely save applied")
            h.clock.advance(milliseconds: 5_000)
            let c = try await s.acquireLock(partition: "p", owner: "server-2", ttlMilliseconds: 1_000)
            try expect(c.token > b.token, "former owner re-acquiring after expiry gets a new token")
        },
        ConformanceCase(name: "a released lease's token is stale even while unlocked") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            try await s.releaseLock(partition: "p", token: a.token)
            try expect(try await s.inspectLock(partition: "p") == nil, "released")
            try await expectError(.locked, "write with released token") {
                try await s.put(partition: "p", key: "k", value: bytes("late"), lockToken: a.token)
            }
            try await expectError(.locked, "second release") { try await s.releaseLock(partition: "p", token: a.token) }
            try await s.put(partition: "p", key: "k", value: bytes("no token, unlocked"))
        },
        ConformanceCase(name: "renew extends a live lease; a wrong token cannot renew") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 1_000)
            h.clock.advance(milliseconds: 800)
            let r = try await s.renewLock(partition: "p", token: a.token, ttlMilliseconds: 1_000)
            try expect(r.token == a.token && r.expiresAtMilliseconds == a.expiresAtMilliseconds + 800, "renewed: \(r)")
            h.clock.advance(milliseconds: 800)
            try await s.put(partition: "p", key: "k", value: bytes("still mine"), lockToken: a.token)
            try await expectError(.locked, "renew with wrong token") {
                try await s.renewLock(partition: "p", token: LockToken(a.token.rawValue + 7), ttlMilliseconds: 1_000)
            }
            try await expectError(.invalidArgument, "ttl out of range") {
                try await s.renewLock(partition: "p", token: a.token, ttlMilliseconds: 0)
            }
        },
        ConformanceCase(name: "transfer hands the lease over with a higher token and fences the old one") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            let b = try await s.transferLock(partition: "p", token: a.token, to: "server-2", ttlMilliseconds: 5_000)
            try expect(b.owner == "server-2" && b.token > a.token, "transferred: \(b)")
            try await expectError(.locked, "old token after transfer") {
                try await s.put(partition: "p", key: "k", value: bytes("old"), lockToken: a.token)
            }
            try await expectError(.locked, "transfer with old token") {
                try await s.transferLock(partition: "p", token: a.token, to: "server-3", ttlMilliseconds: 5_000)
            }
            try await s.put(partition: "p", key: "k", value: bytes("new"), lockToken: b.token)
            try expect(try await s.inspectLock(partition: "p") == b, "inspect shows the new owner")
        },
        ConformanceCase(name: "save and release is one atomic commit") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            try await s.put(partition: "p", key: "k", value: bytes("1"), lockToken: a.token)
            let r = try await s.saveAndRelease(partition: "p", [.put(key: "k", value: bytes("final")), .put(key: "j", value: bytes("j"))], lockToken: a.token)
            try expect(r.version != nil, "final save has a version")
            try expect(try await s.inspectLock(partition: "p") == nil, "released with the save")
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("final"), "final save applied")
            try await expectError(.locked, "stale token after save-and-release") {
                try await s.put(partition: "p", key: "k", value: bytes("late"), lockToken: a.token)
            }
            // A save-and-release that fails (stale token or failed condition) writes nothing and keeps the lock.
            let b = try await s.acquireLock(partition: "p", owner: "server-2", ttlMilliseconds: 10_000)
            try await expectError(.locked, "save-and-release with the old token") {
                try await s.saveAndRelease(partition: "p", [.put(key: "k", value: bytes("stale"))], lockToken: a.token)
            }
            try await expectError(.preconditionFailed, "save-and-release with failing condition") {
                try await s.saveAndRelease(partition: "p", [.put(key: "k", value: bytes("x"), condition: .ifAbsent)], lockToken: b.token)
            }
            try expect(try await s.inspectLock(partition: "p")?.token == b.token, "lock kept after failed save-and-release")
            try expect(try await s.get(partition: "p", key: "k")?.value == bytes("final"), "nothing written")
            try await expectError(.invalidArgument, "release without token") {
                try await s.write(partition: "p", [.put(key: "k", value: [])], lockToken: nil, releaseLock: true)
            }
        },
        ConformanceCase(name: "break removes any lease and fences its holder") { h in
            let s = h.store
            let a = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            let broken = try await s.breakLock(partition: "p")
            try expect(broken?.token == a.token, "break returns the lease")
            try expect(try await s.inspectLock(partition: "p") == nil, "unlocked")
            try await expectError(.locked, "broken holder's write") {
                try await s.put(partition: "p", key: "k", value: bytes("x"), lockToken: a.token)
            }
            try expect(try await s.breakLock(partition: "p") == nil, "breaking an unlocked partition returns nil")
        },
        ConformanceCase(name: "lock and load returns every object in one call") { h in
            let s = h.store
            try await s.write(partition: "p", [.put(key: "b", value: bytes("2")), .put(key: "a", value: bytes("1"), contentType: "text/plain")], lockToken: nil, releaseLock: false)
            try await s.put(partition: "q", key: "other", value: bytes("x"))
            let (lock, objects) = try await s.acquireLockAndLoad(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            try expect(objects.map(\.key) == ["a", "b"], "objects \(objects.map(\.key))")
            try expect(objects[0].value == bytes("1") && objects[0].contentType == "text/plain", "a loaded with its content type")
            try expect(lock.owner == "server-1", "locked")
            let (_, empty) = try await s.acquireLockAndLoad(partition: "empty", owner: "server-1", ttlMilliseconds: 10_000)
            try expect(empty.isEmpty, "empty partition loads nothing")
        },
        ConformanceCase(name: "locks and data survive a restart; tokens never go back") { h in
            let a = try await h.store.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 60_000)
            let v = try await h.store.put(partition: "p", key: "k", value: bytes("saved"), lockToken: a.token)
            try await h.restart()
            try expect(try await h.store.inspectLock(partition: "p") == a, "same lease after restart")
            try expect(try await h.store.get(partition: "p", key: "k") == StoredObject(key: "k", version: v, contentType: defaultContentType, value: bytes("saved")), "data after restart")
            try await h.store.put(partition: "p", key: "k", value: bytes("again"), lockToken: a.token)
            h.clock.advance(milliseconds: 60_000)
            try await h.restart()
            let b = try await h.store.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 60_000)
            try expect(b.token > a.token, "token after restart and expiry \(b.token) > \(a.token)")
            let w = try await h.store.put(partition: "p", key: "k2", value: [], lockToken: b.token)
            try expect(w > b.token.rawValue, "versions keep increasing after restart")
        },
        ConformanceCase(name: "concurrent acquires: exactly one owner wins") { h in
            let s = h.store
            let winners = try await withThrowingTaskGroup(of: String?.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        do {
                            return try await s.acquireLock(partition: "race", owner: "server-\(i)", ttlMilliseconds: 10_000).owner
                        } catch let e as JellyError where e.code == .locked {
                            return nil
                        }
                    }
                }
                var w: [String] = []
                for try await r in group { if let r { w.append(r) } }
                return w
            }
            try expect(winners.count == 1, "winners: \(winners)")
        },
        ConformanceCase(name: "concurrent compare-and-set: exactly one writer wins") { h in
            let s = h.store
            let v = try await s.put(partition: "p", key: "counter", value: bytes("0"))
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        do {
                            try await s.put(partition: "p", key: "counter", value: bytes("\(i)"), condition: .ifVersion(v))
                            return true
                        } catch let e as JellyError where e.code == .preconditionFailed {
                            return false
                        }
                    }
                }
                var n = 0
                for try await r in group where r { n += 1 }
                return n
            }
            try expect(wins == 1, "\(wins) writers won the same compare-and-set")
        },
    ]
}
