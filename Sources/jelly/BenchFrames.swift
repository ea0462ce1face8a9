import ArgumentParser
import Foundation
import JellyClient
import JellyCore
import NIOCore
import Synchronization

/// `jelly bench-frames`: entities sending a frame every tick over stream WebSockets to `jelly
/// serve`, without waiting (docs/streams.md, docs/benchmarks.md). Reports the frames/s the
/// server took, the send-to-durable latency on a sample of sockets (those ask for durable
/// acks), the server's memory with --pid, then reads every entity's stream back and checks it
/// holds exactly the frames sent, in order; and the replay rate of one stream.
struct BenchFrames: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-frames",
        abstract: "Entities sending frames every tick over WebSockets to jelly serve; frames/s, durable latency, memory, replay."
    )
    @Option(help: "The server, http://HOST:PORT.") var url: String
    @Option(help: "The API key, when auth is on.") var token: String?
    @Option(help: "Entities (one socket and one stream each).") var entities = 1000
    @Option(help: "Frames per second per entity.") var rate = 60.0
    @Option(name: .customLong("frame-bytes"), help: "Bytes per frame.") var frameBytes = 256
    @Option(help: "Seconds to send.") var duration = 10.0
    @Option(name: .customLong("ack-sample"), help: "Sockets that ask for durable acks (the latency sample).") var ackSample = 50
    @Option(help: "The server's process id, to sample its memory (VmRSS).") var pid: Int32?
    @Option(name: .customLong("replay-frames"), help: "Frames of the replay measurement (one stream, appended in batches first).") var replayFrames = 200_000
    @Flag(help: "Skip reading every stream back.") var noVerify = false

    func run() async throws {
        try await failing {
            let run = String(UInt64.random(in: 0..<UInt64.max), radix: 36)
            print("bench-frames: \(entities) entities × \(Int(rate)) frames/s × \(frameBytes) B for \(duration) s over WebSockets to \(url); \(ackSample) sockets ask for durable acks; run \(run)")
            var sockets: [StreamSocketClient] = []
            for e in 0..<entities {
                let acks: StreamSocketClient.Acks = e < ackSample ? .durable : .none
                sockets.append(try await StreamSocketClient.append(url: url, bearerToken: token, partition: "bench-\(run)-e\(e)", stream: "state", token: nil, acks: acks))
            }
            // Latency sample: send times per sampled socket, matched by the ack's running count.
            let shared = FrameBenchShared(sampled: min(ackSample, entities))
            var listeners: [Task<Void, Never>] = []
            for (e, socket) in sockets.enumerated() {
                let sampled = e < ackSample
                listeners.append(Task {
                    var seen = 0
                    for await event in socket.events {
                        switch event {
                        case .acked(let count, _) where sampled:
                            let now = DispatchTime.now().uptimeNanoseconds
                            let times = shared.sendTimes.withLock { t -> ArraySlice<UInt64> in
                                let upto = min(count - seen, t[e].count)
                                defer { t[e].removeFirst(upto) }
                                return t[e].prefix(upto)
                            }
                            seen = count
                            shared.latencies.withLock { l in for t in times { l.append(Double(now - t) / 1e6) } }
                        case .refused(_, let message, let n, _):
                            shared.refused.add(1, ordering: .relaxed)
                            printError("entity \(e) refused (\(n)): \(message)")
                        default: break
                        }
                    }
                })
            }
            // Group the sockets by event loop: one closure per loop per tick writes to all of them.
            var byLoop: [ObjectIdentifier: (any EventLoop, [(Int, StreamSocketClient)])] = [:]
            for (e, s) in sockets.enumerated() {
                let loop = s.eventLoop
                byLoop[ObjectIdentifier(loop), default: (loop, [])].1.append((e, s))
            }
            let groups = Array(byLoop.values)
            let padding = [UInt8](repeating: 0x2E, count: max(0, frameBytes))
            let frameBytes = self.frameBytes
            let frame: @Sendable (Int, Int) -> [UInt8] = { e, tick in
                let head = Array("e\(e)-t\(tick)|".utf8)
                return head + padding.prefix(max(0, frameBytes - head.count))
            }
            let ticks = Int(duration * rate)
            let interval = 1.0 / rate
            let pid = self.pid
            let sampler = Task {
                while !Task.isCancelled {
                    if let pid { shared.rssMax.max(Self.rss(pid)) }
                    try? await Task.sleep(for: .milliseconds(250))
                }
            }
            let t0 = ContinuousClock.now
            var lateTicks = 0
            for tick in 0..<ticks {
                let due = t0 + .seconds(Double(tick) * interval)
                if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) } else if ContinuousClock.now - due > .seconds(interval) { lateTicks += 1 }
                for (loop, members) in groups {
                    loop.execute {
                        let now = DispatchTime.now().uptimeNanoseconds
                        for (e, s) in members {
                            if e < ackSample { shared.sendTimes.withLock { $0[e].append(now) } }
                            s.send(frame(e, tick))
                        }
                    }
                }
            }
            let sendSeconds = (ContinuousClock.now - t0).seconds
            // Close gracefully: the server appends every frame it received before it closes.
            await withTaskGroup(of: Void.self) { g in for s in sockets { g.addTask { await s.close() } } }
            let drainSeconds = (ContinuousClock.now - t0).seconds
            for l in listeners { await l.value }
            sampler.cancel()
            let sent = ticks * entities
            print("sent \(sent) frames in \(String(format: "%.2f", sendSeconds)) s: \(Int(Double(sent) / sendSeconds)) frames/s offered; all committed after \(String(format: "%.2f", drainSeconds)) s: \(Int(Double(sent) / drainSeconds)) frames/s")
            if lateTicks > 0 { print("the sender fell behind its tick \(lateTicks) times (the load generator is short of CPU)") }
            print("send → durable ack (\(min(ackSample, entities)) sockets, ms): \(BenchSync.percentiles(shared.latencies.withLock { $0 }))")
            if pid != nil { print("server memory (VmRSS) max during the run: \(formatBytes(Int64(shared.rssMax.load(ordering: .relaxed))))") }
            print("refusals: \(shared.refused.load(ordering: .relaxed))")

            var c = JellyClient.Configuration(url: url, bearerToken: token)
            c.requestTimeoutMilliseconds = 60_000
            let client = try JellyClient(c)
            do {
                if !noVerify {
                    var lost = 0
                    for e in 0..<entities {
                        let got = try await client.readAllFrames(partition: "bench-\(run)-e\(e)", stream: "state")
                        let expected = (0..<ticks).map { frame(e, $0) }
                        if got.map(\.value) != expected {
                            lost += 1
                            if lost <= 3 { printError("entity \(e): \(got.count) frames stored, \(expected.count) sent, or not the same") }
                        }
                    }
                    print("verified: \(entities - lost) of \(entities) streams hold exactly the frames sent, in order")
                    if lost > 0 { throw ExitCode(1) }
                }
                if replayFrames > 0 {
                    let partition = "bench-\(run)-replay"
                    var left = replayFrames
                    while left > 0 {
                        let n = min(1000, left)
                        try await client.appendFrames(partition: partition, stream: "match", [FrameInput](repeating: FrameInput(padding), count: n), lockToken: nil, retention: StreamRetention(frames: replayFrames, bytes: 1 << 34, ageMilliseconds: 3_600_000), durable: false)
                        left -= n
                    }
                    let r0 = ContinuousClock.now
                    let replay = try await StreamSocketClient.tail(url: url, bearerToken: token, partition: partition, stream: "match", from: 0, follow: false)
                    var n = 0
                    for await e in replay.events { if case .frame = e { n += 1 } }
                    let seconds = (ContinuousClock.now - r0).seconds
                    print("replay over a WebSocket: \(n) frames of \(frameBytes) B in \(String(format: "%.2f", seconds)) s: \(Int(Double(n) / seconds)) frames/s")
                    if n != replayFrames {
                        printError("the replay returned \(n) of \(replayFrames) frames")
                        throw ExitCode(1)
                    }
                }
            } catch {
                // A JellyClient must be closed before it goes away.
                try? await client.close()
                throw error
            }
            try await client.close()
        }
    }

    static func rss(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
}

/// What the bench's tasks share.
final class FrameBenchShared: Sendable {
    let sendTimes: Mutex<[[UInt64]]>
    let latencies = Mutex<[Double]>([])
    let refused = Atomic<Int>(0)
    let rssMax = Atomic<Int>(0)
    /// `jelly bench --frames-per-second`: frames appended.
    let appended = Atomic<Int>(0)
    init(sampled: Int) { sendTimes = Mutex(Array(repeating: [], count: sampled)) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Atomic where Value == Int {
    func max(_ v: Int) {
        var current = load(ordering: .relaxed)
        while v > current {
            let (exchanged, now) = compareExchange(expected: current, desired: v, ordering: .relaxed)
            if exchanged { return }
            current = now
        }
    }
}
