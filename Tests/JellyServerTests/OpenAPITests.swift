import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JellyTestSupport
import Testing

private let serverKey = "openapi-server-key-0123456789"
private let adminKey = "openapi-admin-key-0123456789"
private let secret = "an-hs256-secret-for-the-openapi-test!!"

/// Every response a real `jelly serve` gives in a walk over every endpoint and error is checked
/// against the OpenAPI document the same server serves at /v1/openapi.yaml
/// (scripts/check-openapi.py: schemas strictly, statuses, content types, required headers), and
/// every documented response must be produced by the walk.
@Suite struct OpenAPITests {
    /// Documented responses this walk cannot produce against one embedded server, and why.
    static let notProduced = [
        // Only a cluster node answers 503 (NATS unreachable or no stream leader).
        "GET /v1/health 503",
        // A client's write that lost its compare-and-set three times in a row: a race.
        "PUT /v1/partitions/{partition}/objects/{key} 503",
        // A push whose objects kept changing while it was decided, eight times: a race.
        "POST /v1/partitions/{partition}/sync 503",
        // A stream log 64 MiB behind the disk, or a cluster without a stream leader.
        "POST /v1/partitions/{partition}/streams/{stream} 503",
        // A backup over HTTP is the embedded store's; a cluster node answers 501. A backup that
        // cannot be written (disk full, another backup's files in the way) answers 503/400.
        "POST /v1/admin/backup 501",
        "POST /v1/admin/backup 503",
        // Only a cluster node without NATS.
        "GET /v1/partitions 503",
        // A full disk: DiskFullTests and the tmpfs test in DiskFullServerTests produce it.
        "POST /v1/admin/backup 507",
        "POST /v1/partitions/{partition}/batch 507",
        "DELETE /v1/partitions/{partition}/lock 507",
        "POST /v1/partitions/{partition}/lock 507",
        "POST /v1/partitions/{partition}/lock/break 507",
        "POST /v1/partitions/{partition}/lock/renew 507",
        "POST /v1/partitions/{partition}/lock/transfer 507",
        "DELETE /v1/partitions/{partition}/objects/{key} 507",
        "PUT /v1/partitions/{partition}/objects/{key} 507",
        "DELETE /v1/partitions/{partition}/streams/{stream} 507",
        "POST /v1/partitions/{partition}/streams/{stream} 507",
        "POST /v1/partitions/{partition}/sync 507",
    ]

    @Test func everyResponseMatchesTheDocumentAndEveryDocumentedResponseOccurs() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config: [String: Any] = [
            "auth": [
                "api_keys": [["name": "game", "key": serverKey, "role": "server"], ["name": "ops", "key": adminKey, "role": "admin"]],
                "client_tokens": ["hs256_secret": secret],
            ],
            "limits": ["body_bytes_max": 4096],
        ]
        let configPath = dir.path + "/jelly.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let recorder = ResponseRecorder()
        try await ServerProcess(directory: dir.path + "/data", extraArguments: ["--config", configPath]).use { s in
            try await walk(s.base, recorder)
            let document = try await http("GET", s.base + "/v1/openapi.yaml")
            try document.body.write(to: URL(fileURLWithPath: dir.path + "/openapi.yaml"))
        }
        try await recorder.write(to: dir.path + "/records.json")
        let (status, output) = try runChecker(document: dir.path + "/openapi.yaml", records: dir.path + "/records.json")
        #expect(status == 0, "scripts/check-openapi.py found differences between the document and the responses:\n\(output)")
        #expect(output.contains("0 findings"), "the checker ran: \(output)")
    }

    /// Every endpoint with every status it documents (except `notProduced`).
    func walk(_ base: String, _ r: ResponseRecorder) async throws {
        let server = ["Authorization": "Bearer \(serverKey)"]
        let admin = ["Authorization": "Bearer \(adminKey)"]
        let alice = ["Authorization": "Bearer \(try await hs256ClientToken("alice", secret: secret))"]
        let bob = ["Authorization": "Bearer \(try await hs256ClientToken("bob", secret: secret))"]
        let p = base + "/v1/partitions/alice"
        func with(_ a: [String: String], _ b: [String: String]) -> [String: String] { a.merging(b) { x, _ in x } }
        func lockBody(_ owner: String, load: Bool = false) -> Data { jsonBody(["owner": owner, "ttl_ms": 60_000, "load": load]) }

        // Service.
        try await r.expect(200, "GET", base + "/v1/health")
        try await r.expect(200, "GET", base + "/v1/openapi.yaml")
        try await r.expect(200, "GET", base + "/metrics", headers: server)
        try await r.expect(401, "GET", base + "/metrics")
        try await r.expect(403, "GET", base + "/metrics", headers: alice)

        // Objects.
        let inv = p + "/objects/inv"
        try await r.expect(201, "PUT", inv, headers: with(server, ["Jelly-Read": "owner", "Jelly-Write": "owner", "Content-Type": "text/plain"]), body: Data("sword".utf8))
        try await r.expect(200, "PUT", inv, headers: with(server, ["Jelly-Read": "owner", "Jelly-Write": "owner"]), body: Data("sword+1".utf8))
        try await r.expect(400, "PUT", p + "/objects/%2E%2E", headers: server, body: Data("x".utf8))
        try await r.expect(401, "PUT", inv, body: Data("x".utf8))
        try await r.expect(403, "PUT", base + "/v1/partitions/bob/objects/inv", headers: alice, body: Data("x".utf8))
        try await r.expect(412, "PUT", inv, headers: with(server, ["If-None-Match": "*"]), body: Data("x".utf8))
        try await r.expect(413, "PUT", inv, headers: server, body: Data(count: 5000))
        try await r.expect(200, "PUT", inv, headers: alice, body: Data("client's".utf8))
        try await r.expect(200, "GET", inv, headers: server)
        let etag = try await r.expect(200, "GET", inv, headers: alice).headers["etag"] ?? ""
        try await r.expect(304, "GET", inv, headers: with(server, ["If-None-Match": etag]))
        try await r.expect(400, "GET", p + "/objects/a%00b", headers: server)
        try await r.expect(401, "GET", inv)
        try await r.expect(403, "GET", inv, headers: bob)
        try await r.expect(404, "GET", p + "/objects/missing", headers: server)
        try await r.expect(405, "PATCH", inv, headers: server)
        try await r.expect(201, "PUT", p + "/objects/old", headers: server, body: Data("x".utf8))
        try await r.expect(400, "DELETE", p + "/objects/old", headers: with(server, ["If-Match": "1"]))
        try await r.expect(401, "DELETE", p + "/objects/old")
        try await r.expect(403, "DELETE", p + "/objects/old", headers: alice)
        try await r.expect(412, "DELETE", p + "/objects/old", headers: with(server, ["If-Match": "\"999\""]))
        try await r.expect(204, "DELETE", p + "/objects/old", headers: server)
        try await r.expect(404, "DELETE", p + "/objects/old", headers: server)

        // Listing.
        try await r.expect(200, "GET", p + "/objects?limit=1", headers: server)
        try await r.expect(200, "GET", p + "/objects", headers: alice)
        try await r.expect(400, "GET", p + "/objects?limit=0", headers: server)
        try await r.expect(401, "GET", p + "/objects")
        try await r.expect(403, "GET", base + "/v1/partitions/bob/objects", headers: alice)

        // Batches.
        let put: [String: Any] = ["op": "put", "key": "stats", "value_base64": Data("{}".utf8).base64EncodedString(), "content_type": "application/json"]
        try await r.expect(200, "POST", p + "/batch", headers: server, body: jsonBody(["operations": [put, ["op": "delete", "key": "nothing"]]]))
        try await r.expect(400, "POST", p + "/batch", headers: server, body: Data("{not json".utf8))
        try await r.expect(401, "POST", p + "/batch", body: jsonBody(["operations": [put]]))
        try await r.expect(403, "POST", p + "/batch", headers: alice, body: jsonBody(["operations": [put]]))
        try await r.expect(412, "POST", p + "/batch", headers: server, body: jsonBody(["operations": [put.merging(["if_absent": true]) { _, b in b }]]))
        try await r.expect(413, "POST", p + "/batch", headers: server, body: jsonBody(["operations": [put.merging(["value_base64": Data(count: 4000).base64EncodedString()]) { _, b in b }]]))

        // Locks.
        try await r.expect(404, "GET", p + "/lock", headers: server)
        let lock = try await r.expect(200, "POST", p + "/lock", headers: server, body: lockBody("gs-1", load: true))
        let token = lock.json["token"] as? Int ?? 0
        try await r.expect(200, "POST", p + "/lock", headers: server, body: lockBody("gs-1"))
        try await r.expect(200, "GET", p + "/lock", headers: server)
        try await r.expect(400, "GET", base + "/v1/partitions/%2F/lock", headers: server)
        try await r.expect(401, "GET", p + "/lock")
        try await r.expect(403, "GET", p + "/lock", headers: alice)
        try await r.expect(400, "POST", p + "/lock", headers: server, body: jsonBody(["owner": "gs-2"]))
        try await r.expect(401, "POST", p + "/lock", body: lockBody("gs-2"))
        try await r.expect(403, "POST", p + "/lock", headers: alice, body: lockBody("alice"))
        try await r.expect(423, "POST", p + "/lock", headers: server, body: lockBody("gs-2"))
        try await r.expect(423, "PUT", inv, headers: server, body: Data("no token".utf8))
        try await r.expect(423, "PUT", inv, headers: alice, body: Data("client while locked".utf8))
        try await r.expect(423, "DELETE", inv, headers: server)
        try await r.expect(423, "POST", p + "/batch", headers: server, body: jsonBody(["lock_token": token + 100, "operations": [put]]))
        try await r.expect(200, "PUT", inv, headers: with(server, ["Jelly-Lock-Token": "\(token)"]), body: Data("saved".utf8))
        let renewBody = jsonBody(["token": token, "ttl_ms": 30_000])
        try await r.expect(200, "POST", p + "/lock/renew", headers: server, body: renewBody)
        try await r.expect(400, "POST", p + "/lock/renew", headers: server, body: jsonBody(["token": "one", "ttl_ms": 30_000]))
        try await r.expect(401, "POST", p + "/lock/renew", body: renewBody)
        try await r.expect(403, "POST", p + "/lock/renew", headers: alice, body: renewBody)
        try await r.expect(423, "POST", p + "/lock/renew", headers: server, body: jsonBody(["token": token + 100, "ttl_ms": 30_000]))
        let transferBody = jsonBody(["token": token, "to_owner": "gs-2", "ttl_ms": 30_000])
        try await r.expect(400, "POST", p + "/lock/transfer", headers: server, body: jsonBody(["token": token]))
        try await r.expect(401, "POST", p + "/lock/transfer", body: transferBody)
        try await r.expect(403, "POST", p + "/lock/transfer", headers: alice, body: transferBody)
        let moved = try await r.expect(200, "POST", p + "/lock/transfer", headers: server, body: transferBody)
        let token2 = moved.json["token"] as? Int ?? 0
        try await r.expect(423, "POST", p + "/lock/transfer", headers: server, body: transferBody)
        try await r.expect(423, "DELETE", p + "/lock", headers: with(server, ["Jelly-Lock-Token": "\(token)"]))
        try await r.expect(400, "DELETE", p + "/lock", headers: server)
        try await r.expect(401, "DELETE", p + "/lock", headers: ["Jelly-Lock-Token": "\(token2)"])
        try await r.expect(403, "DELETE", p + "/lock", headers: with(alice, ["Jelly-Lock-Token": "\(token2)"]))
        try await r.expect(200, "POST", p + "/batch", headers: server, body: jsonBody(["lock_token": token2, "release_lock": true, "operations": [put]]))
        try await r.expect(200, "POST", p + "/lock", headers: server, body: lockBody("gs-3"))
        let token3 = try await r.expect(200, "GET", p + "/lock", headers: server).json["token"] as? Int ?? 0
        try await r.expect(204, "DELETE", p + "/lock", headers: with(server, ["Jelly-Lock-Token": "\(token3)"]))

        // The change feed and pushes.
        let feed = try await r.expect(200, "GET", p + "/changes", headers: server)
        let next = feed.json["next"] as? Int ?? 0
        try await r.expect(200, "GET", p + "/changes?since=1&limit=2", headers: alice)
        try await r.expect(200, "GET", p + "/changes?since=\(next)&wait_ms=50&epoch=x", headers: server)
        try await r.expect(400, "GET", p + "/changes?limit=0", headers: server)
        try await r.expect(400, "GET", p + "/changes?wait_ms=-1", headers: server)
        try await r.expect(401, "GET", p + "/changes")
        try await r.expect(403, "GET", base + "/v1/partitions/bob/changes", headers: alice)
        let invVersion = try await r.expect(200, "GET", inv, headers: server).headers["etag"].map { String($0.dropFirst().dropLast()) } ?? "0"
        let push: [String: Any] = ["client_id": "phone", "mutations": [
            ["id": 1, "key": "inv", "op": "put", "base_version": Int(invVersion) ?? 0, "value_base64": Data("shield".utf8).base64EncodedString()],
            ["id": 2, "key": "stats", "op": "put", "base_version": 0, "value_base64": Data("x".utf8).base64EncodedString()],
            ["id": 3, "key": "a/b", "op": "delete", "base_version": 0],
        ]]
        try await r.expect(200, "POST", p + "/sync", headers: alice, body: jsonBody(push))
        try await r.expect(200, "POST", p + "/sync", headers: alice, body: jsonBody(push))
        try await r.expect(200, "POST", p + "/sync", headers: server, body: jsonBody(["client_id": "tool", "mutations": [["id": 1, "key": "made", "op": "put", "base_version": 0, "value_base64": ""]]]))
        try await r.expect(400, "POST", p + "/sync", headers: server, body: jsonBody(["client_id": "tool", "mutations": [["id": 2, "key": "k", "op": "rename", "base_version": 0]]]))
        try await r.expect(401, "POST", p + "/sync", body: jsonBody(push))
        try await r.expect(403, "POST", base + "/v1/partitions/bob/sync", headers: alice, body: jsonBody(push))
        try await r.expect(413, "POST", p + "/sync", headers: server, body: jsonBody(["client_id": "tool", "mutations": [["id": 3, "key": "big", "op": "put", "base_version": 0, "value_base64": Data(count: 4000).base64EncodedString()]]]))
        try await r.expect(200, "POST", p + "/lock", headers: server, body: lockBody("gs-5"))
        try await r.expect(423, "POST", p + "/sync", headers: alice, body: jsonBody(push))
        try await r.expect(200, "GET", p + "/changes?since=\(next)", headers: alice)

        try await r.expect(400, "GET", base + "/v1/watch", headers: server)
        try await r.expect(401, "GET", base + "/v1/watch")
        try await r.expect(403, "GET", base + "/v1/watch", headers: alice)

        // Streams.
        let locked = p + "/streams/pos"
        let st = base + "/v1/partitions/carol/streams/pos"
        try await r.expect(200, "POST", st + "?retain_frames=100", headers: with(server, ["Jelly-Base-Version": "7"]), body: Data("frame-1".utf8))
        let framesBody = jsonBody(["frames": [["value_base64": Data("f2".utf8).base64EncodedString()], ["value_base64": "", "base_version": 3]]])
        try await r.expect(200, "POST", st + "?durable=true", headers: with(server, ["Content-Type": "application/vnd.jelly.frames+json"]), body: framesBody)
        try await r.expect(400, "POST", st + "?retain_frames=0", headers: server, body: Data("x".utf8))
        try await r.expect(401, "POST", st, body: Data("x".utf8))
        try await r.expect(403, "POST", st, headers: alice, body: Data("x".utf8))
        try await r.expect(413, "POST", st, headers: server, body: Data(count: 5000))
        try await r.expect(423, "POST", locked, headers: server, body: Data("while locked".utf8))
        try await r.expect(200, "GET", st + "?from=0&limit=2", headers: server)
        try await r.expect(200, "GET", st + "?from=999999&wait_ms=20", headers: server)
        try await r.expect(400, "GET", st + "?from=x", headers: server)
        try await r.expect(401, "GET", st)
        try await r.expect(403, "GET", st, headers: alice)
        try await r.expect(423, "DELETE", locked + "?before=2", headers: server)
        try await r.expect(400, "DELETE", st + "?before=-1", headers: server)
        try await r.expect(401, "DELETE", st)
        try await r.expect(403, "DELETE", st, headers: alice)

        // Breaking a lock (admin only).
        try await r.expect(400, "POST", base + "/v1/partitions/%2E/lock/break", headers: admin)
        try await r.expect(401, "POST", p + "/lock/break")
        try await r.expect(403, "POST", p + "/lock/break", headers: server)
        try await r.expect(200, "POST", p + "/lock/break", headers: admin)
        try await r.expect(404, "POST", p + "/lock/break", headers: admin)
        try await r.expect(204, "DELETE", st + "?before=2", headers: server)
        try await r.expect(204, "DELETE", locked, headers: server)

        // Who the key is, and value previews (the console's).
        try await r.expect(200, "GET", base + "/v1/me", headers: admin)
        try await r.expect(200, "GET", base + "/v1/me", headers: alice)
        try await r.expect(401, "GET", base + "/v1/me")
        try await r.expect(201, "PUT", p + "/objects/preview-me", headers: server, body: Data("x".utf8))
        try await r.expect(200, "GET", p + "/objects/preview-me/preview", headers: server)
        try await r.expect(404, "GET", p + "/objects/missing-key/preview", headers: server)
        try await r.expect(400, "GET", base + "/v1/partitions/%2E/objects/k/preview", headers: server)
        try await r.expect(401, "GET", p + "/objects/preview-me/preview")
        try await r.expect(403, "GET", p + "/objects/preview-me/preview", headers: alice)

        // The store-wide partition listing (game servers and admins).
        try await r.expect(200, "GET", base + "/v1/partitions?limit=2", headers: server)
        try await r.expect(200, "GET", base + "/v1/partitions?prefix=p&after=a", headers: admin)
        try await r.expect(400, "GET", base + "/v1/partitions?limit=0", headers: server)
        try await r.expect(401, "GET", base + "/v1/partitions")
        try await r.expect(403, "GET", base + "/v1/partitions", headers: alice)

        // A backup (admin only), into the server's backup directory.
        let json = ["Content-Type": "application/json"]
        try await r.expect(401, "POST", base + "/v1/admin/backup", headers: json, body: jsonBody(["name": "walk"]))
        try await r.expect(403, "POST", base + "/v1/admin/backup", headers: server.merging(json) { a, _ in a }, body: jsonBody(["name": "walk"]))
        try await r.expect(400, "POST", base + "/v1/admin/backup", headers: admin.merging(json) { a, _ in a }, body: jsonBody(["name": "../walk"]))
        try await r.expect(200, "POST", base + "/v1/admin/backup", headers: admin.merging(json) { a, _ in a }, body: jsonBody(["name": "walk"]))
    }

    func runChecker(document: String, records: String) throws -> (Int32, String) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/check-openapi.py").path
        return try runToEnd("/usr/bin/env", ["python3", script, document, records] + Self.notProduced.flatMap { ["--not-produced", $0] })
    }
}

/// The responses of a walk, kept for the checker.
actor ResponseRecorder {
    private var records: [[String: Any]] = []

    /// One request; its status must be `status` (so the walk itself cannot drift), and the
    /// response is recorded.
    @discardableResult
    func expect(_ status: Int, _ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) async throws -> HTTPResult {
        let result = try await http(method, url, headers: headers, body: body)
        #expect(result.status == status, "\(method) \(url): \(result.status) \(result.text)", sourceLocation: sourceLocation)
        let path = URL(string: url).map { u in u.path(percentEncoded: true) + (u.query(percentEncoded: true).map { "?" + $0 } ?? "") } ?? url
        records.append([
            "method": method, "path": path, "status": result.status, "headers": result.headers,
            "body_base64": result.body.base64EncodedString(),
        ])
        return result
    }

    func write(to path: String) throws {
        try JSONSerialization.data(withJSONObject: records).write(to: URL(fileURLWithPath: path))
    }
}
