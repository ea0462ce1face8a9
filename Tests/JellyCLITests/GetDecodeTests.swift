import Foundation
import JellyTestSupport
import Testing

/// `jelly get --decode`: a stored Godot Variant, JSON, text and hex, as an operator reads them.
@Suite struct GetDecodeTests {
    @Test func getDecodesGodotJSONTextAndHex() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let data = dir.path + "/data"
        // var2bytes({"level": 3, "pos": Vector2(0.5, 0.25)}) in Godot 3.2.3.
        let godot: [UInt8] = [0x12, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0] + Array("level".utf8) + [0, 0, 0]
            + [2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0] + Array("pos".utf8) + [0]
            + [5, 0, 0, 0, 0, 0, 0, 0x3F, 0, 0, 0x80, 0x3E]
        try Data(godot).write(to: URL(fileURLWithPath: dir.path + "/save.bin"))
        let put = try runJelly(["put", "--data", data, "player-1", "save", "--file", dir.path + "/save.bin", "--content-type", "application/x-godot-variant; version=3"])
        #expect(put.status == 0, "\(put.stderr)")
        let decoded = try runJelly(["get", "--data", data, "player-1", "save", "--decode", "godot"])
        #expect(decoded.status == 0, "\(decoded.stderr)")
        #expect(decoded.stdout.contains("\"level\": 3") && decoded.stdout.contains("\"Vector2\": [0.5, 0.25]"), "\(decoded.stdout)")

        _ = try runJelly(["put", "--data", data, "player-1", "profile", #"{"name":"ana","level":3}"#])
        let json = try runJelly(["get", "--data", data, "player-1", "profile", "--decode", "json"])
        #expect(json.stdout.contains("\"level\" : 3"), "\(json.stdout)")
        let hex = try runJelly(["get", "--data", data, "player-1", "save", "--decode", "hex"])
        #expect(hex.stdout.hasPrefix("00000000  12 00 00 00"), "\(hex.stdout)")
        // Bytes that are not what was asked for: a clear error, exit 1.
        let notGodot = try runJelly(["get", "--data", data, "player-1", "profile", "--decode", "godot"])
        #expect(notGodot.status == 1 && notGodot.stderr.contains("not a Godot Variant"), "\(notGodot.stderr)")
        let notText = try runJelly(["get", "--data", data, "player-1", "save", "--decode", "json"])
        #expect(notText.status == 1 && notText.stderr.contains("not JSON"), "\(notText.stderr)")
    }
}
