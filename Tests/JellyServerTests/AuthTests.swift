import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JWTKit
import JellyTestSupport
import Testing

private let serverKey = "server-key-0123456789abcdef"
private let adminKey = "admin-key-0123456789abcdef"
private let secret = "an-hs256-secret-of-at-least-32-bytes!!"

/// A client token (HS256 JWT) whose `sub` is `partition`.
func hs256ClientToken(_ partition: String, secret: String, expiresIn seconds: Double = 600) async throws -> String {
    let keys = JWTKeyCollection()
    await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: "hs256")
    return try await keys.sign(TestClaims(sub: .init(value: partition), exp: .init(value: Date().addingTimeInterval(seconds))))
}

struct TestClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Who may do what, against a real `jelly serve` started with a config file: API keys with
/// roles, client tokens (HS256 and EdDSA JWTs) limited to their partition, per-object access.
@Suite(.serialized) struct AuthTests {
    let eddsa: EdDSA.PrivateKey

    init() throws {
        eddsa = try EdDSA.PrivateKey(curve: .ed25519)
    }

    func withAuthServer(_ body: (ServerProcess) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config: [String: Any] = [
            "auth": [
                "api_keys": [["name": "game", "key": serverKey, "role": "server"], ["name": "ops", "key": adminKey, "role": "admin"]],
                "client_tokens": ["hs256_secret": secret, "eddsa_public_key": eddsa.publicKey.pemRepresentation],
            ],
            "limits": ["lock_ttl_ms_max": 600_000],
        ]
        let path = dir.path + "/jelly.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        try await ServerProcess(directory: dir.path + "/data", extraArguments: ["--config", path]).use(body)
    }

    func clientToken(_ partition: String, expiresIn seconds: Double = 600, eddsa useEdDSA: Bool = false, secret: String = secret) async throws -> String {
        guard useEdDSA else { return try await hs256ClientToken(partition, secret: secret, expiresIn: seconds) }
        let keys = JWTKeyCollection()
        await keys.add(eddsa: eddsa, kid: "eddsa")
        return try await keys.sign(TestClaims(sub: .init(value: partition), exp: .init(value: Date().addingTimeInterval(seconds))))
    }

    func bearer(_ token: String, _ extra: [String: String] = [:]) -> [String: String] {
        extra.merging(["Authorization": "Bearer \(token)"]) { a, _ in a }
    }

    @Test func apiKeysClientTokensAndObjectAccess() async throws {
        try await withAuthServer { s in
            let alice = s.base + "/v1/partitions/alice/objects"
            // 401 without or with wrong credentials; a malformed request is 400 first.
            var r = try await http("PUT", alice + "/inv", body: Data("x".utf8))
            #expect(r.status == 401 && r.json["error"] as? String == "unauthorized", "\(r.status) \(r.text)")
            r = try await http("PUT", alice + "/inv", headers: bearer("not-a-key-at-all-really"), body: Data("x".utf8))
            #expect(r.status == 401)
            r = try await http("PUT", s.base + "/v1/partitions/a%2Fb/objects/k", body: Data("x".utf8))
            #expect(r.status == 400, "400 wins over 401: \(r.status)")

            // A game server sets per-object access.
            r = try await http("PUT", alice + "/inv", headers: bearer(serverKey, ["Jelly-Read": "owner", "Jelly-Write": "owner"]), body: Data("sword".utf8))
            #expect(r.status == 201, "\(r.status) \(r.text)")
            r = try await http("PUT", alice + "/secret", headers: bearer(serverKey), body: Data("cheat-flags".utf8))
            #expect(r.status == 201)
            r = try await http("PUT", alice + "/profile", headers: bearer(serverKey, ["Jelly-Read": "public"]), body: Data("lvl 3".utf8))
            #expect(r.status == 201)
            r = try await http("PUT", alice + "/bad", headers: bearer(serverKey, ["Jelly-Read": "everyone"]), body: Data("x".utf8))
            #expect(r.status == 400, "bad Jelly-Read: \(r.status)")
            r = try await http("PUT", s.base + "/v1/partitions/bob/objects/inv", headers: bearer(serverKey, ["Jelly-Read": "owner"]), body: Data("bob's".utf8))
            #expect(r.status == 201)
            r = try await http("GET", alice + "/inv", headers: bearer(serverKey))
            #expect(r.status == 200 && r.headers["jelly-read"] == "owner" && r.headers["jelly-write"] == "owner")

            for useEdDSA in [false, true] {
                let token = try await clientToken("alice", eddsa: useEdDSA)
                r = try await http("GET", alice + "/inv", headers: bearer(token))
                #expect(r.status == 200 && r.text.hasPrefix("sword"), "own owner-readable object (eddsa \(useEdDSA)): \(r.status) \(r.text)")
                r = try await http("GET", alice + "/secret", headers: bearer(token))
                #expect(r.status == 403 && r.json["error"] as? String == "forbidden", "server-only object: \(r.status)")
                r = try await http("GET", s.base + "/v1/partitions/bob/objects/inv", headers: bearer(token))
                #expect(r.status == 403, "another partition: \(r.status)")
                r = try await http("GET", s.base + "/v1/partitions/bob/objects/missing", headers: bearer(token))
                #expect(r.status == 403, "another partition, missing object: 403 before 404: \(r.status)")
                r = try await http("GET", alice + "/profile", headers: bearer(try await clientToken("bob", eddsa: useEdDSA)))
                #expect(r.status == 200, "public objects are readable by any client: \(r.status)")
            }

            let token = try await clientToken("alice")
            r = try await http("GET", alice, headers: bearer(token))
            let keys = (r.json["objects"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }
            #expect(r.status == 200 && keys == ["inv", "profile"], "a client lists only what it may read: \(r.text)")
            r = try await http("GET", s.base + "/v1/partitions/bob/objects", headers: bearer(token))
            #expect(r.status == 403)

            // Client writes: only client-writable objects of its own partition, while unlocked.
            r = try await http("PUT", alice + "/inv", headers: bearer(token), body: Data("shield".utf8))
            #expect(r.status == 200, "client-writable: \(r.status) \(r.text)")
            r = try await http("GET", alice + "/inv", headers: bearer(serverKey))
            #expect(r.text == "shield" && r.headers["jelly-write"] == "owner", "the client's write keeps the access")
            r = try await http("PUT", alice + "/secret", headers: bearer(token), body: Data("x".utf8))
            #expect(r.status == 403)
            r = try await http("PUT", alice + "/new", headers: bearer(token), body: Data("x".utf8))
            #expect(r.status == 403, "clients cannot create objects: \(r.status)")
            r = try await http("PUT", alice + "/inv", headers: bearer(token, ["Jelly-Read": "public"]), body: Data("x".utf8))
            #expect(r.status == 403, "clients cannot set access")
            r = try await http("PUT", s.base + "/v1/partitions/bob/objects/inv", headers: bearer(token), body: Data("x".utf8))
            #expect(r.status == 403)
            r = try await http("POST", s.base + "/v1/partitions/alice/lock", headers: bearer(token), body: jsonBody(["owner": "me", "ttl_ms": 1000]))
            #expect(r.status == 403, "clients cannot lock")
            r = try await http("POST", s.base + "/v1/partitions/alice/batch", headers: bearer(token), body: jsonBody(["operations": [["op": "delete", "key": "inv"]]]))
            #expect(r.status == 403, "clients cannot send batches")

            // While a game server holds the lock, the client is fenced out.
            r = try await http("POST", s.base + "/v1/partitions/alice/lock", headers: bearer(serverKey), body: jsonBody(["owner": "gs-1", "ttl_ms": 60_000]))
            #expect(r.status == 200)
            r = try await http("PUT", alice + "/inv", headers: bearer(token), body: Data("dupe".utf8))
            #expect(r.status == 423 && r.json["owner"] as? String == "gs-1", "client write while locked: \(r.status) \(r.text)")
            r = try await http("POST", s.base + "/v1/partitions/alice/lock/break", headers: bearer(serverKey))
            #expect(r.status == 403, "servers cannot break locks")
            r = try await http("POST", s.base + "/v1/partitions/alice/lock/break", headers: bearer(adminKey))
            #expect(r.status == 200 && r.json["owner"] as? String == "gs-1", "admins can: \(r.status)")

            // Expired, forged and wrong-partition tokens.
            r = try await http("GET", alice + "/inv", headers: bearer(try await clientToken("alice", expiresIn: -60)))
            #expect(r.status == 401, "expired token: \(r.status)")
            r = try await http("GET", alice + "/inv", headers: bearer(try await clientToken("alice", secret: "another-secret-of-at-least-32-bytes!!!")))
            #expect(r.status == 401, "forged token: \(r.status)")

            // Lock TTL range from the config file.
            r = try await http("POST", s.base + "/v1/partitions/carol/lock", headers: bearer(serverKey), body: jsonBody(["owner": "gs", "ttl_ms": 700_000]))
            #expect(r.status == 400, "ttl over the configured maximum: \(r.status)")

            // Metrics: API keys only.
            r = try await http("GET", s.base + "/metrics")
            #expect(r.status == 401)
            r = try await http("GET", s.base + "/metrics", headers: bearer(token))
            #expect(r.status == 403)
            r = try await http("GET", s.base + "/metrics", headers: bearer(serverKey))
            #expect(r.status == 200, "\(r.status)")
            for name in ["jelly_http_requests_total{route=\"put_object\",status=\"201\"}", "jelly_http_request_duration_seconds_bucket",
                         "jelly_fsync_duration_seconds_bucket", "jelly_commit_batch_requests_bucket", "jelly_store_locks_held", "jelly_store_live_bytes", "jelly_store_value_cache_hits"] {
                #expect(r.text.contains(name), "metrics has \(name)")
            }
            r = try await http("GET", s.base + "/v1/health")
            #expect(r.status == 200, "health needs no credentials")
        }
    }

    @Test func oversizedHeadersAreRefusedAndTheServerStaysHealthy() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = dir.path + "/jelly.json"
        try Data("{\"limits\": {\"header_bytes_max\": 4096}}".utf8).write(to: URL(fileURLWithPath: config))
        let server = try ServerProcess(directory: dir.path + "/data", extraArguments: ["--config", config])
        defer { _ = server.kill(signal: SIGKILL) }
        let big = try? await http("GET", server.base + "/v1/health", headers: ["X-Big": String(repeating: "a", count: 8000)])
        #expect(big?.status != 200, "a header over header_bytes_max is refused: \(String(describing: big?.status))")
        let ok = try await http("GET", server.base + "/v1/health", headers: ["X-Small": String(repeating: "a", count: 2000)])
        #expect(ok.status == 200, "the server stays healthy")
    }

    @Test func badConfigFilesAreRefusedWithTheReason() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let cases: [(String, String)] = [
            ("{\"limits\": {\"body_bytes_maxx\": 5}}", "unknown field \"body_bytes_maxx\" in limits"),
            ("{\"auth\": {\"api_keys\": [{\"name\": \"a\", \"key\": \"short\", \"role\": \"server\"}]}}", "shorter than 16 bytes"),
            ("{\"auth\": {\"api_keys\": [{\"name\": \"a\", \"key\": \"0123456789abcdef0\", \"role\": \"root\"}]}}", "auth.api_keys"),
            ("{\"listen\": 7420}", "listen"),
            ("{\"value_cache_mib\": -1}", "value_cache_mib must be between 0"),
            ("not json", "not valid JSON"),
        ]
        for (text, expected) in cases {
            let path = dir.path + "/bad.json"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let (status, output) = try runToEnd(try jellyExecutablePath(), ["serve", "--data", dir.path + "/data", "--listen", "127.0.0.1:0", "--config", path])
            #expect(status == 1 && output.contains(expected) && output.contains(path), "\(text): exit \(status), \(output)")
        }
    }

    @Test func tlsWithHTTP2() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let openssl = try runToEnd("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", dir.path + "/key.pem", "-out", dir.path + "/cert.pem", "-days", "1", "-subj", "/CN=localhost"], standardError: false)
        try #require(openssl.status == 0, "openssl makes a test certificate")
        let server = try ServerProcess(directory: dir.path + "/data", extraArguments: ["--tls-cert", dir.path + "/cert.pem", "--tls-key", dir.path + "/key.pem"])
        defer { _ = server.kill(signal: SIGKILL) }
        #expect(server.log.contains("https://127.0.0.1:"))
        /// One request with curl over TLS and HTTP/2: "<http version> <status>" and the body.
        func curl(_ method: String, _ path: String, headers: [String] = [], data: String? = nil) throws -> (line: String, body: String) {
            let dump = dir.path + "/body"
            var arguments = ["curl", "-sk", "--http2", "-X", method, "-o", dump, "-w", "%{http_version} %{http_code}"]
            for header in headers { arguments += ["-H", header] }
            if let data { arguments += ["--data-binary", data] }
            let (status, line) = try runToEnd("/usr/bin/env", arguments + ["https://127.0.0.1:\(server.port)" + path], standardError: false)
            #expect(status == 0, "curl \(method) \(path) exit \(status)")
            return (line, (try? String(contentsOfFile: dump, encoding: .utf8)) ?? "")
        }
        #expect(try curl("PUT", "/v1/partitions/p/objects/k", data: "over-tls").line == "2 201", "PUT over TLS with HTTP/2")

        // The router answers every PUT over TLS (the direct path is HTTP/1.1 only): the lock rule
        // must hold there too, 423 with the holder for a PUT without the token or with a stale one.
        let locked = try curl("POST", "/v1/partitions/p/lock", headers: ["Content-Type: application/json"], data: #"{"owner": "gs-1", "ttl_ms": 60000}"#)
        #expect(locked.line == "2 200", "lock over TLS: \(locked)")
        let token = (try? JSONSerialization.jsonObject(with: Data(locked.body.utf8)) as? [String: Any])?["token"] as? Int ?? 0
        #expect(token > 0, "\(locked.body)")
        let without = try curl("PUT", "/v1/partitions/p/objects/k", data: "no token")
        #expect(without.line == "2 423" && without.body.contains("\"owner\":\"gs-1\""), "a PUT without the token while locked: \(without)")
        let stale = try curl("PUT", "/v1/partitions/p/objects/k", headers: ["Jelly-Lock-Token: \(token - 1)"], data: "stale token")
        #expect(stale.line == "2 423", "a PUT with a stale token: \(stale)")
        let held = try curl("PUT", "/v1/partitions/p/objects/k", headers: ["Jelly-Lock-Token: \(token)"], data: "with the token")
        #expect(held.line == "2 200", "a PUT with the live token: \(held)")
        let value = try curl("GET", "/v1/partitions/p/objects/k")
        #expect(value.body == "with the token", "only the holder's PUT was stored: \(value.body)")
        let plain = try? await http("GET", "http://127.0.0.1:\(server.port)/v1/health")
        #expect(plain?.status != 200, "plain HTTP is not served on the TLS port")
    }
}

/// `jelly bench --url` runs the session workload through a real server, with either HTTP client
/// (a smoke run: the figures come from release builds, see docs/benchmarks.md).
@Suite struct RemoteBenchTests {
    @Test(arguments: ["raw", "jellyclient"]) func benchOverHTTPCompletesSessions(client: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try ServerProcess(directory: dir.path + "/data")
        defer { _ = server.kill(signal: SIGKILL) }
        let (status, text) = try runToEnd(try jellyExecutablePath(), [
            "bench", "--url", server.base, "--players", "16", "--sessions", "4", "--saves-per-session", "3", "--value-bytes", "512",
            "--duration", "0.5", "--json", "--http-client", client,
        ], standardError: false)
        let last = text.split(separator: "\n").last.map(String.init) ?? ""
        let json = (try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any] ?? [:]
        #expect(status == 0, "bench exit: \(text)")
        #expect((json["saves"] as? Int ?? 0) > 0 && (json["failed_sessions"] as? Int) == 0, "\(last)")
        #expect((json["save_latency_ms"] as? [String: Any])?["p99"] != nil && json["http_client"] as? String == client)
        // The saves really went through the server: its request counters say so.
        let metrics = try await http("GET", server.base + "/metrics")
        let line = metrics.text.split(separator: "\n").first { $0.hasPrefix("jelly_http_requests_total{route=\"put_object\",status=\"200\"}") }
        let served = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(served >= Double(json["saves"] as? Int ?? 0) / 2, "server counted \(served) PUTs: \(line ?? "none")")
    }
}
