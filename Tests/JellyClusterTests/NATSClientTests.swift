import Foundation
import JellyTestSupport
import NATSClient
import NIOCore
import Testing

/// The NATS client against real nats-server processes.
@Suite(.serialized) struct NATSClientTests {
    func connect(_ servers: NATSTestServers, _ configure: (inout NATSOptions) -> Void = { _ in }) async throws -> NATSConnection {
        var options = NATSOptions(servers: try NATSServerAddress.list(servers.urls))
        options.reconnectWait = .milliseconds(20)
        configure(&options)
        return try await NATSConnection.connect(options: options, timeout: .seconds(10))
    }

    @Test func publishSubscribeRequestAndHeaders() async throws {
        let servers = try await NATSTestServers(count: 1)
        defer { servers.finish() }
        let nc = try await connect(servers)
        let sub = try nc.subscribe("greet.*")
        // A responder that echoes the payload and a header back.
        let service = try nc.subscribe("svc.echo")
        let responder = Task {
            for await m in service.messages {
                guard let reply = m.replyTo else { continue }
                var h = NATSHeaders()
                h["Echo"] = m.headers?["Ask"] ?? "none"
                try nc.publish(reply, payload: m.payload, headers: h)
            }
        }
        // The SUB has reached the server; a loaded machine can take seconds to answer.
        _ = try await nc.request("svc.echo", payload: ByteBuffer(string: "warmup"), timeout: .seconds(30))
        try nc.publish("greet.alice", payload: ByteBuffer(string: "hello"), headers: ["Kind": "greeting", "Multi": "a b: c"])
        try nc.publish("greet.bob", payload: ByteBuffer(string: ""))
        var iterator = sub.messages.makeAsyncIterator()
        let first = await iterator.next()
        #expect(first?.subject == "greet.alice")
        #expect(first.map { String(buffer: $0.payload) } == "hello")
        #expect(first?.headers?["Kind"] == "greeting")
        #expect(first?.headers?["Multi"] == "a b: c")
        let second = await iterator.next()
        #expect(second?.subject == "greet.bob" && second?.payload.readableBytes == 0 && second?.headers == nil)

        let answer = try await nc.request("svc.echo", payload: ByteBuffer(bytes: [0, 1, 2, 255]), headers: ["Ask": "42"])
        #expect(answer.bytes == [0, 1, 2, 255])
        #expect(answer.headers?["Echo"] == "42")
        // Many requests in flight share the one inbox.
        let answers = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask { String(buffer: try await nc.request("svc.echo", payload: ByteBuffer(string: "\(i)")).payload) == "\(i)" }
            }
            var ok = 0
            for try await r in group where r { ok += 1 }
            return ok
        }
        #expect(answers == 200)
        await #expect(throws: NATSError.noResponders(subject: "nobody.home")) {
            _ = try await nc.request("nobody.home", timeout: .seconds(2))
        }
        service.unsubscribe()
        responder.cancel()
        await nc.close()
        #expect(throws: NATSError.closed) { try nc.publish("x") }
    }

    @Test func reconnectsAndResubscribes() async throws {
        let servers = try await NATSTestServers(count: 1)
        defer { servers.finish() }
        let nc = try await connect(servers)
        let sub = try nc.subscribe("events")
        _ = try? await nc.request("flush", timeout: .milliseconds(200))
        servers.kill("n1")
        // While the server is down nothing is queued: publishing fails at once.
        var failed = false
        for _ in 0..<100 where !failed {
            do { try nc.publish("events", payload: ByteBuffer(string: "lost")) } catch NATSError.notConnected { failed = true }
            if !failed { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(failed, "publish fails while disconnected")
        try servers.start("n1")
        try await servers.waitUntilListening("n1")
        try await nc.waitUntilConnected(timeout: .seconds(30)) // a loaded machine: the restarted server can take long to answer
        #expect(nc.counters.reconnects >= 1)
        // The subscription was sent again on the new connection.
        let got = Shared<String?>(nil)
        let consumer = Task {
            for await m in sub.messages {
                let text = String(buffer: m.payload)
                if text.hasPrefix("after-") { got.withLock { $0 = text }; return }
            }
        }
        for attempt in 0..<100 where got.withLock({ $0 }) == nil {
            try nc.publish("events", payload: ByteBuffer(string: "after-\(attempt)"))
            try await Task.sleep(for: .milliseconds(50))
        }
        consumer.cancel()
        let received = got.withLock { $0 }
        #expect(received?.hasPrefix("after-") == true)
        await nc.close()
    }

    @Test func tokenAuthentication() async throws {
        let servers = try await NATSTestServers(count: 1, extraConfig: "authorization { token: \"s3cret\" }")
        defer { servers.finish() }
        let good = try await connect(servers) { $0.token = "s3cret" }
        #expect(good.status.connected)
        await good.close()
        do {
            let bad = try await connect(servers) { $0.token = "wrong" }
            await bad.close()
            Issue.record("a wrong token connected")
        } catch let error as NATSError {
            #expect("\(error)".contains("Authorization"), "the error says why: \(error)")
        }
    }

    @Test func userPasswordAndTLS() async throws {
        let dir = try TemporaryDirectory(prefix: "jelly-nats-tls")
        defer { dir.remove() }
        let openssl = try runToEnd("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", dir.path + "/key.pem", "-out", dir.path + "/cert.pem", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], standardError: false)
        try #require(openssl.status == 0, "openssl makes a test certificate")
        let servers = try await NATSTestServers(count: 1, extraConfig: """
            authorization { user: game, password: "pw" }
            tls { cert_file: "\(dir.path)/cert.pem", key_file: "\(dir.path)/key.pem" }
            """)
        defer { servers.finish() }
        // Without TLS configured the client refuses a server that requires it, and says so.
        await #expect(throws: NATSError.self) { try await connect(servers) { $0.user = "game"; $0.password = "pw"; $0.connectTimeout = .seconds(1) } }
        let nc = try await connect(servers) {
            $0.user = "game"
            $0.password = "pw"
            $0.tls = NATSTLSOptions(caFile: dir.path + "/cert.pem")
        }
        let sub = try nc.subscribe("secure")
        let service = Task {
            for await m in sub.messages { if let r = m.replyTo { try nc.publish(r, payload: ByteBuffer(string: "over tls")) } }
        }
        let answer = try await nc.request("secure", timeout: .seconds(3))
        #expect(String(buffer: answer.payload) == "over tls")
        service.cancel()
        await nc.close()
    }
}

/// A NATS server that hangs instead of crashing (SIGSTOP: its connections stay open, nothing
/// answers): the client notices from its waiting requests within seconds, drops the connection
/// and goes on through another server, instead of waiting for the keep-alive PINGs (20 s and more).
@Suite struct StalledServerTests {
    @Test func aPausedServerIsLeftWithinSeconds() async throws {
        let servers = try await NATSTestServers(count: 3)
        defer { servers.finish() }
        let list = try NATSServerAddress.list(servers.urls)
        var options = NATSOptions(servers: list)
        options.reconnectWait = .milliseconds(20)
        options.requestTimeout = .seconds(10)
        let nc = try await NATSConnection.connect(options: options, timeout: .seconds(30))
        let first = try #require(nc.status.server)
        let paused = try #require(servers.nodes.first { $0.clientPort == first.port })
        // A responder on another server of the cluster.
        var other = NATSOptions(servers: list.filter { $0.port != first.port })
        other.discoverServers = false
        let rc = try await NATSConnection.connect(options: other, timeout: .seconds(30))
        let service = try rc.subscribe("svc.echo")
        let responder = Task { for await m in service.messages { if let r = m.replyTo { try? rc.publish(r, payload: m.payload) } } }
        // The responder's interest reaches the other servers of the cluster after a moment.
        var ready = false
        for _ in 0..<300 where !ready {
            ready = (try? await nc.request("svc.echo", payload: ByteBuffer(string: "warmup"), timeout: .seconds(5))) != nil
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(ready, "the responder answers through the cluster")
        // A request nobody answers, sent before the last answer heard: the oldest waiting
        // request is then older than the last sign of life, and the watchdog must still judge
        // the newer ones (it once looked only at the oldest, and waited for its timeout).
        let silent = try rc.subscribe("svc.silent")
        let unanswered = Task { try? await nc.request("svc.silent", timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(300))
        _ = try await nc.request("svc.echo", payload: ByteBuffer(string: "after the silent one"), timeout: .seconds(5))

        servers.signal(paused.name, SIGSTOP)
        defer { servers.signal(paused.name, SIGCONT) }
        let start = ContinuousClock.now
        // Watch the stall flag meanwhile, as /v1/health does.
        let monitor = Task { () -> Bool in
            while !Task.isCancelled {
                if nc.stalledMilliseconds != nil { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }
        var answered = false
        while !answered && ContinuousClock.now - start < .seconds(30) {
            do {
                _ = try await nc.request("svc.echo", payload: ByteBuffer(string: "ping"), timeout: .seconds(2))
                answered = true
            } catch {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        monitor.cancel()
        let sawStall = await monitor.value
        let took = ContinuousClock.now - start
        // About 1.5–2 s on a quiet machine (the stall timeout); the whole suite at once on two cores delays every
        // timer. Without the watchdog the keep-alive PINGs take 20 s and more.
        #expect(answered && took < .seconds(12), "a request got through \(took) after the server paused (answered: \(answered))")
        #expect(nc.status.server?.port != first.port, "still on the paused server")
        #expect(sawStall, "the stall was visible (stalledMilliseconds) while it lasted")
        unanswered.cancel()
        silent.unsubscribe()
        responder.cancel()
        await nc.close()
        await rc.close()
    }
}
