import JellyCore

/// One sync round: pull the server's changes, push the queue (resolving conflicts), pull
/// again. Each step's local effect is one atomic commit (`ReplicaStorage.commit`).
extension JellyReplica {
    /// What a round did.
    public struct SyncReport: Sendable, Equatable {
        public var pushed = 0
        public var pulled = 0
        public var conflicts = 0
        /// A game server holds the lock: the queue waits for its release.
        public var lockedBy: String?
    }

    /// Runs one sync round now. Throws when the server cannot be reached (nothing is lost: the
    /// queue stays, and the next round carries on).
    @discardableResult
    public func sync() async throws -> SyncReport {
        await enter(.round)
        defer { leave(.round) }
        var report = SyncReport()
        report.pulled += try await pull()
        var unresolved: [UInt64] = []
        try await push(&report, unresolved: &unresolved)
        if report.pushed > 0 || !unresolved.isEmpty {
            report.pulled += try await pull()
            if !unresolved.isEmpty {
                // Conflicts answered without theirs: decided on the state just pulled.
                try await resolveAfterPull(unresolved, report: &report)
                try await push(&report, unresolved: &unresolved)
            }
        }
        report.lockedBy = lockOwner
        emit(.synced(pushed: report.pushed, pulled: report.pulled))
        return report
    }

    // MARK: Pull

    /// Applies the feed's pages after the cursor; returns how many changes it applied.
    func pull() async throws -> Int {
        var count = 0
        while true {
            let batch = try await configuration.remote.changes(
                partition: configuration.partition, since: state.cursor, limit: configuration.pullLimit, epoch: state.epoch, role: configuration.role
            )
            await enter(.changing)
            var changes: [ReplicaStorage.Change] = []
            var updated = server
            var touched: [String] = []
            if batch.reset {
                for key in server.keys { changes.append(.server(key, nil)); touched.append(key) }
                updated = [:]
            }
            for c in batch.changes {
                // A push's answer may already have stored a newer version of the object.
                if let have = updated[c.key], have.version > c.version { continue }
                if let o = c.object {
                    let object = ServerObject(version: c.version, value: ReplicaValue(o.value, contentType: o.contentType))
                    updated[c.key] = object
                    changes.append(.server(c.key, object))
                } else {
                    updated[c.key] = nil
                    changes.append(.server(c.key, nil))
                }
                touched.append(c.key)
            }
            var newState = state
            newState.cursor = batch.next
            newState.epoch = batch.epoch
            changes.append(.state(newState))
            do {
                try await storage.commit(changes)
            } catch {
                leave(.changing)
                throw error
            }
            server = updated
            state = newState
            leave(.changing)
            let wasLocked = lockOwner
            lockOwner = batch.lock?.owner
            if batch.reset { emit(.reset) }
            for key in Set(touched) where latestPending(key) == nil { emit(.changed(key: key, object: visible(key))) }
            if let owner = lockOwner, wasLocked == nil { emit(.locked(owner: owner)) }
            count += batch.changes.count
            if !batch.more { return count }
        }
    }

    // MARK: Push

    /// Pushes the queue in batches of `pushBatch`, one edit per key per push, until it is
    /// empty, the lock is held, or a push makes no progress.
    func push(_ report: inout SyncReport, unresolved: inout [UInt64]) async throws {
        while lockOwner == nil {
            var keys = Set<String>()
            var batch: [PendingMutation] = []
            for m in pending.values.sorted(by: { $0.id < $1.id }) {
                if unresolved.contains(m.id) { break }
                if !keys.insert(m.key).inserted || batch.count == configuration.pushBatch { break }
                batch.append(m)
            }
            if batch.isEmpty { return }
            // Sent is durable before the push: from then on the edit may be applied, so a later
            // edit of the key never replaces it.
            let unsent = batch.filter { !$0.sent }
            if !unsent.isEmpty {
                await enter(.changing)
                do {
                    try await storage.commit(unsent.map { var m = $0; m.sent = true; return .pending(m.id, m) })
                } catch {
                    leave(.changing)
                    throw error
                }
                for m in unsent { pending[m.id]?.sent = true }
                leave(.changing)
            }
            let result: SyncResult
            do {
                result = try await configuration.remote.sync(
                    partition: configuration.partition, clientID: state.clientID, mutations: batch.map(\.clientMutation), role: configuration.role
                )
            } catch let error as JellyError where error.code == .locked {
                lockOwner = error.holder?.owner ?? "a game server"
                emit(.locked(owner: lockOwner ?? ""))
                return
            }
            try await handle(result, batch: batch, report: &report, unresolved: &unresolved)
            if result.results.isEmpty { return }
        }
    }

    /// Applies a push's answer in one local commit.
    private func handle(_ result: SyncResult, batch: [PendingMutation], report: inout SyncReport, unresolved: inout [UInt64]) async throws {
        await enter(.changing)
        defer { leave(.changing) }
        var work = Work(replica: self)
        for entry in result.results {
            guard let m = work.pending[entry.id] else { continue }
            var outcome = entry.result
            if case .duplicate(let first) = outcome {
                // A result older than the server keeps: it was processed; the pull brings its state.
                outcome = first ?? .applied(version: 0)
            }
            switch outcome {
            case .applied(let version):
                work.remove(m.id)
                report.pushed += 1
                guard version > 0 else { break }
                work.setServer(m.key, m.mine.map { ServerObject(version: version, value: $0) })
                // Edits made on top of this one are now based on its version.
                for later in work.pending.values where later.key == m.key && later.id > m.id && later.baseVersion == m.baseVersion {
                    var rebased = later
                    rebased.baseVersion = m.value == nil ? 0 : version
                    rebased.baseValue = m.value
                    rebased.baseContentType = m.contentType
                    work.put(rebased)
                }
            case .conflict(let current):
                report.conflicts += 1
                if current.object == nil && !current.deleted {
                    unresolved.append(m.id) // theirs is unknown here: decided after the next pull
                    continue
                }
                let theirs = current.object.map { ReplicaValue($0.value, contentType: $0.contentType) }
                work.resolve(m, theirs: theirs, theirsVersion: current.deleted ? 0 : current.version)
            case .rejected(let code, let message):
                work.remove(m.id)
                work.events.append(.rejected(key: m.key, code: code.name, message: message))
            case .duplicate:
                break
            }
        }
        // Not processed (after a repeated key): never applied, so it may be replaced again.
        for m in batch where m.id > result.lastMutationID {
            if var again = work.pending[m.id], again.sent {
                again.sent = false
                work.put(again)
            }
        }
        try await work.commit(to: self)
    }

    private func resolveAfterPull(_ ids: [UInt64], report: inout SyncReport) async throws {
        await enter(.changing)
        defer { leave(.changing) }
        var work = Work(replica: self)
        for id in ids {
            guard let m = work.pending[id] else { continue }
            let theirs = work.server[m.key]
            work.resolve(m, theirs: theirs?.value, theirsVersion: theirs?.version ?? 0)
        }
        try await work.commit(to: self)
    }

    /// Apply-after-commit bookkeeping: changes are made on copies, committed in one batch, and
    /// only then become the replica's state.
    struct Work {
        var pending: [UInt64: PendingMutation]
        var server: [String: ServerObject]
        var state: ReplicaState
        var changes: [ReplicaStorage.Change] = []
        var events: [ReplicaEvent] = []
        var touched = Set<String>()
        let resolver: ReplicaResolver

        init(replica: isolated JellyReplica) {
            pending = replica.pending
            server = replica.server
            state = replica.state
            resolver = replica.configuration.resolver
        }

        mutating func remove(_ id: UInt64) {
            if let m = pending.removeValue(forKey: id) { touched.insert(m.key) }
            changes.append(.pending(id, nil))
        }

        mutating func put(_ m: PendingMutation) {
            pending[m.id] = m
            touched.insert(m.key)
            changes.append(.pending(m.id, m))
        }

        mutating func setServer(_ key: String, _ object: ServerObject?) {
            server[key] = object
            touched.insert(key)
            changes.append(.server(key, object))
        }

        /// Asks the resolver about `m` against theirs; every queued edit of the key is replaced
        /// by the outcome, pushed as a new edit based on theirs.
        mutating func resolve(_ m: PendingMutation, theirs: ReplicaValue?, theirsVersion: UInt64) {
            let all = pending.values.filter { $0.key == m.key }.sorted { $0.id < $1.id }
            let mine = all.last?.mine
            let resolution = resolver(ReplicaConflict(key: m.key, base: m.base, mine: mine, theirs: theirs, theirsVersion: theirsVersion))
            for old in all { remove(old.id) }
            setServer(m.key, theirs.map { ServerObject(version: theirsVersion, value: $0) })
            var outcome: ReplicaValue??
            switch resolution {
            case .theirs: outcome = nil
            case .mine: outcome = .some(mine)
            case .merged(let value): outcome = .some(value)
            case .delete: outcome = theirs == nil ? nil : .some(nil)
            }
            if let value = outcome {
                let id = state.nextMutationID
                state.nextMutationID += 1
                put(PendingMutation(id: id, key: m.key, value: value?.value, contentType: value?.contentType, baseVersion: theirsVersion, baseValue: theirs?.value, baseContentType: theirs?.contentType, sent: false))
                changes.append(.state(state))
            }
            events.append(.resolved(key: m.key, resolution: resolution, mine: mine))
        }

        func commit(to replica: isolated JellyReplica) async throws {
            guard !changes.isEmpty else { return }
            try await replica.storage.commit(changes)
            replica.pending = pending
            replica.server = server
            replica.state = state
            for e in events { replica.emit(e) }
            for key in touched { replica.emit(.changed(key: key, object: replica.visible(key))) }
        }
    }
}
