import Foundation
import JellyCore
@testable import JellyServer
import Testing

/// The hand-written JSON of lock answers parses to what JSONEncoder would have written.
@Suite struct JSONTextTests {
    @Test func stringsAreEscapedSoTheyParseBack() throws {
        let tricky = ["plain", "quote \" and backslash \\", "new\nline\ttab\rreturn", "control \u{01}\u{1F}", "slash / é 玩家 🎮", ""]
        for text in tricky {
            var out = JSONText(capacity: 16)
            out.raw("[")
            out.string(text)
            out.raw("]")
            let parsed = try JSONSerialization.jsonObject(with: Data(out.buffer.readableBytesView)) as? [String]
            #expect(parsed == [text], "\(text.debugDescription) round-trips")
        }
    }

    @Test func aLockAnswerWithObjectsParses() throws {
        let lock = LockInfo(partition: "p", owner: "server \"1\"\n", token: LockToken(42), expiresAtMilliseconds: 1_700_000_000_123)
        let objects = [
            StoredObject(key: "inventory", version: 7, contentType: "application/json", value: Array("{\"gold\":1}".utf8), access: .serverOnly),
            StoredObject(key: "k\\é", version: 9, contentType: "application/octet-stream", value: [0, 255, 1], access: ObjectAccess(read: .public, write: .owner)),
        ]
        let body = LockResponseBody(lock, objects: objects).json
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        #expect(json["token"] as? Int == 42 && json["owner"] as? String == "server \"1\"\n" && json["expires_at_ms"] as? Int == 1_700_000_000_123)
        let loaded = try #require(json["objects"] as? [[String: Any]])
        #expect(loaded.count == 2)
        #expect(loaded[1]["key"] as? String == "k\\é" && loaded[1]["version"] as? Int == 9)
        #expect(loaded[1]["read"] as? String == "public" && loaded[1]["write"] as? String == "owner")
        #expect((loaded[1]["value_base64"] as? String).flatMap { Data(base64Encoded: $0) } == Data([0, 255, 1]))
        #expect(loaded[0]["content_type"] as? String == "application/json")

        let bare = try #require(try JSONSerialization.jsonObject(with: Data(LockResponseBody(lock).json.readableBytesView)) as? [String: Any])
        #expect(bare["objects"] == nil && bare.count == 3, "without load there is no objects key")
    }
}
