import Foundation
#if canImport(Glibc)
import Glibc
#endif
import JellyTestSupport
import Testing

/// Requests no HTTP library would send, over a plain TCP socket to a real `jelly serve`:
/// malformed escapes and request lines, bodies cut off mid-way, and clients that stall. Each gets
/// its answer (or its connection closed), nothing partial is stored, and the server stays healthy.
@Suite(.serialized) struct RawRequestTests {
    func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = dir.path + "/jelly.json"
        try Data("{\"limits\": {\"idle_timeout_ms\": 500}}".utf8).write(to: URL(fileURLWithPath: config))
        try await ServerProcess(directory: dir.path + "/data", extraArguments: ["--config", config]).use(body)
    }

    @Test func malformedPathsAndRequestLinesGet400() async throws {
        try await withServer { s in
            for bad in ["ab%", "a%2", "%zz", "%", "x%G0"] {
                let answer = try RawConnection(port: s.port).exchange("GET /v1/partitions/\(bad)/objects/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("bad_request"), "partition \(bad): \(answer.prefix(120))")
            }
            let garbage = try RawConnection(port: s.port).exchange("HELLO THERE\r\n\r\n")
            #expect(garbage.hasPrefix("HTTP/1.1 400") || garbage.isEmpty, "a garbage request line is refused: \(garbage.prefix(120))")
            let health = try await http("GET", s.base + "/v1/health")
            #expect(health.status == 200)
        }
    }

    @Test func aBodyCutOffMidwayStoresNothing() async throws {
        try await withServer { s in
            let connection = try RawConnection(port: s.port)
            try connection.send("PUT /v1/partitions/p/objects/k HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n" + String(repeating: "a", count: 1000))
            connection.close() // 3,096 bytes short
            try await Task.sleep(for: .milliseconds(200))
            var r = try await http("GET", s.base + "/v1/partitions/p/objects/k")
            #expect(r.status == 404, "a cut-off PUT wrote nothing: \(r.status)")

            let batch = try RawConnection(port: s.port)
            let json = "{\"operations\":[{\"op\":\"put\",\"key\":\"a\",\"value_base64\":\"eA==\"},{\"op\":\"put\",\"key\":\"b\",\"value_base64\":\"eA==\"}]}"
            try batch.send("POST /v1/partitions/p/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json.prefix(50))
            batch.close()
            try await Task.sleep(for: .milliseconds(200))
            r = try await http("GET", s.base + "/v1/partitions/p/objects")
            #expect(r.status == 200 && (r.json["objects"] as? [Any])?.isEmpty == true, "a cut-off batch wrote nothing: \(r.text)")
            r = try await http("PUT", s.base + "/v1/partitions/p/objects/k", body: Data("whole".utf8))
            #expect(r.status == 201, "the server still takes writes")
        }
    }

    /// PUTs are answered on the event loop (DirectPutHandler), everything else by the router:
    /// requests pipelined on one connection, mixing the two, are answered in order.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer { s in
            func put(_ key: String, _ body: String, _ extra: String = "") -> String {
                "PUT /v1/partitions/p/objects/\(key) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
            }
            func get(_ key: String, _ extra: String = "") -> String {
                "GET /v1/partitions/p/objects/\(key) HTTP/1.1\r\nHost: x\r\n\(extra)\r\n"
            }
            let requests = [
                put("a", "one"), get("a"), put("a", "two"), put("%zz", "bad"),
                put("a", "stale", "Jelly-Lock-Token: 7\r\n"), get("a"), get("a", "Connection: close\r\n"),
            ]
            let answer = try RawConnection(port: s.port).exchange(requests.joined())
            let responses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0) }
            let statuses = responses.map { $0.prefix(3) }
            #expect(statuses == ["201", "200", "200", "400", "423", "200", "200"], "statuses in request order: \(statuses)\n\(answer)")
            if responses.count == 7 {
                #expect(responses[1].hasSuffix("one") && responses[5].hasSuffix("two") && responses[6].hasSuffix("two"), "each GET sees the PUTs before it")
                #expect(responses[0].contains("\"version\":") && responses[0].contains("ETag: \""), "a direct answer has the router's shape: \(responses[0])")
                #expect(responses[0].lowercased().contains("server: jelly") && responses[1].lowercased().contains("server: jelly"))
            }
            // The answered connection is closed after `Connection: close` on a direct PUT too.
            let closing = try RawConnection(port: s.port).exchange(put("b", "three", "Connection: close\r\n"))
            #expect(closing.hasPrefix("HTTP/1.1 201"), "a direct PUT with Connection: close is answered, then the connection closes: \(closing)")
        }
    }

    /// With `log_requests` and `--log-format json`, every answered request — direct PUTs and
    /// routed ones alike — leaves one JSON line with its route and status.
    @Test func requestLogLinesAreJSONForBothPaths() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = dir.path + "/jelly.json"
        try Data("{\"log_requests\": true}".utf8).write(to: URL(fileURLWithPath: config))
        // A quote and a backslash in the data directory's name, which the start-up line logs.
        try await ServerProcess(directory: dir.path + "/da\"ta\\", extraArguments: ["--config", config, "--log-format", "json"]).use { s in
            let key = "k"
            #expect(try await http("PUT", s.base + "/v1/partitions/p/objects/\(key)", body: Data("v".utf8)).status == 201)
            #expect(try await http("GET", s.base + "/v1/partitions/p/objects/\(key)").status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let lines = s.log.split(separator: "\n").filter { $0.hasPrefix("{") }
            let events = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(events.count == lines.count, "every JSON log line parses: \(lines)")
            #expect(events.contains { $0.values.contains { ($0 as? String)?.contains("da\"ta\\") == true } }, "the data directory is logged: \(lines)")
            let requests = events.filter { $0["msg"] as? String == "request" }
            let routes = requests.map { "\($0["route"] ?? "") \($0["status"] ?? "")" }
            #expect(routes.contains("put_object 201") && routes.contains("get_object 200"), "one line per request: \(routes)")
        }
    }

    /// Every segment keeps a file open, so `jelly serve` started under a small soft limit on
    /// open files raises it to the hard limit and says so.
    @Test func serveRaisesItsOpenFileLimit() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(arguments: ["--data", dir.path + "/data"], softOpenFileLimit: 256).use { s in
            let limits = try String(contentsOfFile: "/proc/\(s.process.processIdentifier)/limits", encoding: .utf8)
            let fields = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?.split(separator: " ").suffix(3) ?? []
            let (soft, hard) = (fields.first.flatMap { Int($0) }, fields.dropFirst().first.flatMap { Int($0) })
            #expect(soft != nil && soft == hard, "soft limit raised to the hard one: \(fields)")
            if let hard, hard > 256 {
                #expect(s.log.contains("raised the open-file limit") && s.log.contains("from=256"), "\(s.log)")
            }
            #expect(try await http("GET", s.base + "/v1/health").status == 200)
        }
    }

    @Test func aStalledClientIsDisconnectedAndOthersAreServed() async throws {
        try await withServer { s in
            // Headers, then nothing: the idle timeout (500 ms here) closes the connection.
            let stalled = try RawConnection(port: s.port)
            try stalled.send("PUT /v1/partitions/p/objects/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            let r = try await http("GET", s.base + "/v1/health")
            #expect(r.status == 200, "others are served while one client stalls")
            let start = Date()
            let rest = try stalled.readUntilClosed(timeoutSeconds: 10)
            let waited = Date().timeIntervalSince(start)
            #expect(waited < 5, "the stalled connection is closed after the idle timeout, not left open (\(waited) s; got \(rest.prefix(80)))")
            let get = try await http("GET", s.base + "/v1/partitions/p/objects/slow")
            #expect(get.status == 404, "the stalled PUT wrote nothing")
        }
    }
}

/// A blocking TCP connection to 127.0.0.1 with a receive timeout.
final class RawConnection {
    private var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ConformanceFailure("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw ConformanceFailure("connect to port \(port) failed: errno \(errno)")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func send(_ text: String) throws {
        var bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ConformanceFailure("send failed: errno \(errno)") }
            sent += n
        }
    }

    /// Everything the server sends until it closes the connection (or the timeout passes).
    func readUntilClosed(timeoutSeconds: Int) throws -> String {
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += chunk[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// What the server sends within `milliseconds`, and whether it closed the connection then.
    func read(for milliseconds: Int) -> (text: String, closed: Bool) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: Int((milliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (String(decoding: received, as: UTF8.self), true) }
            if n < 0 { return (String(decoding: received, as: UTF8.self), false) }
            received += chunk[0..<n]
        }
    }

    /// Sends `request` (which should ask for `Connection: close`) and returns the answer.
    func exchange(_ request: String) throws -> String {
        try send(request)
        return try readUntilClosed(timeoutSeconds: 5)
    }
}
