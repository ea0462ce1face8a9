import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// The web console in a real headless Chromium (scripts/console-test.py: selenium and
/// chromedriver, installed by scripts/test) against a real `jelly serve` with auth and data:
/// sign-in (a wrong key refused), partitions, a partition's objects with decoded previews, its
/// lock counting down, the live change feed, the server's rates; a server key cannot break a
/// lock, an admin key does, and the lock is gone for the API too.
extension HeavyProcessTests {
@Suite struct ConsoleTests {
    static let adminKey = "console-admin-0123456789abcdef"
    static let serverKey = "console-server-0123456789abcdef"

    @Test func clickThroughTheConsoleInARealBrowser() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try Data("""
            {"auth": {"api_keys": [{"name": "game", "key": "\(Self.serverKey)", "role": "server"}, {"name": "ops", "key": "\(Self.adminKey)", "role": "admin"}]}}
            """.utf8).write(to: URL(fileURLWithPath: dir.path + "/serve.json"))
        let server = try JellyServeProcess(directory: dir.path + "/data", extraArguments: ["--config", dir.path + "/serve.json"])
        let game = try JellyClient(JellyClient.Configuration(url: server.base, bearerToken: Self.serverKey))
        let lock = try await game.acquireLock(partition: "player-1", owner: "gs-1", ttlMilliseconds: 600_000)
        // var2bytes({"level": 3, "pos": Vector2(0.5, 0.25)}) from Godot 3.2.3.
        let godot: [UInt8] = [0x12, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0] + Array("level".utf8) + [0, 0, 0]
            + [2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0] + Array("pos".utf8) + [0]
            + [5, 0, 0, 0, 0, 0, 0, 0x3F, 0, 0, 0x80, 0x3E]
        try await game.put(partition: "player-1", key: "progress", value: godot, contentType: "application/x-godot-variant; version=3", lockToken: lock.token)
        try await game.put(partition: "player-1", key: "profile", value: Array(#"{"name":"ana","level":3}"#.utf8), contentType: "application/json", lockToken: lock.token)
        try await game.put(partition: "player-2", key: "progress", value: Array("plain text".utf8), contentType: "text/plain")
        // Saves while the console watches, so the rates move.
        let saver = Task {
            var i = 0
            while !Task.isCancelled {
                i += 1
                try? await game.put(partition: "player-2", key: "tick", value: Array("\(i)".utf8), contentType: "text/plain")
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        defer { saver.cancel() }

        let shots = dir.path + "/screenshots"
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/console-test.py").path
        let (status, output) = try runToEnd("/usr/bin/env", ["timeout", "180", "python3", script, server.base, Self.adminKey, Self.serverKey, shots])
        #expect(status == 0 && output.contains("PASS"), "the console walk failed:\n\(output.suffix(4000))")
        #expect(FileManager.default.fileExists(atPath: shots + "/console-partition.png"))
        // JELLY_CONSOLE_SCREENSHOTS=docs keeps them (the README's pictures come from here).
        if let keep = ProcessInfo.processInfo.environment["JELLY_CONSOLE_SCREENSHOTS"] {
            for name in ["console-partitions.png", "console-partition.png"] {
                try? FileManager.default.removeItem(atPath: keep + "/" + name)
                try FileManager.default.copyItem(atPath: shots + "/" + name, toPath: keep + "/" + name)
            }
        }
        // The break the admin clicked is real: gs-1's token is fenced.
        let fenced = await #expect(throws: JellyError.self) { try await game.put(partition: "player-1", key: "progress", value: [1], lockToken: lock.token) }
        #expect(fenced?.code == .locked)
        saver.cancel()
        try await game.close()
        server.kill(signal: SIGTERM)
    }
}
}
