import JellyCore

/// The change feed and client pushes (docs/sync.md), as executable cases for every backend.
extension ConformanceSuite {
    static let feedCases: [ConformanceCase] = [
        ConformanceCase(name: "the feed answers each object once at its latest version, in version order, tombstones included") { h in
            let s = h.store
            let empty = try await s.changes(partition: "p", since: 0)
            try expect(empty.changes.isEmpty && !empty.reset && !empty.epoch.isEmpty, "an empty partition: \(empty)")
            let v1 = try await s.put(partition: "p", key: "a", value: bytes("a1"))
            let v2 = try await s.put(partition: "p", key: "b", value: bytes("b1"))
            let v3 = try await s.put(partition: "p", key: "a", value: bytes("a2"), contentType: "text/plain")
            try await s.delete(partition: "p", key: "b")
            let whole = try await s.changes(partition: "p", since: 0)
            try expect(whole.changes.map(\.key) == ["a"] && whole.changes[0].version == v3, "from 0 the live state only: \(whole.changes)")
            try expect(whole.changes[0].object?.value == bytes("a2") && whole.changes[0].object?.contentType == "text/plain", "with value and type")
            try expect(!whole.reset && whole.next > v3, "next \(whole.next) is past the delete")
            let after = try await s.changes(partition: "p", since: v1)
            try expect(after.changes.map(\.key) == ["a", "b"], "a then b's tombstone: \(after.changes.map(\.key))")
            try expect(after.changes[0].version == v3 && after.changes[1].deleted && after.changes[1].version > v3, "versions \(after.changes)")
            try expect(after.next == whole.next, "same next: \(after.next) \(whole.next)")
            let later = try await s.changes(partition: "p", since: v2)
            try expect(later.changes.map(\.key) == ["a", "b"], "after v2 both changed again")
            let nothing = try await s.changes(partition: "p", since: whole.next)
            try expect(nothing.changes.isEmpty && nothing.next == whole.next && !nothing.more, "nothing new: \(nothing)")
            try expect(try await s.changes(partition: "other", since: 0).changes.isEmpty, "other partitions are apart")
        },
        ConformanceCase(name: "feed pages never split a commit, and a cursor from another epoch gets a reset") { h in
            let s = h.store
            for key in ["c", "d"] { try await s.put(partition: "p", key: key, value: bytes(key)) }
            let batch = try await s.write(partition: "p", [.put(key: "x", value: []), .put(key: "y", value: []), .put(key: "z", value: [])], lockToken: nil, releaseLock: false)
            var page = try await s.changes(partition: "p", since: 0, limit: 1, epoch: nil, role: .server)
            try expect(page.changes.map(\.key) == ["c"] && page.more, "first page: \(page.changes.map(\.key)) more \(page.more)")
            page = try await s.changes(partition: "p", since: page.next, limit: 2, epoch: nil, role: .server)
            try expect(page.changes.map(\.key) == ["d", "x", "y", "z"], "the batch comes whole: \(page.changes.map(\.key))")
            try expect(page.changes.dropFirst().allSatisfy { $0.version == batch.version }, "one version")
            try expect(!page.more, "and that is all")
            let foreign = try await s.changes(partition: "p", since: page.next, limit: 100, epoch: "not-" + page.epoch, role: .server)
            try expect(foreign.reset && foreign.changes.count == 5, "another epoch: reset with the whole state: \(foreign.reset) \(foreign.changes.count)")
            let same = try await s.changes(partition: "p", since: page.next, limit: 100, epoch: page.epoch, role: .server)
            try expect(!same.reset && same.changes.isEmpty, "the same epoch: nothing new")
            try await h.restart()
            let again = try await h.store.changes(partition: "p", since: page.next, limit: 100, epoch: page.epoch, role: .server)
            try expect(again.epoch == page.epoch && !again.reset && again.changes.isEmpty, "a restart keeps the epoch: \(again.epoch) \(page.epoch)")
            try await expectError(.invalidArgument, "limit 0") { try await h.store.changes(partition: "p", since: 0, limit: 0, epoch: nil, role: .server) }
        },
        ConformanceCase(name: "a wait for changes is woken by the commit, by a lock, and times out otherwise") { h in
            let s = h.store
            let start = try await s.changes(partition: "p", since: 0)
            let quiet = ContinuousClock.now
            let changed = try await s.waitForChanges(partition: "p", after: start.next, timeoutMilliseconds: 100)
            try expect(!changed && ContinuousClock.now - quiet >= .milliseconds(90), "nothing committed: timed out")
            // Woken, not timed out: the wait allows a minute (a fully loaded test machine once
            // took over ten seconds to run the waiter); a lost wake-up shows as false.
            let waiter = Task { try await s.waitForChanges(partition: "p", after: start.next, timeoutMilliseconds: 60_000) }
            try await Task.sleep(for: .milliseconds(100))
            let t0 = ContinuousClock.now
            try await s.put(partition: "p", key: "k", value: bytes("v"))
            let woke = try await waiter.value
            let waited = ContinuousClock.now - t0
            try expect(woke && waited < .seconds(45), "woken by the put (\(woke) after \(waited))")
            let cursor = try await s.changes(partition: "p", since: start.next).next
            let lockWaiter = Task { try await s.waitForChanges(partition: "p", after: cursor, timeoutMilliseconds: 60_000) }
            try await Task.sleep(for: .milliseconds(100))
            let lock = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            try expect(try await lockWaiter.value, "woken by the lock")
            let locked = try await s.changes(partition: "p", since: cursor)
            try expect(locked.lock?.owner == "server-1" && locked.next > cursor && locked.changes.isEmpty, "the feed shows the lock: \(String(describing: locked.lock))")
            try await s.releaseLock(partition: "p", token: lock.token)
            let released = try await s.changes(partition: "p", since: locked.next)
            try expect(released.lock == nil && released.next > locked.next, "and its release")
            try expect(try await s.waitForChanges(partition: "p", after: cursor, timeoutMilliseconds: 5000), "an old cursor returns at once")
        },
        ConformanceCase(name: "a push that only records progress moves the cursor, and a wait from there waits") { h in
            let s = h.store
            let v = try await s.put(partition: "p", key: "k", value: bytes("1"))
            // A stale base: a conflict, so the push commits only the client's progress.
            let r = try await s.sync(partition: "p", clientID: "phone", mutations: [ClientMutation(id: 1, key: "k", operation: .put(value: bytes("2"), contentType: nil), baseVersion: v + 1000)])
            guard case .conflict = r.results.first?.result else { throw ConformanceFailure("expected a conflict: \(r)") }
            let feed = try await s.changes(partition: "p", since: v)
            try expect(feed.changes.isEmpty, "no object changed: \(feed.changes)")
            let t0 = ContinuousClock.now
            let changed = try await s.waitForChanges(partition: "p", after: feed.next, timeoutMilliseconds: 300)
            try expect(!changed && ContinuousClock.now - t0 >= .milliseconds(250), "nothing committed after next: the wait must wait, not return at once")
        },
        ConformanceCase(name: "a client's feed leaves out what it may not read; the cursor still moves") { h in
            let s = h.store
            try await s.put(partition: "p", key: "inv", value: bytes("sword"), access: ObjectAccess(read: .owner, write: .owner))
            try await s.put(partition: "p", key: "secret", value: bytes("flags"))
            try await s.put(partition: "p", key: "news", value: bytes("hi"), access: ObjectAccess(read: .public))
            let client = try await h.clientStore(partition: "p")
            let feed = try await client.changes(partition: "p", since: 0, limit: 100, epoch: nil, role: .owner)
            try expect(Set(feed.changes.map(\.key)) == ["inv", "news"], "the client sees \(feed.changes.map(\.key))")
            let server = try await s.changes(partition: "p", since: 0)
            try expect(feed.next == server.next, "cursors agree: \(feed.next) \(server.next)")
            try await s.put(partition: "p", key: "secret", value: bytes("more flags"))
            let next = try await client.changes(partition: "p", since: feed.next, limit: 100, epoch: nil, role: .owner)
            try expect(next.changes.isEmpty && next.next > feed.next, "a hidden change moves the cursor only")
        },
    ]

    static let syncCases: [ConformanceCase] = [
        ConformanceCase(name: "a push applies in order in one commit; a repeat gets the first results") { h in
            let s = h.store
            let v1 = try await s.put(partition: "p", key: "gold", value: bytes("10"))
            let push = [
                ClientMutation(id: 1, key: "gold", operation: .put(value: bytes("15"), contentType: "text/plain"), baseVersion: v1),
                ClientMutation(id: 2, key: "gem", operation: .put(value: bytes("1"), contentType: nil), baseVersion: 0),
                ClientMutation(id: 3, key: "old", operation: .delete, baseVersion: 0),
            ]
            let first = try await s.sync(partition: "p", clientID: "phone", mutations: push)
            try expect(first.lastMutationID == 3 && first.results.map(\.id) == [1, 2, 3], "all processed: \(first)")
            guard case .applied(let v) = first.results[0].result else { throw ConformanceFailure("gold: \(first.results[0])") }
            try expect(first.results.allSatisfy { $0.result == .applied(version: v) }, "one commit, one version: \(first.results)")
            let gold = try await s.get(partition: "p", key: "gold")
            try expect(gold?.value == bytes("15") && gold?.version == v && gold?.contentType == "text/plain", "gold \(String(describing: gold))")
            let again = try await s.sync(partition: "p", clientID: "phone", mutations: push)
            try expect(again.lastMutationID == 3, "last id stays")
            try expect(again.results.map(\.result) == first.results.map { .duplicate($0.result) }, "duplicates with the first results: \(again.results)")
            try expect(try await s.get(partition: "p", key: "gold")?.version == v, "nothing applied twice")
            // Another client's ids are its own.
            let other = try await s.sync(partition: "p", clientID: "tablet", mutations: [ClientMutation(id: 1, key: "gem", operation: .put(value: bytes("2"), contentType: nil), baseVersion: v)])
            guard case .applied = other.results.first?.result else { throw ConformanceFailure("tablet: \(other)") }
            // A stale base is a conflict with the current object.
            let stale = try await s.sync(partition: "p", clientID: "phone", mutations: [ClientMutation(id: 4, key: "gem", operation: .put(value: bytes("3"), contentType: nil), baseVersion: v)])
            guard case .conflict(let theirs) = stale.results.first?.result else { throw ConformanceFailure("expected a conflict: \(stale)") }
            try expect(theirs.object?.value == bytes("2") && !theirs.deleted && theirs.version > v, "theirs: \(theirs)")
            let gem = try await s.get(partition: "p", key: "gem")
            try expect(stale.lastMutationID == 4 && gem?.value == bytes("2"), "a conflict counts as processed, writes nothing")
            let deletedBase = try await s.sync(partition: "p", clientID: "phone", mutations: [ClientMutation(id: 5, key: "old", operation: .put(value: [], contentType: nil), baseVersion: 7)])
            guard case .conflict(let gone) = deletedBase.results.first?.result, gone.deleted, gone.version == 0 else { throw ConformanceFailure("a missing object: \(deletedBase)") }
        },
        ConformanceCase(name: "a push while a game server holds the lock is refused whole and processes nothing") { h in
            let s = h.store
            try await s.put(partition: "p", key: "hp", value: bytes("1"), access: ObjectAccess(read: .owner, write: .owner))
            let base = try await s.get(partition: "p", key: "hp")?.version ?? 0
            let lock = try await s.acquireLock(partition: "p", owner: "server-1", ttlMilliseconds: 10_000)
            let client = try await h.clientStore(partition: "p")
            let push = [ClientMutation(id: 1, key: "hp", operation: .put(value: bytes("2"), contentType: nil), baseVersion: base)]
            let refused = try await expectError(.locked, "push under a session lock") {
                try await client.sync(partition: "p", clientID: "phone", mutations: push, role: .owner)
            }
            try expect(refused.holder?.owner == "server-1", "the holder is named: \(String(describing: refused.holder))")
            try await expectError(.locked, "a game server's push is refused too") { try await s.sync(partition: "p", clientID: "tool", mutations: []) }
            try expect(try await s.get(partition: "p", key: "hp")?.value == bytes("1"), "nothing written")
            try await s.releaseLock(partition: "p", token: lock.token)
            let applied = try await client.sync(partition: "p", clientID: "phone", mutations: push, role: .owner)
            guard case .applied = applied.results.first?.result else { throw ConformanceFailure("after the release the same push applies: \(applied)") }
        },
        ConformanceCase(name: "a client's push changes only client-writable objects; bad mutations are rejected alone") { h in
            let s = h.store
            try await s.put(partition: "p", key: "inv", value: bytes("a"), access: ObjectAccess(read: .owner, write: .owner))
            try await s.put(partition: "p", key: "flags", value: bytes("x"))
            let inv = try await s.get(partition: "p", key: "inv")?.version ?? 0
            let flags = try await s.get(partition: "p", key: "flags")?.version ?? 0
            let client = try await h.clientStore(partition: "p")
            let r = try await client.sync(partition: "p", clientID: "phone", mutations: [
                ClientMutation(id: 1, key: "flags", operation: .put(value: bytes("cheat"), contentType: nil), baseVersion: flags),
                ClientMutation(id: 2, key: "new", operation: .put(value: bytes("1"), contentType: nil), baseVersion: 0),
                ClientMutation(id: 3, key: "a/b", operation: .put(value: bytes("1"), contentType: nil), baseVersion: 0),
                ClientMutation(id: 4, key: "inv", operation: .put(value: bytes("b"), contentType: nil), baseVersion: inv),
                ClientMutation(id: 5, key: "flags", operation: .delete, baseVersion: 1),
            ], role: .owner)
            let codes = r.results.map { result -> String in
                switch result.result {
                case .applied: return "applied"
                case .rejected(let code, _): return code.name
                case .conflict(let c): return "conflict:" + (c.object == nil ? "hidden" : "shown")
                case .duplicate: return "duplicate"
                }
            }
            try expect(codes == ["forbidden", "forbidden", "invalid_argument", "applied", "conflict:hidden"], "results \(codes)")
            try expect(r.lastMutationID == 5, "all five processed")
            let flagsNow = try await s.get(partition: "p", key: "flags")
            let created = try await s.get(partition: "p", key: "new")
            try expect(flagsNow?.value == bytes("x") && created == nil, "nothing forbidden written")
            try expect(try await s.get(partition: "p", key: "inv")?.value == bytes("b"), "inv written")
            let tooMany = (1...(s.limits.syncMutationsMax + 1)).map { ClientMutation(id: UInt64($0), key: "k\($0)", operation: .delete, baseVersion: 0) }
            try await expectError(.tooLarge, "too many mutations") { try await s.sync(partition: "p", clientID: "bulk", mutations: tooMany) }
            try await expectError(.invalidArgument, "a bad client id") { try await s.sync(partition: "p", clientID: "a/b", mutations: []) }
        },
        ConformanceCase(name: "a push applies one mutation per key; the next waits for the next push") { h in
            let s = h.store
            let r = try await s.sync(partition: "p", clientID: "phone", mutations: [
                ClientMutation(id: 1, key: "k", operation: .put(value: bytes("1"), contentType: nil), baseVersion: 0),
                ClientMutation(id: 2, key: "k", operation: .put(value: bytes("2"), contentType: nil), baseVersion: 0),
            ])
            try expect(r.lastMutationID == 1 && r.results.map(\.id) == [1], "only the first: \(r)")
            guard case .applied(let v) = r.results[0].result else { throw ConformanceFailure("\(r)") }
            let next = try await s.sync(partition: "p", clientID: "phone", mutations: [
                ClientMutation(id: 1, key: "k", operation: .put(value: bytes("1"), contentType: nil), baseVersion: 0),
                ClientMutation(id: 2, key: "k", operation: .put(value: bytes("2"), contentType: nil), baseVersion: v),
            ])
            let k = try await s.get(partition: "p", key: "k")
            try expect(next.results.map(\.result) == [.duplicate(.applied(version: v)), .applied(version: k?.version ?? 0)] && k?.value == bytes("2"), "\(next)")
        },
        ConformanceCase(name: "a push's bookkeeping never shows, and its results survive a restart") { h in
            let s = h.store
            let push = [ClientMutation(id: 1, key: "k", operation: .put(value: bytes("1"), contentType: nil), baseVersion: 0)]
            let first = try await s.sync(partition: "p", clientID: "phone", mutations: push)
            try expect(try await s.list(partition: "p", after: nil, limit: 100).objects.map(\.key) == ["k"], "list shows objects only")
            try expect(try await s.changes(partition: "p", since: 0).changes.map(\.key) == ["k"], "the feed shows objects only")
            let loaded = try await s.acquireLockAndLoad(partition: "p", owner: "o", ttlMilliseconds: 1000)
            try expect(loaded.objects.map(\.key) == ["k"], "a load shows objects only")
            try await s.releaseLock(partition: "p", token: loaded.lock.token)
            try await expectError(.invalidArgument, "system keys cannot be read") { try await s.get(partition: "p", key: "/sync") }
            try await h.restart()
            let again = try await h.store.sync(partition: "p", clientID: "phone", mutations: push)
            try expect(again.results.map(\.result) == [.duplicate(first.results[0].result)], "after a restart still a duplicate: \(again)")
        },
    ]
}
