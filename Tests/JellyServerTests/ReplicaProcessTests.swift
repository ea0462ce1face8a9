import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// A `jelly replica` process: one command line in, one answer line out.
final class ReplicaWorker: @unchecked Sendable {
    let process: Subprocess
    private var buffer: [UInt8] = []
    let name: String

    init(name: String, url: String, token: String, dir: String) throws {
        self.name = name
        // Small pushes, so a queue takes several and a kill can land between them.
        process = try Subprocess(
            try jellyExecutablePath(),
            ["replica", "--url", url, "--token", token, "--partition", "player", "--dir", dir, "--merge", "append", "--push-batch", "3"],
            input: true, output: .pipe)
        let ready = try readLine()
        guard ready.hasPrefix("ready ") else { throw ConformanceFailure("\(name): \(ready)") }
    }

    /// Sends a command and returns its answer line.
    @discardableResult
    func send(_ line: String) throws -> String {
        process.standardInput?.write(Data((line + "\n").utf8))
        return try readLine()
    }

    /// Sends a command without waiting for the answer.
    func post(_ line: String) { process.standardInput?.write(Data((line + "\n").utf8)) }

    func readLine() throws -> String {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            let chunk = process.standardOutput?.availableData ?? Data()
            if chunk.isEmpty { throw ConformanceFailure("\(name) exited (status \(process.isRunning ? -1 : process.terminationStatus))") }
            buffer.append(contentsOf: chunk)
        }
    }

    func kill9() {
        process.send(SIGKILL)
        process.waitUntilExit()
    }

    func quit() throws {
        _ = try send("quit")
        process.waitUntilExit()
    }
}

/// Real processes: `jelly serve`, a game server holding the session lock, and three `jelly
/// replica` processes of one partition that edit offline, come back in turn, are killed
/// mid-push, and outlive a server killed mid-push. Every token any replica appended must end
/// up exactly once in the server's objects, and nothing a replica pushed may land while the
/// session holds the lock.
@Suite(.serialized) struct ReplicaProcessTests {
    static let serverKey = "replica-test-server-key-0123456789"
    static let secret = "replica-test-hs256-secret-of-32-bytes!!"
    static let keys = (0..<5).map { "log\($0)" }
    static let access = ObjectAccess(read: .owner, write: .owner)

    func startServer(_ dir: TemporaryDirectory, extra: [String: Any] = [:]) throws -> ServerProcess {
        var config: [String: Any] = [
            "auth": [
                "api_keys": [["name": "game", "key": Self.serverKey, "role": "server"]],
                "client_tokens": ["hs256_secret": Self.secret],
            ],
        ]
        config.merge(extra) { _, b in b }
        let path = dir.path + "/jelly.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return try ServerProcess(directory: dir.path + "/data", extraArguments: ["--config", path])
    }

    func gameServer(_ server: ServerProcess) throws -> JellyClient {
        try JellyClient(JellyClient.Configuration(url: server.base, bearerToken: Self.serverKey))
    }

    /// The server's objects as token lists.
    func serverTokens(_ game: JellyClient) async throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        for key in Self.keys {
            let text = String(decoding: try await game.get(partition: "player", key: key)?.value ?? [], as: UTF8.self)
            out[key] = text.split(separator: ",").map(String.init)
        }
        return out
    }

    @Test func threeReplicasASessionAndKilledProcessesConverge() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var server = try startServer(dir)
        defer { server.kill(signal: SIGKILL) }
        var game = try gameServer(server)
        for key in Self.keys { try await game.put(partition: "player", key: key, value: [], access: Self.access) }
        let token = try await hs256ClientToken("player", secret: Self.secret)
        var workers = try ["a", "b", "c"].map { try ReplicaWorker(name: $0, url: server.base, token: token, dir: dir.path + "/replica-" + $0) }
        defer { for w in workers { w.kill9() } }
        var appended: [String: String] = [:] // token → key
        var n = 0
        func append(_ w: ReplicaWorker, count: Int) throws {
            for _ in 0..<count {
                let key = Self.keys[(n * 7 + w.name.count) % Self.keys.count]
                let tok = "\(w.name)\(n)"
                n += 1
                #expect(try w.send("append \(key) \(tok)") == "ok")
                appended[tok] = key
            }
        }

        // Online once, then offline: each makes conflicting edits to the same five objects.
        for w in workers { #expect(try w.send("sync").hasPrefix("synced")) }
        for w in workers { try append(w, count: 12) }

        // A game server's session: the replicas come back in turn while it holds the lock.
        let session = try await game.acquireLockAndLoad(partition: "player", owner: "game-1", ttlMilliseconds: 60_000)
        let loaded = Dictionary(uniqueKeysWithValues: session.objects.map { ($0.key, $0.version) })
        for w in workers {
            let answer = try w.send("sync")
            #expect(answer.hasSuffix("locked=game-1"), "\(w.name) during the session: \(answer)")
        }
        for key in Self.keys {
            #expect(try await game.get(partition: "player", key: key)?.version == loaded[key], "\(key) changed under the session lock")
        }
        let sessionLog0 = String(decoding: session.objects.first { $0.key == "log0" }?.value ?? [], as: UTF8.self)
        try await game.saveAndRelease(partition: "player", [.put(key: "log0", value: Array((sessionLog0.isEmpty ? "S1" : sessionLog0 + ",S1").utf8), access: Self.access)], lockToken: session.lock.token)
        appended["S1"] = "log0"

        // Back in turn after the release.
        for w in workers {
            let answer = try w.send("sync")
            #expect(answer.hasPrefix("synced") && answer.hasSuffix("locked=-"), "\(w.name): \(answer)")
        }

        /// Waits until a commit after `cursor` lands (the first push of a queue), by the feed.
        func waitForCommit(after cursor: UInt64) async throws {
            for _ in 0..<5000 {
                if try await game.changes(partition: "player", since: cursor, limit: 1).next > cursor { return }
            }
            throw ConformanceFailure("no push landed")
        }
        /// How many of `tokens` the server holds.
        func landed(_ tokens: Set<String>) async throws -> Int {
            try await serverTokens(game).values.flatMap { $0 }.filter(tokens.contains).count
        }

        // A replica killed mid-push comes back with its queue and applies nothing twice.
        var before = Set(appended.keys)
        var cursor = try await game.changes(partition: "player", since: 0).next
        try append(workers[2], count: 150)
        workers[2].post("sync")
        try await waitForCommit(after: cursor)
        workers[2].kill9()
        let landedBeforeKill = try await landed(Set(appended.keys).subtracting(before))
        workers[2] = try ReplicaWorker(name: "c", url: server.base, token: token, dir: dir.path + "/replica-c")
        #expect(try workers[2].send("sync").hasPrefix("synced"))

        // The server killed mid-push: the replica's push fails or lands; either way, after the
        // restart nothing is lost and nothing is doubled.
        before = Set(appended.keys)
        cursor = try await game.changes(partition: "player", since: 0).next
        try append(workers[1], count: 150)
        workers[1].post("sync")
        try await waitForCommit(after: cursor)
        server.kill(signal: SIGKILL)
        // Usually mid-queue (pushes of 3); a run where it was all in already still checks the rest.
        print("replica killed after \(landedBeforeKill) of 150 tokens landed")
        let answer = try workers[1].readLine()
        #expect(answer.hasPrefix("synced") || answer.hasPrefix("error"), "b: \(answer)")
        try await game.close()
        server = try startServer(dir)
        game = try gameServer(server)
        print("server killed after \(try await landed(Set(appended.keys).subtracting(before))) of 150 tokens landed")
        workers[1].kill9()
        workers[1] = try ReplicaWorker(name: "b", url: server.base, token: token, dir: dir.path + "/replica-b")
        workers[0].kill9()
        workers[0] = try ReplicaWorker(name: "a", url: server.base, token: token, dir: dir.path + "/replica-a")
        workers[2].kill9()
        workers[2] = try ReplicaWorker(name: "c", url: server.base, token: token, dir: dir.path + "/replica-c")

        // Everyone syncs until nothing is pending; then all agree with the server.
        for _ in 0..<3 { for w in workers { #expect(try w.send("sync").hasPrefix("synced")) } }
        for w in workers { #expect(try w.send("pending") == "pending 0", "\(w.name) still has a queue") }
        let final = try await serverTokens(game)
        for (tok, key) in appended {
            let count = final[key]?.filter { $0 == tok }.count ?? 0
            #expect(count == 1, "token \(tok) is \(count) times in \(key): \(final[key] ?? [])")
        }
        #expect(final.values.reduce(0) { $0 + $1.count } == appended.count, "no token from nowhere")
        var expected: [String: String] = [:]
        for (key, tokens) in final { expected[key] = tokens.joined(separator: ",") }
        for w in workers {
            let dump = try w.send("dump")
            let object = try JSONSerialization.jsonObject(with: Data(dump.dropFirst(5).utf8)) as? [String: String]
            #expect(object == expected, "\(w.name) sees \(String(describing: object)), the server has \(expected)")
        }
        // In the background, over the feed's WebSocket: an edit on one replica reaches another
        // without a sync command.
        for w in workers { #expect(try w.send("start") == "ok") }
        #expect(try workers[0].send("append log4 live") == "ok")
        var seen = false
        for _ in 0..<3000 where !seen {
            seen = try workers[2].send("get log4").hasSuffix(",live")
            if !seen { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(seen, "the edit reached the other replica by itself")
        for w in workers { try w.quit() }
        try await game.close()
    }

    /// A replica away while the server's history is trimmed (no tombstone retention in the
    /// config, `jelly compact` while the server is down) comes back below the floor, is reset,
    /// and converges: the deleted object is gone from it.
    @Test func aStaleReplicaProcessIsResetAndConverges() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let retention: [String: Any] = ["tombstone_retention_ms": 0]
        var server = try startServer(dir, extra: retention)
        defer { server.kill(signal: SIGKILL) }
        var game = try gameServer(server)
        for key in ["a", "b", "c"] { try await game.put(partition: "player", key: key, value: Array("1".utf8), access: Self.access) }
        let token = try await hs256ClientToken("player", secret: Self.secret)
        var replica = try ReplicaWorker(name: "stale", url: server.base, token: token, dir: dir.path + "/replica")
        #expect(try replica.send("sync").hasPrefix("synced"))
        try replica.quit()

        // While it is away: b deleted, c changed, and the tombstone compacted away.
        try await game.delete(partition: "player", key: "b")
        try await game.put(partition: "player", key: "c", value: Array("2".utf8), access: Self.access)
        try await game.close()
        #expect(server.kill(signal: SIGTERM) == 0)
        // The first compaction copies b's tombstone (its put is still on disk beside it); once a
        // is overwritten, the second finds the copy among garbage and drops it: the floor rises.
        let jelly = try jellyExecutablePath()
        func compact() throws {
            let (status, output) = try runToEnd(jelly, ["compact", "--data", dir.path + "/data", "--tombstone-retention-ms", "0"])
            #expect(status == 0, "jelly compact: \(output)")
        }
        try compact()
        server = try startServer(dir, extra: retention)
        game = try gameServer(server)
        try await game.put(partition: "player", key: "a", value: Array("3".utf8), access: Self.access)
        try await game.close()
        #expect(server.kill(signal: SIGTERM) == 0)
        try compact()
        server = try startServer(dir, extra: retention)
        game = try gameServer(server)
        let trimmed = try await game.changes(partition: "player", since: 1)
        #expect(trimmed.floor > 1 && trimmed.reset, "the history was trimmed: floor \(trimmed.floor)")

        replica = try ReplicaWorker(name: "stale", url: server.base, token: token, dir: dir.path + "/replica")
        #expect(try replica.send("get b") == "value 1", "offline, the replica still has b")
        #expect(try replica.send("sync").hasPrefix("synced"))
        let dump = try replica.send("dump")
        #expect(dump == "dump {\"a\":\"3\",\"c\":\"2\"}", "converged: \(dump)")
        try replica.quit()
        try await game.close()
    }
}
