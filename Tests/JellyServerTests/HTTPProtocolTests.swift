import Foundation
import JellyTestSupport
import Testing

/// HTTP as every client expects it, over plain sockets and curl to a real `jelly serve`: the
/// corner cases of RFC 9110/9112 that clients no one on the project wrote depend on.
@Suite(.serialized) struct HTTPProtocolTests {
    func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use(body)
    }

    /// curl sends `Expect: 100-continue` for every body over 1 MiB and waits up to a second for
    /// the `100 Continue` before it sends the body anyway.
    @Test func expectContinueIsAnsweredAtOnce() async throws {
        try await withServer { s in
            let c = try RawConnection(port: s.port)
            try c.send("PUT /v1/partitions/p/objects/big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let interim = c.read(for: 500)
            #expect(interim.text.hasPrefix("HTTP/1.1 100 Continue\r\n"), "the interim answer comes before the body: \(interim.text)")
            try c.send("hello")
            let final = c.read(for: 2000)
            #expect(final.text.hasPrefix("HTTP/1.1 201"), "then the PUT's own answer: \(final.text)")
            let stored = try await http("GET", s.base + "/v1/partitions/p/objects/big")
            #expect(stored.text == "hello")

            // A body over the limit gets no 100 but its 413 at once; an expectation the server
            // cannot meet, 417.
            let big = try RawConnection(port: s.port).exchange("PUT /v1/partitions/p/objects/big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999999999\r\nConnection: close\r\n\r\n")
            #expect(big.hasPrefix("HTTP/1.1 413"), "\(big.prefix(80))")
            let odd = try RawConnection(port: s.port).exchange("PUT /v1/partitions/p/objects/big HTTP/1.1\r\nHost: x\r\nExpect: a-pony\r\nContent-Length: 1\r\n\r\nx")
            #expect(odd.hasPrefix("HTTP/1.1 417") && odd.contains("\"error\""), "\(odd.prefix(120))")

            // With curl, a 1.2 MB upload does not wait for a 100 (curl waits 5 s here without one,
            // far from the upload's own time even on a loaded machine).
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let file = dir.path + "/big.bin"
            try Data(repeating: 7, count: 1_200_000).write(to: URL(fileURLWithPath: file))
            let (status, out) = try runToEnd("/usr/bin/env", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "PUT", "-H", "Expect: 100-continue", "--expect100-timeout", "5", "--data-binary", "@" + file, s.base + "/v1/partitions/p/objects/big"], standardError: false)
            let parts = out.split(separator: " ")
            #expect(status == 0 && parts.first == "200", "\(out)")
            #expect((Double(parts.last ?? "") ?? 9) < 3, "the upload did not wait for a 100 that never came: \(out)")
        }
    }

    /// HTTP/1.0 closes after each answer unless it asks for keep-alive; so does `Connection: close`
    /// (in any case: Hummingbird itself looks for "close" exactly).
    @Test func http10IsClosedAfterItsAnswer() async throws {
        try await withServer { s in
            for request in [
                "GET /v1/health HTTP/1.0\r\n\r\n",
                "PUT /v1/partitions/p/objects/k HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
                "GET /v1/partitions/p/objects HTTP/1.0\r\n\r\n",
                "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
                "PUT /v1/partitions/p/objects/k HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\nContent-Length: 2\r\n\r\nhi",
            ] {
                let answer = try RawConnection(port: s.port).read(afterSending: request, for: 3000)
                #expect(answer.closed, "closed after the answer: \(request.prefix(40))")
                #expect(answer.text.contains(" 200 ") || answer.text.contains(" 201 "), "\(answer.text.prefix(80))")
            }
            let kept = try RawConnection(port: s.port).read(afterSending: "GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", for: 700)
            #expect(!kept.closed && kept.text.hasPrefix("HTTP/1.1 200"), "keep-alive asked for, kept: \(kept)")
        }
    }

    @Test func methodsHeadAllowAndUnknownPaths() async throws {
        try await withServer { s in
            _ = try await http("PUT", s.base + "/v1/partitions/p/objects/k", headers: ["Content-Type": "text/plain"], body: Data("value".utf8))
            let head = try RawConnection(port: s.port).exchange("HEAD /v1/partitions/p/objects/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 200") && head.contains("Content-Length: 5") && head.hasSuffix("\r\n\r\n"), "HEAD wherever GET is, without the body: \(head)")
            for method in ["TRACE", "PATCH", "OPTIONS"] {
                let r = try RawConnection(port: s.port).exchange("\(method) /v1/partitions/p/objects/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                #expect(r.hasPrefix("HTTP/1.1 405") && r.contains("Allow: DELETE, GET, HEAD, PUT") && r.contains("\"error\""), "\(method): \(r.prefix(300))")
            }
            let lock = try RawConnection(port: s.port).exchange("PUT /v1/partitions/p/lock HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            #expect(lock.contains("Allow: DELETE, GET, HEAD, POST"), "\(lock.prefix(300))")
            for request in ["GET /nowhere", "TRACE /", "DELETE /v1"] {
                let r = try RawConnection(port: s.port).exchange("\(request) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(r.hasPrefix("HTTP/1.1 404") && r.contains("\"error\":\"not_found\""), "\(request): a JSON error body: \(r.prefix(300))")
            }
            // CONNECT asks for a tunnel: NIO's encoder sends no body after its answer, whatever
            // the status, so the refusal is the status and the closed connection.
            let connect = try RawConnection(port: s.port).read(afterSending: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n", for: 3000)
            #expect(connect.text.hasPrefix("HTTP/1.1 404") && connect.closed, "\(connect)")
        }
    }

    @Test func everyAnswerHasADateAndHTTP11NeedsAHost() async throws {
        try await withServer { s in
            let put = try RawConnection(port: s.port).exchange("PUT /v1/partitions/p/objects/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
            #expect(put.hasPrefix("HTTP/1.1 201") && put.contains("\r\nDate: "), "a PUT answered on the event loop has a Date: \(put)")
            let noHost = try RawConnection(port: s.port).read(afterSending: "GET /v1/health HTTP/1.1\r\n\r\n", for: 3000)
            #expect(noHost.text.hasPrefix("HTTP/1.1 400") && noHost.text.contains("Host") && noHost.closed, "\(noHost)")
            let http10 = try RawConnection(port: s.port).read(afterSending: "GET /v1/health HTTP/1.0\r\n\r\n", for: 3000)
            #expect(http10.text.hasPrefix("HTTP/1.1 200"), "HTTP/1.0 needs no Host: \(http10.text.prefix(60))")
        }
    }
}

/// One rule for whole numbers (tokens, versions, TTLs, limits), in headers, queries and bodies.
@Suite(.serialized) struct WholeNumberTests {
    @Test func wholeNumbersFollowOneRuleEverywhere() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let p = s.base + "/v1/partitions/p"
            for (body, field) in [
                (#"{"owner": "o", "ttl_ms": 1000.5}"#, "ttl_ms"),
                (#"{"owner": "o", "ttl_ms": 1e30}"#, "ttl_ms"), (#"{"owner": "o", "ttl_ms": "20000"}"#, "ttl_ms"),
                (#"{"owner": "o", "ttl_ms": true}"#, "ttl_ms"),
            ] {
                let r = try await http("POST", p + "/lock", body: Data(body.utf8))
                #expect(r.status == 400 && (r.json["message"] as? String ?? "").hasPrefix("\(field) must be a whole number"), "\(body): \(r.text)")
            }
            let negative = try await http("POST", p + "/lock", body: Data(#"{"owner": "o", "ttl_ms": -20000}"#.utf8))
            #expect(negative.status == 400 && negative.text.contains("ttl -20000 ms is outside"), "\(negative.text)")
            for (body, field) in [
                (#"{"operations": [{"op": "delete", "key": "a", "if_version": -1}]}"#, "operations[0].if_version"),
                (#"{"lock_token": 1e30, "release_lock": true, "operations": []}"#, "lock_token"),
            ] {
                let r = try await http("POST", p + "/batch", body: Data(body.utf8))
                #expect(r.status == 400 && (r.json["message"] as? String ?? "").hasPrefix("\(field) must be a whole number"), "\(body): \(r.text)")
            }
            // In JSON a whole number is a number whose value is whole (JSON Schema's integer).
            for spelling in ["20000.0", "2e4"] {
                let r = try await http("POST", s.base + "/v1/partitions/q/lock", body: Data(#"{"owner": "o", "ttl_ms": \#(spelling)}"#.utf8))
                #expect(r.status == 200, "ttl_ms: \(spelling) is 20000: \(r.text)")
            }
            let lock = try await http("POST", p + "/lock", body: Data(#"{"owner": "o", "ttl_ms": 20000}"#.utf8))
            #expect(lock.status == 200, "digits are a whole number: \(lock.text)")
            let token = lock.json["token"] as? Int ?? 0
            for header in ["+\(token)", "\(token).0", "\(token)e0", "-\(token)", "0x\(token)"] {
                let r = try await http("PUT", p + "/objects/k", headers: ["Jelly-Lock-Token": header], body: Data("v".utf8))
                #expect(r.status == 400, "Jelly-Lock-Token: \(header) is not a whole number: \(r.status) \(r.text)")
            }
            let spaced = try await http("PUT", p + "/objects/k", headers: ["Jelly-Lock-Token": " \(token) "], body: Data("v".utf8))
            #expect(spaced.status == 201, "spaces around a header's value are not part of it: \(spaced.text)")
            for bad in ["+5", "5.0", "-1"] {
                let r = try await http("GET", p + "/objects?limit=\(bad)")
                #expect(r.status == 400, "limit=\(bad): \(r.text)")
            }
            let match = try await http("DELETE", p + "/objects/k", headers: ["Jelly-Lock-Token": "\(token)", "If-Match": "\"+1\""])
            #expect(match.status == 400, "If-Match: \"+1\": \(match.text)")
            let notJSON = try await http("POST", p + "/lock", body: Data("{\"owner\": ".utf8))
            #expect(notJSON.status == 400 && notJSON.text.contains("not valid JSON"), "\(notJSON.text)")
        }
    }
}

extension RawConnection {
    /// Sends `request`, then what comes back within `milliseconds` and whether the server closed.
    func read(afterSending request: String, for milliseconds: Int) throws -> (text: String, closed: Bool) {
        try send(request)
        return read(for: milliseconds)
    }
}
