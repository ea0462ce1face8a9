import Dispatch
import Foundation
import ArgumentParser
import JellyClient
import JellyCore
import JellyEngine
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The session workload: lock and load a player, save K times with the token, then save and
/// release in one commit. See docs/benchmarks.md.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the session workload and report saves/s and save latency.",
        discussion: "Creates a fresh store (in --data, which must not exist, or a temporary directory here), loads the players, then runs sessions for --duration seconds. Use a release build: swift run -c release jelly bench."
    )

    @Option(help: "Players (partitions).") var players = 10_000
    @Option(name: .customLong("value-bytes"), help: "Bytes per saved value.") var valueBytes = 4096
    @Option(help: "Concurrent sessions.") var sessions = 64
    @Option(name: .customLong("saves-per-session"), help: "Saves with the token before the final save-and-release.") var savesPerSession = 20
    @Option(name: .customLong("objects-per-player"), help: "Objects each player has; saves rotate over them.") var objectsPerPlayer = 2
    @Option(help: "Seconds to run sessions.") var duration: Double = 10
    @Option(help: "Seconds of sessions to run first, unmeasured (until segment files are being recycled).") var warmup: Double = 0
    @Option(help: "always | interval | interval:MS | never") var durability = "always"
    @Option(help: "Store directory (must not exist); default: a temporary directory in the current one, removed afterwards.") var data: String?
    @Option(name: .customLong("segment-mib"), help: "Segment file size in MiB.") var segmentMiB = 64
    @Option(name: .customLong("garbage-ratio"), help: "Compaction threshold (fraction of sealed bytes that may be garbage).") var garbageRatio = CompactionPolicy().garbageRatio
    @Option(name: .customLong("garbage-allowance-mib"), help: "Garbage tolerated before compaction starts, in MiB.") var garbageAllowanceMiB = Int(CompactionPolicy().garbageBytesAllowance >> 20)
    @Option(name: .customLong("value-cache-mib"), help: "Memory for recent values in MiB (0: every load reads the disk).") var valueCacheMiB = EmbeddedStoreConfiguration(directory: "").valueCacheBytes >> 20
    @Option(help: "Run against a jelly serve at this URL (http://HOST:PORT) instead of an embedded store; several comma-separated URLs (cluster nodes) share the sessions round-robin; --data and the store options do not apply.") var url: String?
    @Option(help: "With --url: the API key to send (Authorization: Bearer).") var token: String?
    @Option(name: .customLong("http-client"), help: "With --url: raw (one hand-written HTTP/1.1 connection per session, so the figures are the server's) or jellyclient (the Swift client, async-http-client; also https).") var httpClient = BenchHTTPClient.raw
    @Option(name: .customLong("frames-per-second"), help: "Embedded only: frames appended per second meanwhile, in-process (1,000 streams, 256 B each), to measure what streams cost the saves.") var framesPerSecond = 0
    @Option(name: .customLong("replay-frames"), help: "Embedded only: afterwards, append this many 256-byte frames to one stream and time reading them back (pages of 1,000).") var replayFrames = 0
    @Flag(help: "Print one JSON object last.") var json = false
    @Flag(help: "Keep the store directory afterwards.") var keep = false

    func validate() throws {
        if players < 1 || sessions < 1 || valueBytes < 1 || savesPerSession < 0 || objectsPerPlayer < 1 || duration <= 0 {
            throw ValidationError("players, sessions, value-bytes and objects-per-player must be positive; duration above 0")
        }
        if !(0...(1 << 20)).contains(valueCacheMiB) { throw ValidationError("--value-cache-mib must be between 0 (no cache) and 1048576") }
        if sessions > players { throw ValidationError("--sessions (\(sessions)) cannot exceed --players (\(players)): each session needs its own player") }
        if Durability(parsing: durability) == nil { throw ValidationError("--durability must be always, interval, interval:MS or never") }
    }

    func run() async throws {
        // Off the main actor: the command starts on the main thread, and sessions started from
        // there would all run on that one thread.
        let command = self
        try await Task.detached { try await command.benchmark() }.value
    }

    func benchmark() async throws {
        if let url { return try await remoteBenchmark(url: url) }
        let directory = data ?? "./jelly-bench-\(getpid())"
        if access(directory, F_OK) == 0 {
            throw ValidationError("\(directory) already exists; the benchmark needs a fresh directory")
        }
        var config = EmbeddedStoreConfiguration(directory: directory)
        config.durability = Durability(parsing: durability) ?? .always
        config.segmentBytes = segmentMiB << 20
        config.compaction.garbageRatio = garbageRatio
        config.compaction.garbageBytesAllowance = Int64(garbageAllowanceMiB) << 20
        config.limits.valueBytesMax = max(config.limits.valueBytesMax, valueBytes)
        config.valueCacheBytes = valueCacheMiB << 20
        defer { if !keep { removeTree(directory) } }

        let probeBefore = DiskProbe.run(directory: directory)
        let store = try await failing { try EmbeddedStore.open(config) }
        let info0 = store.info()
        log("jelly bench: \(players) players x \(objectsPerPlayer) objects, \(valueBytes) B values, \(sessions) sessions, \(savesPerSession) saves + 1 final per session, \(format1(duration)) s measured after \(format1(warmup)) s warm-up, durability \(config.durability), log writes \(info0.ioMode), value cache \(valueCacheMiB) MiB, CRC-32C \(crcKind())")
        log("disk probe before: 4 KiB write+fdatasync p50 \(format2(probeBefore.p50)) ms, p99 \(format2(probeBefore.p99)) ms (\(probeBefore.iterations) iterations)")

        let keys = (0..<objectsPerPlayer).map { "object-\($0)" }
        try await loadPlayers(targets: [StoreTarget(store: store)], keys: keys)

        if warmup > 0 {
            log("warming up for \(format1(warmup)) s (sessions run, nothing recorded)")
            let warm = try await runSessions(targets: [StoreTarget(store: store)], keys: keys, until: monotonicSeconds() + warmup)
            log("warm-up: \(warm.reduce(0) { $0 + $1.latencies.count }) saves; measuring for \(format1(duration)) s")
        }
        // Run sessions.
        let info1 = store.info()
        let io1 = ProcessIO.read()
        let cpu1 = cpuSeconds()
        let start = monotonicSeconds()
        let frames = framesPerSecond > 0 ? Task { await Self.appendFrames(store, perSecond: framesPerSecond, until: start + duration) } : nil
        let results = try await runSessions(targets: [StoreTarget(store: store)], keys: keys, until: start + duration)
        let elapsed = monotonicSeconds() - start
        if let frames {
            let (appended, refused) = await frames.value
            log("frames: \(appended) appended meanwhile (\(Int(Double(appended) / elapsed))/s), \(refused) refused")
        }
        let cpu = cpuSeconds() - cpu1
        let io2 = ProcessIO.read()
        let info2 = store.info()
        if replayFrames > 0 { try await Self.replay(store, frames: replayFrames) }
        try await store.close()
        let probeAfter = DiskProbe.run(directory: directory)

        let m = Measured(results: results, elapsed: elapsed, valueBytes: valueBytes)
        let bytesSaved = Double(m.saves) * Double(valueBytes)
        let logBytes = Double(info2.logBytesWritten - info1.logBytesWritten)
        let deviceBytes = Double(io2.writeBytes - io1.writeBytes)
        let prepared = Double(info2.preparedBytesWritten - info1.preparedBytesWritten)
        let syncs = info2.syncs - info1.syncs
        let syncMs = Double(info2.syncNanoseconds - info1.syncNanoseconds) / 1e6
        let rss = peakRSSBytes()
        let wa = bytesSaved > 0 ? logBytes / bytesSaved : 0
        let dev = bytesSaved > 0 ? deviceBytes / bytesSaved : 0

        m.printCommon()
        print("log bytes written per byte saved:    \(format2(wa))  (blocks with headers and padding)")
        print("device bytes written per byte saved: \(format2(dev))  (/proc/self/io; includes zero-filling \(formatBytes(Int64(prepared))) of new segments, hints, compaction)")
        print("device bytes read:   \(formatBytes(Int64(io2.readBytes - io1.readBytes)))  (/proc/self/io; value reads, compaction)")
        print("session start:     \(format2(m.startMs)) ms mean (lock and load)")
        let cacheHits = info2.valueCache.hits - info1.valueCache.hits
        let cacheReads = cacheHits + info2.valueCache.misses - info1.valueCache.misses
        let hitRatio = cacheReads > 0 ? Double(cacheHits) / Double(cacheReads) : 0
        print("value cache:       \(cacheHits) of \(cacheReads) value reads from memory (\(format2(hitRatio * 100))%), \(formatBytes(Int64(info2.valueCache.bytes))) held of \(formatBytes(Int64(info2.valueCache.capacityBytes)))")
        print("group commit:      \(syncs) syncs, \(format1(Double(m.saves) / Double(max(1, syncs)))) saves per sync, mean sync \(format2(syncMs / Double(max(1, syncs)))) ms")
        let moved = Double(info2.compactionBytesMoved - info1.compactionBytesMoved)
        print("compaction:        \(info2.segmentsCompacted - info1.segmentsCompacted) segments compacted, \(formatBytes(Int64(moved))) copied (\(format2(bytesSaved > 0 ? moved / bytesSaved : 0)) per byte saved); \(info2.segments) segments, garbage ratio \(format2(info2.garbageRatio)) at the end")
        print("CPU:               \(format2(cpu)) s user+system for \(format2(elapsed)) s (\(format2(cpu / elapsed)) cores)")
        if ProcessEnvironment.verbose { for (k, v) in info2.timings.sorted(by: { $0.key < $1.key }) { print("  \(k): \(format2(v))") } }
        print("peak RSS:          \(formatBytes(Int64(rss)))")
        print("disk probe after:  4 KiB write+fdatasync p50 \(format2(probeAfter.p50)) ms, p99 \(format2(probeAfter.p99)) ms")
        if json {
            print("""
            {\(m.jsonFields), \
            "bytes_written_per_byte_saved": \(format2(wa)), "compaction_bytes_copied_per_byte_saved": \(format2(bytesSaved > 0 ? moved / bytesSaved : 0)), "device_bytes_written_per_byte_saved": \(format2(dev)), \
            "value_cache_hit_ratio": \(format2(hitRatio)), "value_cache_capacity_bytes": \(config.valueCacheBytes), \
            "peak_rss_bytes": \(rss), "cpu_seconds": \(format2(cpu)), "syncs": \(syncs), \(workloadJSONFields), \
            "durability": "\(config.durability)", "io_mode": "\(info0.ioMode)", \
            "disk_probe_ms": {"before_p50": \(format2(probeBefore.p50)), "after_p50": \(format2(probeAfter.p50))}}
            """)
        }
        if m.failures > 0 { throw ExitCode(1) }
    }

    /// The same workload through HTTP API v1 against a running `jelly serve`: the client's view
    /// (saves/s, latency); the server's disk figures are on its /metrics.
    func remoteBenchmark(url: String) async throws {
        let urls = url.split(separator: ",").map(String.init)
        var clients: [JellyClient] = []
        var connections: [RawHTTPTarget] = []
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        func closeAll() async {
            for client in clients { try? await client.close() }
            for connection in connections { await connection.close() }
            try? await group.shutdownGracefully()
        }
        let targets: [any SessionTarget]
        do {
            if httpClient == .raw {
                // One connection per session, to the session's node.
                for worker in 0..<sessions {
                    connections.append(try await RawHTTPTarget.connect(url: urls[worker % urls.count], token: token, group: group))
                }
                targets = connections
            } else {
                clients = try urls.map { u in
                    var config = JellyClient.Configuration(url: u, bearerToken: token)
                    config.connectionsPerHost = max(1, sessions / urls.count + 1)
                    config.limits.valueBytesMax = max(config.limits.valueBytesMax, valueBytes)
                    return try JellyClient(config)
                }
                targets = clients.map { StoreTarget(store: $0) }
            }
        } catch {
            await closeAll()
            throw ValidationError("cannot connect to \(url): \(error)")
        }
        log("jelly bench: \(players) players x \(objectsPerPlayer) objects, \(valueBytes) B values, \(sessions) sessions over HTTP to \(url) (client: \(httpClient)), \(savesPerSession) saves + 1 final per session, \(format1(duration)) s measured after \(format1(warmup)) s warm-up (the server's durability applies)")
        // Players of this run only, so a rerun against the same server starts clean.
        let prefix = "bench-\(getpid())-\(Int(monotonicSeconds()))-"
        let keys = (0..<objectsPerPlayer).map { "object-\($0)" }
        do {
            try await loadPlayers(targets: targets, keys: keys, prefix: prefix)
            if warmup > 0 {
                _ = try await runSessions(targets: targets, keys: keys, until: monotonicSeconds() + warmup, prefix: prefix)
            }
            let cpu1 = cpuSeconds()
            let start = monotonicSeconds()
            let results = try await runSessions(targets: targets, keys: keys, until: start + duration, prefix: prefix)
            let elapsed = monotonicSeconds() - start
            let cpu = cpuSeconds() - cpu1
            await closeAll()
            let m = Measured(results: results, elapsed: elapsed, valueBytes: valueBytes)
            m.printCommon()
            print("session start:     \(format2(m.startMs)) ms mean (lock and load, one round trip)")
            print("client CPU:        \(format2(cpu)) s user+system for \(format2(elapsed)) s (\(format2(cpu / elapsed)) cores)")
            print("client peak RSS:   \(formatBytes(Int64(peakRSSBytes())))")
            if json {
                print("""
                {\(m.jsonFields), "bytes_written_per_byte_saved": null, "peak_rss_bytes": \(peakRSSBytes()), "cpu_seconds": \(format2(cpu)), \
                \(workloadJSONFields), "url": "\(url)", "http_client": "\(httpClient)"}
                """)
            }
            if m.failures > 0 { throw ExitCode(1) }
        } catch {
            await closeAll()
            throw error
        }
    }

    /// The workload's parameters, as `--json` reports them in both modes.
    var workloadJSONFields: String {
        """
        "players": \(players), "value_bytes": \(valueBytes), "concurrent_sessions": \(sessions), \
        "saves_per_session": \(savesPerSession), "warmup_seconds": \(format1(warmup))
        """
    }

    /// Worker i talks to `targets[i % targets.count]`.
    func loadPlayers(targets: [any SessionTarget], keys: [String], prefix: String = "") async throws {
        let loadStart = monotonicSeconds()
        let loaded = Counter()
        let playerCount = players, sessionCount = sessions, valueSize = valueBytes
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<sessionCount {
                let target = targets[worker % targets.count]
                group.addTask {
                    var value = [UInt8](repeating: UInt8(truncatingIfNeeded: worker), count: valueSize)
                    var p = worker
                    while p < playerCount {
                        value[0] = UInt8(truncatingIfNeeded: p)
                        try await target.seed(partition: "\(prefix)player-\(p)", keys: keys, value: value)
                        let n = loaded.value.add(1, ordering: .relaxed).newValue
                        if n % max(1, playerCount / 10) == 0 { log("loaded \(n) of \(playerCount) players") }
                        p += sessionCount
                    }
                }
            }
            try await group.waitForAll()
        }
        log("loaded \(playerCount) players in \(format2(monotonicSeconds() - loadStart)) s; running sessions for \(format1(duration)) s")
    }

    /// Runs `sessions` concurrent sessions until `deadline`; each worker cycles over its own players.
    /// Appends `frames` frames to one stream in batches of 1,000, then reads them back a page
    /// of 1,000 at a time (the replay of a recorded match, without a network).
    static func replay(_ store: EmbeddedStore, frames: Int) async throws {
        let value = [UInt8](repeating: 0x2E, count: 256)
        let keep = StreamRetention(frames: max(1, frames), bytes: 1 << 34, ageMilliseconds: 3_600_000)
        var left = frames
        let a0 = monotonicSeconds()
        while left > 0 {
            let n = min(1000, left)
            _ = try await store.appendFrames(partition: "replay", stream: "match", [FrameInput](repeating: FrameInput(value), count: n), lockToken: nil, retention: keep, durable: false)
            left -= n
        }
        let appendSeconds = monotonicSeconds() - a0
        let r0 = monotonicSeconds()
        var read = 0
        var from: UInt64 = 0
        while true {
            let page = try await store.readFrames(partition: "replay", stream: "match", from: from, limit: 1000)
            if page.frames.isEmpty { break }
            read += page.frames.count
            from = page.next
        }
        let readSeconds = monotonicSeconds() - r0
        log("replay: \(frames) frames of 256 B appended in batches of 1,000 at \(Int(Double(frames) / appendSeconds)) frames/s; read back (\(read)) at \(Int(Double(read) / readSeconds)) frames/s")
    }

    /// A concurrent frame load for the embedded store: every 10 ms, one frame on each of as many
    /// of 1,000 streams as the rate needs, each its own append (as sockets would make them).
    static func appendFrames(_ store: EmbeddedStore, perSecond: Int, until deadline: Double) async -> (Int, Int) {
        let shared = FrameBenchShared(sampled: 0)
        let value = [UInt8](repeating: 0x2E, count: 256)
        let perTick = max(1, perSecond / 100)
        var tick = 0
        let t0 = monotonicSeconds()
        while monotonicSeconds() < deadline {
            for i in 0..<perTick {
                let e = (tick * perTick + i) % 1000
                store.appendFrames(partition: "frames-e\(e)", stream: "state", [FrameInput(value)], lockToken: nil, retention: nil, durable: false) { result in
                    if case .failure = result { shared.refused.add(1, ordering: .relaxed) } else { shared.appended.add(1, ordering: .relaxed) }
                }
            }
            tick += 1
            let due = t0 + Double(tick) * 0.01
            let wait = due - monotonicSeconds()
            if wait > 0 { try? await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
        }
        return (shared.appended.load(ordering: .relaxed), shared.refused.load(ordering: .relaxed))
    }

    func runSessions(targets: [any SessionTarget], keys: [String], until deadline: Double, prefix: String = "") async throws -> [WorkerResult] {
        let playerCount = players, sessionCount = sessions, valueSize = valueBytes, saves = savesPerSession
        return try await withThrowingTaskGroup(of: WorkerResult.self) { group in
            for worker in 0..<sessionCount {
                let target = targets[worker % targets.count]
                group.addTask {
                    var result = WorkerResult()
                    result.latencies.reserveCapacity(Int(duration * 4000))
                    var value = [UInt8](repeating: UInt8(truncatingIfNeeded: worker), count: valueSize)
                    var p = worker
                    var n = 0
                    while monotonicSeconds() < deadline {
                        let partition = "\(prefix)player-\(p)"
                        do {
                            let tStart = monotonicNanos()
                            let (token, loadedBytes) = try await target.lockAndLoad(partition: partition, owner: "bench-\(worker)")
                            result.startNanos += monotonicNanos() - tStart
                            result.loadedBytes += loadedBytes
                            for k in 0..<saves {
                                n &+= 1
                                value[0] = UInt8(truncatingIfNeeded: n)
                                let t0 = monotonicNanos()
                                try await target.save(partition: partition, key: keys[k % keys.count], value: value, token: token)
                                result.latencies.append(monotonicNanos() - t0)
                            }
                            n &+= 1
                            value[0] = UInt8(truncatingIfNeeded: n)
                            let t0 = monotonicNanos()
                            try await target.saveAndRelease(partition: partition, key: keys[saves % keys.count], value: value, token: token)
                            result.latencies.append(monotonicNanos() - t0)
                            result.sessions += 1
                        } catch {
                            result.failures += 1
                            if result.firstError == nil { result.firstError = "\(error)" }
                        }
                        p += sessionCount
                        if p >= playerCount { p = worker }
                    }
                    return result
                }
            }
            var all: [WorkerResult] = []
            for try await r in group { all.append(r) }
            return all
        }
    }
}

/// Saves/s and latency percentiles of a run, printed the same way embedded and remote.
struct Measured {
    var saves: Int
    var sessions: Int
    var failures: Int
    var firstError: String?
    var elapsed: Double
    var latencies: [UInt64]
    var startMs: Double

    init(results: [WorkerResult], elapsed: Double, valueBytes: Int) {
        latencies = results.flatMap(\.latencies).sorted()
        saves = latencies.count
        sessions = results.reduce(0) { $0 + $1.sessions }
        failures = results.reduce(0) { $0 + $1.failures }
        firstError = results.compactMap(\.firstError).first
        self.elapsed = elapsed
        startMs = Double(results.reduce(UInt64(0)) { $0 + $1.startNanos }) / 1e6 / Double(max(1, sessions))
    }

    func percentile(_ q: Double) -> Double {
        guard !latencies.isEmpty else { return 0 }
        let i = min(latencies.count - 1, Int((Double(latencies.count) * q).rounded(.up)) - 1)
        return Double(latencies[max(0, i)]) / 1e6
    }

    var savesPerSecond: Double { Double(saves) / elapsed }
    var sessionsPerSecond: Double { Double(sessions) / elapsed }
    var maxMs: Double { latencies.last.map { Double($0) / 1e6 } ?? 0 }

    func printCommon() {
        print("sessions/s:        \(format1(sessionsPerSecond))  (\(sessions) sessions in \(format2(elapsed)) s)")
        print("saves/s:           \(format1(savesPerSecond))  (\(saves) saves, \(failures) failed sessions\(firstError.map { ": " + $0 } ?? ""))")
        print("save latency ms:   p50 \(format2(percentile(0.5)))  p99 \(format2(percentile(0.99)))  p99.9 \(format2(percentile(0.999)))  max \(format2(maxMs))")
    }

    var jsonFields: String {
        """
        "saves_per_second": \(format1(savesPerSecond)), "sessions_per_second": \(format1(sessionsPerSecond)), \
        "save_latency_ms": {"p50": \(format2(percentile(0.5))), "p99": \(format2(percentile(0.99))), "p999": \(format2(percentile(0.999))), "max": \(format2(maxMs))}, \
        "saves": \(saves), "sessions": \(sessions), "failed_sessions": \(failures), "elapsed_seconds": \(format2(elapsed))
        """
    }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

struct WorkerResult: Sendable {
    var latencies: [UInt64] = []
    var sessions = 0
    var failures = 0
    var loadedBytes = 0
    var startNanos: UInt64 = 0
    var firstError: String?
}

func log(_ text: String) { printError(text) }

func crcKind() -> String { "hardware (SSE4.2/ARMv8) when available" }

/// The monotonic clock (CLOCK_MONOTONIC on Linux), in nanoseconds.
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func monotonicSeconds() -> Double { Double(monotonicNanos()) / 1e9 }

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}

enum ProcessIO {
    /// Bytes this process caused to be written to storage (Linux /proc/self/io).
    static func read() -> (writeBytes: Int64, readBytes: Int64) {
        guard let text = try? readFile("/proc/self/io") else { return (0, 0) }
        var w: Int64 = 0, r: Int64 = 0
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: ":")
            guard parts.count == 2, let v = Int64(parts[1].trimmingWhitespace()) else { continue }
            if parts[0] == "write_bytes" { w = v }
            if parts[0] == "read_bytes" { r = v }
        }
        return (w, r)
    }
}

/// How long a 4 KiB write + fdatasync takes right now, one at a time (see shared/BENCHMARKING.md).
enum DiskProbe {
    struct Result { var p50: Double; var p99: Double; var iterations: Int }

    static func run(directory: String, iterations: Int = 2000) -> Result {
        _ = mkdir(directory, 0o755)
        let path = directory + "/disk-probe.tmp"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return Result(p50: 0, p99: 0, iterations: 0) }
        defer { close(fd); unlink(path) }
        var page = [UInt8](repeating: 0, count: 4096)
        let region = 8 << 20
        var at = 0
        while at < region { _ = page.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(at)) }; at += 4096 }
        fsync(fd)
        var times: [Double] = []
        times.reserveCapacity(iterations)
        for i in 0..<iterations {
            page[0] = UInt8(truncatingIfNeeded: i)
            let t0 = monotonicNanos()
            _ = page.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t((i * 4096) % region)) }
            fdatasync(fd)
            times.append(Double(monotonicNanos() - t0) / 1e6)
        }
        times.sort()
        return Result(p50: times[times.count / 2], p99: times[min(times.count - 1, times.count * 99 / 100)], iterations: iterations)
    }
}

/// Removes a benchmark's scratch store.
func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

enum ProcessEnvironment {
    static var verbose: Bool { getenv("JELLY_BENCH_VERBOSE") != nil }
}
