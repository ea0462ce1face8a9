import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// A `jelly stream-world` process: a game server sending a frame every tick (docs/streams.md).
final class WorldProcess: Sendable {
    let process: Subprocess
    private let output: OutputCollector

    init(url: String, partition: String, owner: String, ticks: Int = 0, ttl: Int = 1000) throws {
        process = try Subprocess(
            try jellyExecutablePath(),
            ["stream-world", "--url", url, "--partition", partition, "--owner", owner, "--ttl-ms", String(ttl), "--hz", "100", "--save-every", "7", "--ticks", String(ticks)],
            output: .pipe, error: .standardOutput)
        output = OutputCollector(process.standardOutput ?? FileHandle.nullDevice)
    }

    var lines: [String] { output.text.split(separator: "\n").map(String.init) }

    func last(_ prefix: String) -> [String]? {
        lines.last { $0.hasPrefix(prefix + " ") }.map { $0.split(separator: " ").map(String.init) }
    }

    func waitFor(_ prefix: String, timeout: Duration = .seconds(20)) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = last(prefix) { return line }
            if !process.isRunning, last(prefix) == nil { throw ConformanceFailure("stream-world exited without \(prefix): \(lines)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ConformanceFailure("no \(prefix) line: \(lines)")
    }

    func kill9() {
        process.send(SIGKILL)
        process.waitUntilExit()
        // Everything the process wrote before it died.
        output.waitForEnd(seconds: 10)
    }

    /// Waits until the process has exited, up to `seconds`.
    func waitUntilGone(seconds: Double = 10) -> Bool {
        process.waitUntilExit(seconds: seconds) != nil
    }

    /// Whether the process printed a line starting with `prefix` within `timeout`.
    func printed(_ prefix: String, within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if lines.contains(where: { $0.hasPrefix(prefix) }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// A socket's events, collected as they come, for waits with a deadline (a test that breaks must
/// fail, not hang).
final class SocketEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [StreamSocketClient.Event] = []
    private var finished = false
    private var task: Task<Void, Never>?

    init(_ socket: StreamSocketClient) {
        task = Task { [self] in
            for await e in socket.events { lock.withLock { events.append(e) } }
            lock.withLock { finished = true }
        }
    }

    var all: [StreamSocketClient.Event] { lock.withLock { events } }
    var ended: Bool { lock.withLock { finished } }

    var acked: Int { all.reduce(0) { if case .acked(let n, _) = $1 { return max($0, n) }; return $0 } }
    var refusals: [(code: JellyError.Code, message: String, refused: Int)] {
        all.compactMap { if case .refused(let c, let m, let r, _) = $0 { return (c, m, r) }; return nil }
    }

    /// Waits until `condition` holds or `timeout` passes; returns whether it held.
    func wait(_ timeout: Duration = .seconds(20), until condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}

/// Streams over real sockets and real processes: the appender that needs no answers, refusals
/// on the socket, replay (fast and paced), an appender and a server SIGKILLed mid-stream, the
/// crash-recovery recipe, hibernation and a teleport.
func StreamWorld_parse(_ value: [UInt8]) -> Int {
    let text = String(decoding: value, as: UTF8.self)
    guard text.hasPrefix("tick=") else { return -1 }
    return Int(text.dropFirst(5)) ?? -1
}

/// `jelly stream-world`'s resume, through the library's recipe.
func StreamWorld_resume(_ store: any JellyStore, partition: String, owner: String) async throws -> (lock: LockInfo, tick: Int) {
    let (lock, objects, frames) = try await store.resume(partition: partition, owner: owner, ttlMilliseconds: 30_000, stream: "world", baseKey: "world")
    let tick = frames.last.map { StreamWorld_parse($0.value) } ?? objects.first { $0.key == "world" }.map { StreamWorld_parse($0.value) } ?? 0
    return (lock, tick)
}

extension HeavyProcessTests {
@Suite(.serialized) struct StreamSocketTests {
    func readAll(_ store: any JellyStore, _ partition: String, _ stream: String) async throws -> [Frame] {
        try await store.readAllFrames(partition: partition, stream: stream)
    }

    @Test func anAppenderWaitsForNothingAndAReplayReturnsExactlyWhatWasAppended() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let client = try JellyClient(JellyClient.Configuration(url: s.base))
            let socket = try await StreamSocketClient.append(url: s.base, bearerToken: nil, partition: "match-1", stream: "moves", token: nil)
            let sent = (0..<3000).map { i in Array("move-\(i)-".utf8) + [UInt8](repeating: UInt8(i % 251), count: i % 300) }
            for (i, v) in sent.enumerated() { if i % 500 == 499 { try await socket.sendAndWait(v) } else { socket.send(v) } }
            await socket.close()
            let stored = try await readAll(client, "match-1", "moves")
            #expect(stored.map(\.value) == sent, "every frame, in order: \(stored.count) of \(sent.count)")
            #expect(zip(stored, stored.dropFirst()).allSatisfy { $0.seq < $1.seq }, "sequences increase")

            // Frames and the close in one write: the server reads them together and must append
            // the frames before it closes.
            let burst = try await StreamSocketClient.append(url: s.base, bearerToken: nil, partition: "match-1", stream: "burst", token: nil)
            let burstFrames = (0..<50).map { Array("burst-\($0)".utf8) }
            try await burst.send(burstFrames, thenClose: true).get()
            let burstEvents = SocketEvents(burst)
            #expect(await burstEvents.wait { burstEvents.ended }, "the server closed the socket")
            #expect(try await readAll(client, "match-1", "burst").map(\.value) == burstFrames, "every frame sent with the close was appended")

            // Replay as fast as possible, from the start and from the middle.
            let replay = try await StreamSocketClient.tail(url: s.base, bearerToken: nil, partition: "match-1", stream: "moves", from: 0, follow: false)
            var replayed: [Frame] = []
            for await e in replay.events { if case .frame(let f) = e { replayed.append(f) } }
            #expect(replayed == stored, "the replay is exactly the stream: \(replayed.count)")
            let middle = stored[1500].seq
            let half = try await StreamSocketClient.tail(url: s.base, bearerToken: nil, partition: "match-1", stream: "moves", from: middle, follow: false)
            var second: [Frame] = []
            for await e in half.events { if case .frame(let f) = e { second.append(f) } }
            #expect(second == Array(stored[1500...]), "from any sequence")

            // A follower sees frames appended after it started.
            let follower = try await StreamSocketClient.tail(url: s.base, bearerToken: nil, partition: "match-1", stream: "moves", from: stored.last.map { $0.seq + 1 } ?? 0)
            try await Task.sleep(for: .milliseconds(100))
            try await client.appendFrame(partition: "match-1", stream: "moves", Array("late".utf8))
            var late: Frame?
            for await e in follower.events { if case .frame(let f) = e { late = f; break } }
            #expect(late?.value == Array("late".utf8), "followed: \(String(describing: late))")
            await follower.close()
            try await client.close()
        }
    }

    @Test func aPacedReplayKeepsTheOriginalSpacing() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let client = try JellyClient(JellyClient.Configuration(url: s.base))
            for i in 0..<5 {
                try await client.appendFrame(partition: "m", stream: "s", Array("\(i)".utf8))
                try await Task.sleep(for: .milliseconds(100))
            }
            let frames = try await readAll(client, "m", "s")
            let span = frames.last!.timeMilliseconds - frames.first!.timeMilliseconds
            #expect(span >= 400, "the frames span \(span) ms")
            func replay(speed: Double) async throws -> (Duration, Int) {
                let t0 = ContinuousClock.now
                let socket = try await StreamSocketClient.tail(url: s.base, bearerToken: nil, partition: "m", stream: "s", from: 0, speed: speed, follow: false)
                var n = 0
                for await e in socket.events { if case .frame = e { n += 1 } }
                return (ContinuousClock.now - t0, n)
            }
            let (original, n1) = try await replay(speed: 1)
            #expect(n1 == 5 && original >= .milliseconds(span - 50), "at the original pace: \(original) for \(span) ms")
            let (fast, n2) = try await replay(speed: 20)
            #expect(n2 == 5 && fast < original, "twenty times faster: \(fast)")
            try await client.close()
        }
    }

    @Test func aStaleHoldersFramesAreRefusedOnTheSocket() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let client = try JellyClient(JellyClient.Configuration(url: s.base))
            let lock = try await client.acquireLock(partition: "e", owner: "gs-1", ttlMilliseconds: 30_000)
            let socket = try await StreamSocketClient.append(url: s.base, bearerToken: nil, partition: "e", stream: "pos", token: lock.token, acks: .committed)
            let events = SocketEvents(socket)
            for i in 0..<10 { socket.send(Array("a\(i)".utf8)) }
            #expect(await events.wait { events.acked == 10 }, "acknowledged: \(events.acked)")
            _ = try await client.transferLock(partition: "e", token: lock.token, to: "gs-2", ttlMilliseconds: 30_000)
            for i in 0..<5 { socket.send(Array("b\(i)".utf8)) }
            #expect(await events.wait { events.refusals.last?.refused == 5 }, "refused: \(events.refusals)")
            let last = events.refusals.last
            #expect(last?.code == .locked && last?.message.contains("not the current lock") == true, "\(String(describing: last))")
            await socket.close()
            let stored = try await readAll(client, "e", "pos")
            #expect(stored.map { String(decoding: $0.value, as: UTF8.self) } == (0..<10).map { "a\($0)" }, "nothing after the transfer")
            try await client.close()
        }
    }

    /// The recovery recipe with a real SIGKILL: a game-server process sends a frame per tick
    /// and saves every 7; killed at a random moment, the next holder loads the save and the
    /// frames built on it; frames that reached the server after the dead holder's lease ran out
    /// are fenced, so it is at most a second behind what the dead one wrote. Every
    /// frame stored is whole and in order.
    @Test func aKilledGameServerIsResumedFromItsSaveAndFramesAtMostOneFrameOld() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let client = try JellyClient(JellyClient.Configuration(url: s.base))
            for round in 0..<3 {
                let world = try WorldProcess(url: s.base, partition: "entity-7", owner: "gs-\(round)")
                _ = try await world.waitFor("RESUME")
                try await Task.sleep(for: .milliseconds(300 + Int.random(in: 0..<400)))
                world.kill9()
                let lastSent = Int(world.last("FRAME")?[1] ?? "0") ?? 0
                // The lease (1 s) runs out; the next holder resumes.
                try await Task.sleep(for: .milliseconds(1100))
                let resumed = try await StreamWorld_resume(client, partition: "entity-7", owner: "check-\(round)")
                // "Sent" is printed once a frame is written to the socket. Frames the server reads
                // after the dead holder's 1 s lease ran out are refused, as they must be (fenced),
                // so how many are lost depends on how busy the server is: a quiet machine loses
                // none or one; a loaded suite saw six. The bound is a second of frames; the
                // property that matters is checked below: no gap, no frame twice, every one whole.
                #expect(resumed.tick >= lastSent - 50 && resumed.tick <= lastSent + 1, "round \(round): resumed at \(resumed.tick), the dead server had sent \(lastSent)")
                try await client.releaseLock(partition: "entity-7", token: resumed.lock.token)
                let frames = try await readAll(client, "entity-7", "world")
                let t = frames.map { StreamWorld_parse($0.value) }
                #expect(!t.contains(-1), "every frame is whole: \(frames.prefix(3))")
                #expect(t == Array(1...(t.last ?? 0)) || t.isEmpty, "ticks 1... in order, none lost between: \(t.suffix(5))")
            }
            try await client.close()
        }
    }

    @Test func aServerKilledMidStreamKeepsEveryCommittedFrame() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try ServerProcess(directory: dir.path + "/data")
        let socket = try await StreamSocketClient.append(url: server.base, bearerToken: nil, partition: "p", stream: "s", token: nil, acks: .committed)
        let sender = Task {
            var i = 0
            while !Task.isCancelled {
                do { try await socket.sendAndWait(Array("f\(i)".utf8)) } catch { return }
                i += 1
                if i % 50 == 0 { try? await Task.sleep(for: .milliseconds(1)) }
            }
        }
        let events = SocketEvents(socket)
        // Enough to be mid-stream; under a loaded suite the durable acks can come slowly.
        let enough = await events.wait(.seconds(60)) { events.acked >= 500 }
        server.kill(signal: SIGKILL)
        sender.cancel()
        #expect(enough, "500 frames acknowledged before the kill: \(events.acked)")
        _ = await events.wait(.seconds(10)) { events.ended }
        let acked = events.acked
        let again = try ServerProcess(directory: dir.path + "/data")
        try await again.use { s in
            let client = try JellyClient(JellyClient.Configuration(url: s.base))
            let stored = try await readAll(client, "p", "s").map { String(decoding: $0.value, as: UTF8.self) }
            #expect(stored.count >= acked, "every acknowledged frame survived: \(stored.count) stored, \(acked) acknowledged")
            #expect(stored == (0..<stored.count).map { "f\($0)" }, "a prefix of what was sent, each frame whole")
            try await client.close()
        }
    }

    /// Hibernate (final save and release in one commit, frames trimmed), wake on another
    /// server, and a teleport: the lock moves and the old server's frames and saves are fenced.
    @Test func hibernateWakeAndTeleport() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let client = try JellyClient(JellyClient.Configuration(url: s.base))
            let first = try WorldProcess(url: s.base, partition: "boss", owner: "gs-a", ticks: 30)
            let hibernated = try await first.waitFor("HIBERNATE")
            #expect(hibernated[1] == "30", "\(first.lines.suffix(3))")
            #expect(first.waitUntilGone(), "the process ends after hibernating")
            #expect(try await client.inspectLock(partition: "boss") == nil, "released with the final save")
            #expect(try await client.readFrames(partition: "boss", stream: "world", from: 0, limit: 10).frames.isEmpty, "frames trimmed")

            // Wake on another server: the save alone holds the world.
            let second = try WorldProcess(url: s.base, partition: "boss", owner: "gs-b")
            let woke = try await second.waitFor("RESUME")
            #expect(woke[3] == "30", "woke at tick 30: \(woke)")
            _ = try await second.waitFor("SAVE")
            // Teleport: the lock goes to gs-c; gs-b's frames and saves are fenced from then on.
            let token = LockToken(UInt64(woke[1]) ?? 0)
            let moved = try await client.transferLock(partition: "boss", token: token, to: "gs-c", ttlMilliseconds: 30_000)
            let atTransfer = try await readAll(client, "boss", "world").count
            // Its next save fails (`jelly` prints "error: …" and exits 1); its frames meanwhile
            // are refused on the socket.
            #expect(await second.printed("error:", within: .seconds(10)), "the old server's save was refused: \(second.lines.suffix(3))")
            #expect(second.lines.contains { $0.contains("not the current lock") }, "with the reason: \(second.lines.suffix(3))")
            if !second.waitUntilGone(seconds: 5) { second.kill9() }
            let after = try await readAll(client, "boss", "world")
            #expect(after.count == atTransfer, "no frame of the old holder landed after the transfer: \(after.count) vs \(atTransfer)")
            let resumed = try await StreamWorld_resume(client, partition: "boss", owner: "gs-c")
            #expect(resumed.lock.token == moved.token && resumed.tick >= 31, "gs-c resumes the teleported world at \(resumed.tick)")
            try await client.close()
        }
    }
}
}
