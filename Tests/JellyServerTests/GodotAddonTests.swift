import Foundation
import GodotVariant
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// The Godot addon (clients/godot) with a real headless Godot 3.2.3 (`godot3-server`, installed by
/// scripts/test) against a real `jelly serve`: a scripted session (lock and load, saves, a second
/// server refused, renew, save and release, load elsewhere, a stale holder fenced, a transfer),
/// then what it stored read back in Swift and decoded as a Godot Variant.
extension HeavyProcessTests {
@Suite struct GodotAddonTests {
    static var clientsDirectory: String {
        // Tests/JellyServerTests/GodotAddonTests.swift → the repository's clients/godot.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("clients/godot").path
    }

    /// Runs `script` (clients/godot/tests) in a fresh project with the Godot 3 addon, against
    /// `server`, in a real godot3-server; returns its output.
    static func runGodot(_ script: String, server: JellyServeProcess, in dir: TemporaryDirectory) throws -> String {
        let godot = "/usr/bin/godot3-server"
        guard FileManager.default.isExecutableFile(atPath: godot) else {
            throw ConformanceFailure("godot3-server is not installed: run scripts/test (it installs it) or apt-get install godot3-server")
        }
        let project = dir.path + "/project-" + script
        let fm = FileManager.default
        try fm.createDirectory(atPath: project, withIntermediateDirectories: true)
        try fm.copyItem(atPath: clientsDirectory + "/godot3/addons", toPath: project + "/addons")
        try fm.copyItem(atPath: clientsDirectory + "/tests/" + script, toPath: project + "/" + script)
        try "config_version=4\n\n[application]\nconfig/name=\"jelly-test\"\n".write(toFile: project + "/project.godot", atomically: true, encoding: .utf8)
        // Godot exits 0 on a parse error and can hang on a runtime error: a deadline, and the
        // script's PASS line is required.
        return try runToEnd(
            "/usr/bin/timeout", ["90", godot, "--no-window", "--path", project, "-s", script],
            environment: ["JELLY_URL": server.base, "HOME": dir.path, "PATH": "/usr/bin:/bin"]
        ).output
    }

    @Test func aScriptedSessionInARealGodot() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try JellyServeProcess(directory: dir.path + "/data")
        let output = try Self.runGodot("session_test.gd", server: server, in: dir)
        #expect(output.contains("\nPASS"), "the Godot session did not pass:\n\(output.suffix(3000))")
        #expect(!output.contains("FAIL"), "\(output.suffix(3000))")

        // What the addon stored is a Godot Variant, readable without the engine.
        let client = try JellyClient(JellyClient.Configuration(url: server.base))
        let stored = try #require(try await client.get(partition: "player-1", key: "progress"))
        #expect(stored.contentType == "application/x-godot-variant; version=3")
        let (value, version) = try GodotVariant.decodeAny(stored.value, version: GodotVariant.version(ofContentType: stored.contentType))
        #expect(version == .godot3)
        #expect(value.jsonText() == #"{"level":4,"pos":{"Vector2":[1.0,2.0]},"items":["sword","shield"]}"#, "\(value.jsonText())")
        let profile = try #require(try await client.get(partition: "player-1", key: "profile"))
        #expect(profile.contentType == "application/json" && String(decoding: profile.value, as: UTF8.self).contains("\"level\":4"), "\(String(decoding: profile.value, as: UTF8.self))")
        try await client.close()
        server.kill(signal: SIGTERM)
    }

    /// Two devices' replicas: offline edits, a conflict the game resolves from base, mine and
    /// theirs, a game server's session refusing pushes and winning, a queue kept in user://
    /// across a restart.
    @Test func aReplicaScenarioInARealGodot() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try JellyServeProcess(directory: dir.path + "/data")
        let output = try Self.runGodot("replica_test.gd", server: server, in: dir)
        #expect(output.contains("\nPASS"), "the Godot replica scenario did not pass:\n\(output.suffix(3000))")
        #expect(!output.contains("FAIL"), "\(output.suffix(3000))")
        let client = try JellyClient(JellyClient.Configuration(url: server.base))
        let coins = try #require(try await client.get(partition: "player-9", key: "coins"))
        #expect(try GodotVariant.decode(coins.value, version: .godot3) == .int(10))
        try await client.close()
        server.kill(signal: SIGTERM)
    }

    /// The Godot 4 edition cannot run here (Godot 4 is not packaged): gdtoolkit's parser and
    /// linter check it (`pip install gdtoolkit`, installed by scripts/test).
    @Test func theGodot4EditionParsesAndLints() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.clientsDirectory + "/godot4/addons/jelly")
            .filter { $0.hasSuffix(".gd") }.map { Self.clientsDirectory + "/godot4/addons/jelly/" + $0 }
        #expect(files.count == 3)
        for tool in ["gdparse", "gdlint"] {
            let (status, output) = try runToEnd("/usr/bin/env", [tool] + files)
            #expect(status == 0, "\(tool): \(output)")
        }
    }
}
}
