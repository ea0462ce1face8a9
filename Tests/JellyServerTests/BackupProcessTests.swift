import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// Backup and restore as an operator runs them: `POST /v1/admin/backup` on a real `jelly serve`
/// (through `jelly backup --url`), `jelly backup verify`, `jelly restore`, and a server on the
/// restored directory.
extension HeavyProcessTests {
@Suite struct BackupProcessTests {
    @Test func backupOverHTTPVerifyRestoreAndServe() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = dir.path + "/serve.json"
        try Data("""
            {"auth": {"api_keys": [{"name": "game", "key": "game-key-0123456789abcdef", "role": "server"}, {"name": "ops", "key": "ops-key-0123456789abcdef", "role": "admin"}]}}
            """.utf8).write(to: URL(fileURLWithPath: config))
        let data = dir.path + "/data"
        let server = try JellyServeProcess(directory: data, extraArguments: ["--config", config])
        let jelly = try jellyExecutablePath()
        let game = try JellyClient(JellyClient.Configuration(url: server.base, bearerToken: "game-key-0123456789abcdef"))
        let lock = try await game.acquireLock(partition: "player-1", owner: "gs-1", ttlMilliseconds: 60_000)
        let saved = try await game.put(partition: "player-1", key: "progress", value: Array("level 7".utf8), lockToken: lock.token)
        try await game.put(partition: "player-2", key: "progress", value: Array("level 2".utf8))

        // A game server's key may not take backups; names are one path component.
        let refused = try await http("POST", server.base + "/v1/admin/backup", headers: ["Authorization": "Bearer game-key-0123456789abcdef", "Content-Type": "application/json"], body: jsonBody(["name": "nightly"]))
        #expect(refused.status == 403, "\(refused.text)")
        let traversal = try await http("POST", server.base + "/v1/admin/backup", headers: ["Authorization": "Bearer ops-key-0123456789abcdef", "Content-Type": "application/json"], body: jsonBody(["name": "../elsewhere"]))
        #expect(traversal.status == 400, "\(traversal.text)")

        let taken = try runToEnd(jelly, ["backup", "--url", server.base, "--api-key", "ops-key-0123456789abcdef", "--to", "nightly"])
        #expect(taken.status == 0, "\(taken.output)")
        #expect(taken.output.contains("backup of version"), "\(taken.output)")
        let backup = data + "-backups/nightly"
        // Saves go on; a second backup under the same name copies only what is new.
        try await game.put(partition: "player-1", key: "progress", value: Array("level 8".utf8), lockToken: lock.token)
        let forbidden = await #expect(throws: JellyError.self) { try await game.backup(name: "nightly") }
        #expect(forbidden?.code == .forbidden)
        let ops = try JellyClient(JellyClient.Configuration(url: server.base, bearerToken: "ops-key-0123456789abcdef"))
        let second = try await ops.backup(name: "nightly")
        #expect(second.bytesReused > 0 && second.directory == backup, "\(second)")
        try await ops.close()

        let verified = try runToEnd(jelly, ["backup", "verify", backup])
        #expect(verified.status == 0 && verified.output.contains("good"), "\(verified.output)")
        let restored = dir.path + "/restored"
        let r = try runToEnd(jelly, ["restore", "--from", backup, "--data", restored])
        #expect(r.status == 0 && r.output.contains("consistent"), "\(r.output)")
        // Never over a store.
        let over = try runToEnd(jelly, ["restore", "--from", backup, "--data", data])
        #expect(over.status != 0 && over.output.contains("never overwrites"), "\(over.output)")

        let back = try JellyServeProcess(directory: restored, extraArguments: ["--config", config])
        let reader = try JellyClient(JellyClient.Configuration(url: back.base, bearerToken: "game-key-0123456789abcdef"))
        let got = try await reader.get(partition: "player-1", key: "progress")
        #expect(got?.value == Array("level 8".utf8) && (got?.version ?? 0) > saved)
        #expect(try await reader.get(partition: "player-2", key: "progress")?.value == Array("level 2".utf8))
        // The old session's token is stale on the restored store: it must lock and load again.
        let stale = await #expect(throws: JellyError.self) { try await reader.put(partition: "player-1", key: "progress", value: [1], lockToken: lock.token) }
        #expect(stale?.code == .locked)
        try await reader.close()
        try await game.close()
        back.kill(signal: SIGTERM)
        server.kill(signal: SIGTERM)
    }
}
}
