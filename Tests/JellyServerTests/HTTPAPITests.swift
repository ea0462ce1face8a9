import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JellyTestSupport
import Testing

/// HTTP API v1 against a real `jelly serve` process: every endpoint and its errors.
@Suite(.serialized) struct HTTPAPITests {
    func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path).use(body)
    }

    @Test func objects() async throws {
        try await withServer { s in
            let url = s.base + "/v1/partitions/player-1/objects/profile"
            var r = try await http("PUT", url, headers: ["Content-Type": "application/json"], body: Data("{\"level\":3}".utf8))
            #expect(r.status == 201 && r.headers["etag"] == "\"1\"" && r.json["version"] as? Int == 1, "\(r.status) \(r.text)")
            r = try await http("PUT", url, headers: ["Content-Type": "application/json"], body: Data("{\"level\":4}".utf8))
            #expect(r.status == 200 && r.headers["etag"] == "\"2\"", "replaced: \(r.status)")
            r = try await http("GET", url)
            #expect(r.status == 200 && r.text == "{\"level\":4}" && r.headers["content-type"] == "application/json" && r.headers["etag"] == "\"2\"")
            r = try await http("GET", url, headers: ["If-None-Match": "\"2\""])
            #expect(r.status == 304)
            r = try await http("PUT", url, headers: ["If-Match": "\"1\""], body: Data("x".utf8))
            #expect(r.status == 412 && r.json["error"] as? String == "precondition_failed")
            r = try await http("PUT", url, headers: ["If-None-Match": "*"], body: Data("x".utf8))
            #expect(r.status == 412)
            r = try await http("PUT", s.base + "/v1/partitions/player-1/objects/new", headers: ["If-Match": "\"1\""], body: Data("x".utf8))
            #expect(r.status == 412, "If-Match on a missing object fails")
            r = try await http("PUT", url, headers: ["If-Match": "2"], body: Data("x".utf8))
            #expect(r.status == 400, "unquoted If-Match")
            r = try await http("PUT", s.base + "/v1/partitions/player-1/objects/raw", body: Data([0, 1, 2]))
            #expect(r.status == 201)
            r = try await http("GET", s.base + "/v1/partitions/player-1/objects/raw")
            #expect(r.headers["content-type"] == "application/octet-stream" && r.body == Data([0, 1, 2]))
            r = try await http("DELETE", s.base + "/v1/partitions/player-1/objects/raw")
            #expect(r.status == 204)
            r = try await http("DELETE", s.base + "/v1/partitions/player-1/objects/raw")
            #expect(r.status == 404 && r.json["error"] as? String == "not_found")
            r = try await http("GET", s.base + "/v1/partitions/player-1/objects/raw")
            #expect(r.status == 404)
            // Percent-encoded names; a name breaking the rules is 400, never 404.
            r = try await http("PUT", s.base + "/v1/partitions/player%201/objects/caf%C3%A9", body: Data("é".utf8))
            #expect(r.status == 201)
            r = try await http("GET", s.base + "/v1/partitions/player%201/objects/caf%C3%A9")
            #expect(r.status == 200 && r.text == "é")
            for bad in ["a%2Fb", "%2E%2E", "nul%00", "%FF", "%C3", String(repeating: "x", count: 129)] {
                r = try await http("GET", s.base + "/v1/partitions/\(bad)/objects/k")
                #expect(r.status == 400 && r.json["error"] as? String == "bad_request", "partition \(bad): \(r.status)")
            }
            r = try await http("PATCH", url)
            #expect(r.status == 405 && r.json["error"] as? String == "bad_request")
        }
    }

    @Test func listing() async throws {
        try await withServer { s in
            for k in ["b", "a", "c", "B"] {
                _ = try await http("PUT", s.base + "/v1/partitions/p/objects/\(k)", body: Data(k.utf8))
            }
            var r = try await http("GET", s.base + "/v1/partitions/p/objects?limit=2")
            var objects = r.json["objects"] as? [[String: Any]] ?? []
            #expect(objects.map { $0["key"] as? String } == ["B", "a"] && r.json["next"] as? String == "a", "\(r.text)")
            r = try await http("GET", s.base + "/v1/partitions/p/objects?limit=2&after=a")
            objects = r.json["objects"] as? [[String: Any]] ?? []
            #expect(objects.map { $0["key"] as? String } == ["b", "c"] && r.text.contains("\"next\":null"), "\(r.text)")
            #expect(objects.first?["size"] as? Int == 1 && objects.first?["content_type"] as? String == "application/octet-stream")
            r = try await http("GET", s.base + "/v1/partitions/p/objects?limit=5000")
            #expect(r.status == 400)
        }
    }

    @Test func locksAndFencing() async throws {
        try await withServer { s in
            let lockURL = s.base + "/v1/partitions/p/lock"
            _ = try await http("PUT", s.base + "/v1/partitions/p/objects/save", body: Data("v0".utf8))
            var r = try await http("POST", lockURL, body: jsonBody(["owner": "server-a", "ttl_ms": 60_000, "load": true]))
            #expect(r.status == 200 && r.json["owner"] as? String == "server-a", "\(r.text)")
            let token = r.json["token"] as? Int ?? 0
            let loaded = r.json["objects"] as? [[String: Any]] ?? []
            #expect(loaded.first?["value_base64"] as? String == Data("v0".utf8).base64EncodedString())
            r = try await http("POST", lockURL, body: jsonBody(["owner": "server-a", "ttl_ms": 60_000]))
            #expect(r.json["token"] as? Int == token, "same owner, same token")
            r = try await http("POST", lockURL, body: jsonBody(["owner": "server-b", "ttl_ms": 60_000]))
            #expect(r.status == 423 && r.json["owner"] as? String == "server-a" && r.json["expires_at_ms"] is Int, "\(r.text)")
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/save", body: Data("no token".utf8))
            #expect(r.status == 423)
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/save", headers: ["Jelly-Lock-Token": "\(token + 1)"], body: Data("wrong".utf8))
            #expect(r.status == 423)
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/save", headers: ["Jelly-Lock-Token": "abc"], body: Data("bad".utf8))
            #expect(r.status == 400)
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/save", headers: ["Jelly-Lock-Token": "\(token)"], body: Data("v1".utf8))
            #expect(r.status == 200)
            r = try await http("GET", lockURL)
            #expect(r.status == 200 && r.json["token"] as? Int == token)
            r = try await http("POST", lockURL + "/renew", body: jsonBody(["token": token, "ttl_ms": 30_000]))
            #expect(r.status == 200 && r.json["token"] as? Int == token)
            r = try await http("POST", lockURL + "/transfer", body: jsonBody(["token": token, "to_owner": "server-b", "ttl_ms": 30_000]))
            let moved = r.json["token"] as? Int ?? 0
            #expect(r.status == 200 && moved > token && r.json["owner"] as? String == "server-b")
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/save", headers: ["Jelly-Lock-Token": "\(token)"], body: Data("stale".utf8))
            #expect(r.status == 423, "the old token is fenced after transfer")
            r = try await http("DELETE", lockURL)
            #expect(r.status == 400, "release needs the token header")
            r = try await http("DELETE", lockURL, headers: ["Jelly-Lock-Token": "\(token)"])
            #expect(r.status == 423)
            // Save and release in one commit.
            r = try await http("POST", s.base + "/v1/partitions/p/batch", body: jsonBody([
                "lock_token": moved, "release_lock": true,
                "operations": [["op": "put", "key": "save", "value_base64": Data("final".utf8).base64EncodedString()]],
            ]))
            #expect(r.status == 200 && (r.json["versions"] as? [String: Int])?["save"] == r.json["version"] as? Int, "\(r.text)")
            r = try await http("GET", lockURL)
            #expect(r.status == 404)
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/save", headers: ["Jelly-Lock-Token": "\(moved)"], body: Data("late".utf8))
            #expect(r.status == 423, "a released token is stale even on an unlocked partition")
            r = try await http("GET", s.base + "/v1/partitions/p/objects/save")
            #expect(r.text == "final")
        }
    }

    @Test func batches() async throws {
        try await withServer { s in
            let url = s.base + "/v1/partitions/p/batch"
            func b64(_ t: String) -> String { Data(t.utf8).base64EncodedString() }
            var r = try await http("POST", url, body: jsonBody(["operations": [
                ["op": "put", "key": "a", "value_base64": b64("1")], ["op": "put", "key": "b", "value_base64": b64("2"), "content_type": "text/plain"],
                ["op": "delete", "key": "missing"],
            ]]))
            let v = r.json["version"] as? Int ?? 0
            #expect(r.status == 200 && r.json["versions"] as? [String: Int] == ["a": v, "b": v], "\(r.text)")
            r = try await http("POST", url, body: jsonBody(["operations": [
                ["op": "put", "key": "a", "value_base64": b64("x")], ["op": "put", "key": "b", "value_base64": b64("y"), "if_version": v + 5],
            ]]))
            #expect(r.status == 412)
            r = try await http("GET", s.base + "/v1/partitions/p/objects/a")
            #expect(r.text == "1", "a failed batch writes nothing")
            r = try await http("POST", url, body: jsonBody(["operations": [["op": "put", "key": "a", "value_base64": b64("1")], ["op": "delete", "key": "a"]]]))
            #expect(r.status == 400, "a key named twice")
            for bad in ["{", "[]", "{\"operations\": 5}", "{\"operations\": [{\"op\": \"put\", \"key\": \"k\"}]}",
                        "{\"operations\": [{\"op\": \"merge\", \"key\": \"k\"}]}", "{\"operations\": [{\"op\": \"put\", \"key\": \"k\", \"value_base64\": \"***\"}]}",
                        "{\"operations\": [], \"release_lock\": true}"] {
                r = try await http("POST", url, body: Data(bad.utf8))
                #expect(r.status == 400 && r.json["error"] as? String == "bad_request", "\(bad): \(r.status) \(r.text)")
            }
        }
    }

    @Test func limitsAndPrecedence() async throws {
        try await withServer { s in
            let lock = try await http("POST", s.base + "/v1/partitions/p/lock", body: jsonBody(["owner": "a", "ttl_ms": 60_000]))
            #expect(lock.status == 200)
            // Over the size limit and locked: 413 wins over 423.
            let huge = Data(count: (16 << 20) + 1)
            var r = try await http("PUT", s.base + "/v1/partitions/p/objects/k", body: huge)
            #expect(r.status == 413 && r.json["error"] as? String == "too_large", "\(r.status)")
            // A bad name on a locked partition: 400 wins.
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/%2E", body: Data("x".utf8))
            #expect(r.status == 400)
            r = try await http("POST", s.base + "/v1/partitions/p/lock", body: jsonBody(["owner": "a", "ttl_ms": 1]))
            #expect(r.status == 400, "ttl out of range")
            r = try await http("GET", s.base + "/v1/health")
            #expect(r.status == 200 && r.json["status"] as? String == "ok", "the server stays healthy")
            r = try await http("GET", s.base + "/v1/openapi.yaml")
            #expect(r.status == 200 && r.text.hasPrefix("openapi: 3.1.0"))
        }
    }

    @Test func refusesNetworkAddressWithoutAuthentication() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (status, text) = try runToEnd(try jellyExecutablePath(), ["serve", "--data", dir.path, "--listen", "0.0.0.0:0"])
        #expect(status != 0 && text.contains("refusing to listen on 0.0.0.0"), "\(text)")
    }

    /// SIGKILL under write load, then restart: every save answered 2xx is there, and a held lock
    /// is still held with its token.
    @Test func sigkillUnderLoadLosesNoAcknowledgedSave() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try ServerProcess(directory: dir.path)
        let lock = try await http("POST", server.base + "/v1/partitions/held/lock", body: jsonBody(["owner": "game-1", "ttl_ms": 600_000]))
        let token = lock.json["token"] as? Int ?? 0
        let acked = AckedSaves()
        let base = server.base
        let stop = StopFlag()
        let writers = (0..<8).map { w in
            Task {
                var i = 0
                while !stop.isSet {
                    i += 1
                    let value = "w\(w)-\(i)"
                    guard let r = try? await http("PUT", base + "/v1/partitions/w\(w)/objects/k\(i % 5)", body: Data(value.utf8)) else { return }
                    if r.status / 100 == 2, let v = r.json["version"] as? Int { acked.add("w\(w)/k\(i % 5)", v, value) }
                }
            }
        }
        // Kill once the load is well under way (at least 0.7 s and 100 acknowledged saves, at
        // most 20 s on a slow machine), so the kill lands among saves in flight.
        try await Task.sleep(nanoseconds: 700_000_000)
        for _ in 0..<193 where acked.count <= 100 { try await Task.sleep(nanoseconds: 100_000_000) }
        _ = server.kill(signal: SIGKILL)
        // Writers stop on their first failed request (the server is gone). They are not
        // cancelled: cancelling URLSession requests can deadlock FoundationNetworking.
        stop.set()
        for w in writers { await w.value }
        #expect(acked.count > 50, "the load ran: \(acked.count) saves acknowledged")

        let restarted = try ServerProcess(directory: dir.path)
        for (id, (version, value)) in acked.latest {
            let parts = id.split(separator: "/")
            let r = try await http("GET", restarted.base + "/v1/partitions/\(parts[0])/objects/\(parts[1])")
            let got = Int(r.headers["etag"]?.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) ?? "") ?? 0
            #expect(r.status == 200 && got >= version, "\(id): acknowledged v\(version), after restart \(r.status) v\(got)")
            if got == version { #expect(r.text == value) }
        }
        let held = try await http("GET", restarted.base + "/v1/partitions/held/lock")
        #expect(held.status == 200 && held.json["token"] as? Int == token, "the lock survived with its token")
        #expect(restarted.kill(signal: SIGTERM) == 0)
    }
}

final class AckedSaves: @unchecked Sendable {
    private let lock = NSLock()
    private var saves: [String: (Int, String)] = [:]
    private var n = 0
    func add(_ id: String, _ version: Int, _ value: String) {
        lock.lock()
        defer { lock.unlock() }
        n += 1
        if version > (saves[id]?.0 ?? 0) { saves[id] = (version, value) }
    }
    var count: Int { lock.lock(); defer { lock.unlock() }; return n }
    var latest: [String: (Int, String)] { lock.lock(); defer { lock.unlock() }; return saves }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

/// The README's curl walk-through, run as written against a real server.
@Suite(.serialized) struct ReadmeWalkthroughTests {
    @Test func curlWalkthroughRuns() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else {
            Issue.record("curl is not installed; scripts/test expects it (apt-get install curl)")
            return
        }
        let readme = try String(contentsOfFile: FileManager.default.currentDirectoryPath + "/README.md", encoding: .utf8)
        guard let start = readme.range(of: "<!-- walkthrough -->\n```sh\n"), let end = readme.range(of: "```\n<!-- /walkthrough -->") else {
            Issue.record("README has no walk-through block")
            return
        }
        let script = String(readme[start.upperBound..<end.lowerBound])
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try ServerProcess(directory: dir.path)
        let (status, text) = try runToEnd("/bin/bash", ["-euo", "pipefail", "-c", script], environment: ["JELLY_URL": server.base, "PATH": "/usr/bin:/bin"])
        #expect(status == 0, "\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("\"owner\":\"game-server-7\"") == true, "lock and load: \(text)")
        #expect(lines.contains("423"), "a save without the token is refused: \(text)")
        #expect(lines.dropLast().last == "{\"gold\": 150}", "the final save is there: \(text)")
        #expect(lines.last == "application/json", "the final save kept its content type: \(text)")
        let lock = try await http("GET", server.base + "/v1/partitions/player-42/lock")
        #expect(lock.status == 404, "released with the final save")
        #expect(server.kill(signal: SIGTERM) == 0)
    }
}
