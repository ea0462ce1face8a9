import Foundation
import JellyCore
@testable import JellyEngine
import JellyTestSupport
import Testing

/// A real crash: a child process writes and prints every acknowledgement; it is killed with
/// SIGKILL at random moments; after each reopen every acknowledged write must be there and no
/// token may have gone backwards.
@Suite(.serialized) struct CrashTests {
    func configuration(_ directory: String) -> EmbeddedStoreConfiguration {
        var config = EmbeddedStoreConfiguration(directory: directory)
        config.segmentBytes = 256 << 10
        config.limits.valueBytesMax = 4096
        config.limits.batchBytesMax = 64 << 10
        config.groupCommitBytesMax = 64 << 10
        return config
    }

    @Test func sigkillLosesNoAcknowledgedWrite() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var latest: [String: (version: UInt64, value: String, length: Int)] = [:]
        var maxToken: UInt64 = 0
        var maxVersion: UInt64 = 0
        var held: [String: UInt64] = [:]
        var rng = SystemRandomNumberGenerator()
        var totalAcks = 0
        var killedWithOutputOpen = 0

        for run in 1...5 {
            // Odd runs compact eagerly, so kills also land mid-compaction, with its output open.
            let child = try ChildProcess(["crash-writer", "--data", dir.path, "--seed", "\(run)", "--workers", "6", "--segment-kib", "256"] + (run % 2 == 1 ? ["--compact-eagerly"] : []))
            // Wait until it opened the store, then let it write for a random while.
            let opened = Date().addingTimeInterval(30)
            while !child.lines.contains("OPEN") && Date() < opened { try await Task.sleep(nanoseconds: 5_000_000) }
            #expect(child.lines.contains("OPEN"), "run \(run): the writer did not open the store")
            try await Task.sleep(nanoseconds: UInt64.random(in: 100_000_000...600_000_000, using: &rng))
            child.killHard()
            let names = try PosixStorage().listDirectory(dir.path)
            if names.contains(where: { name in
                parseSegmentName(name, suffix: ".log").map(isCompactionOutput) == true && !names.contains(name.replacingOccurrences(of: ".log", with: ".hint"))
            }) { killedWithOutputOpen += 1 }

            for line in child.lines {
                let f = line.split(separator: " ").map(String.init)
                switch f.first {
                case "LOCK", "HELD":
                    guard f.count == 3, let token = UInt64(f[2]) else { continue }
                    maxToken = max(maxToken, token)
                    held[f[1]] = token
                case "UNLOCK":
                    held[f[1]] = nil
                case "ACK", "REL":
                    guard f.count == 6, let version = UInt64(f[3]), let length = Int(f[5]) else { continue }
                    totalAcks += 1
                    maxVersion = max(maxVersion, version)
                    let id = f[1] + "/" + f[2]
                    if version > (latest[id]?.version ?? 0) { latest[id] = (version, f[4], length) }
                    if f[0] == "REL" { held[f[1]] = nil }
                default: break
                }
            }

            let store = try EmbeddedStore.open(configuration(dir.path))
            for (id, expected) in latest {
                let parts = id.split(separator: "/").map(String.init)
                let got = try await store.get(partition: parts[0], key: parts[1])
                guard let got else {
                    Issue.record("run \(run): acknowledged \(id) v\(expected.version) is missing")
                    continue
                }
                #expect(got.version >= expected.version, "run \(run): \(id) went back from v\(expected.version) to v\(got.version)")
                if got.version == expected.version {
                    #expect(got.value.count == expected.length && got.value.starts(with: Array(expected.value.utf8)), "run \(run): \(id) v\(got.version) has the wrong value")
                }
            }
            for (partition, token) in held {
                // Held at the kill, unless a release after the last printed line made it durable.
                if let lease = try await store.inspectLock(partition: partition) {
                    #expect(lease.token >= LockToken(token), "run \(run): lease of \(partition) went back")
                }
            }
            let fresh = try await store.acquireLock(partition: "probe-\(run)", owner: "test", ttlMilliseconds: 1000)
            #expect(fresh.token.rawValue > maxToken && fresh.token.rawValue > maxVersion, "run \(run): token \(fresh.token) after \(maxToken)/\(maxVersion)")
            try await store.releaseLock(partition: "probe-\(run)", token: fresh.token)
            try await store.close()
            held = [:]
        }
        #expect(totalAcks > 50, "the writer acknowledged \(totalAcks) saves across the runs")
        #expect(killedWithOutputOpen > 0, "a kill landed while a compaction output was open")
        #expect(try StoreChecker.check(directory: dir.path).isConsistent)
    }
}

@Suite(.serialized) struct CLITests {
    @Test func putGetListLockCheck() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let data = ["--data", dir.path]
        var r = try runJelly(["put"] + data + ["player-1", "profile", "{\"level\":3}", "--content-type", "application/json"])
        #expect(r.status == 0 && r.stdout.hasPrefix("version "), "\(r)")
        r = try runJelly(["get"] + data + ["player-1", "profile"])
        #expect(r.status == 0 && r.stdout == "{\"level\":3}" && r.stderr.contains("application/json"), "\(r)")
        r = try runJelly(["put"] + data + ["player-1", "save"], stdin: "from stdin")
        #expect(r.status == 0)
        r = try runJelly(["list"] + data + ["player-1"])
        #expect(r.stdout.split(separator: "\n").map { $0.split(separator: "\t")[0] } == ["profile", "save"], "\(r.stdout)")
        r = try runJelly(["lock"] + data + ["player-1", "--owner", "server-a", "--ttl-ms", "60000"])
        #expect(r.status == 0 && r.stdout.hasPrefix("token "), "\(r)")
        let token = r.stdout.split(separator: " ")[1]
        r = try runJelly(["put"] + data + ["player-1", "save", "stale"])
        #expect(r.status == 1 && r.stderr.contains("locked by 'server-a'"), "\(r)")
        r = try runJelly(["put"] + data + ["player-1", "save", "fenced", "--token", String(token)])
        #expect(r.status == 0, "\(r)")
        r = try runJelly(["unlock"] + data + ["player-1", "--token", String(token)])
        #expect(r.status == 0 && r.stdout.contains("released"))
        r = try runJelly(["get"] + data + ["player-1", "missing"])
        #expect(r.status == 3 && r.stderr.contains("not found"))
        r = try runJelly(["put"] + data + ["bad/partition", "k", "v"])
        #expect(r.status == 1 && r.stderr.contains("'/'"), "\(r)")
        r = try runJelly(["info"] + data)
        #expect(r.status == 0 && r.stdout.contains("objects:        2 in 1 partitions"), "\(r.stdout)")
        r = try runJelly(["check"] + data)
        #expect(r.status == 0 && r.stdout.contains("consistent"), "\(r)")
        r = try runJelly(["compact"] + data)
        #expect(r.status == 0 && r.stdout.contains("compacted"), "\(r)")
    }

    /// `jelly bench` on an embedded store (a smoke run: figures come from release builds): the
    /// JSON keys docs/benchmarks.md lists, and the value cache answering the sessions' loads
    /// (every player fits) or, turned off, none of them.
    @Test(arguments: [nil, "0"]) func benchRunsSessionsAndReportsTheValueCache(cacheMiB: String?) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let r = try runJelly(["bench", "--data", dir.path + "/store", "--players", "16", "--sessions", "4", "--saves-per-session", "3",
                              "--value-bytes", "512", "--duration", "0.5", "--json"] + (cacheMiB.map { ["--value-cache-mib", $0] } ?? []))
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = (try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any] ?? [:]
        #expect(r.status == 0 && (json["saves"] as? Int ?? 0) > 0 && (json["failed_sessions"] as? Int) == 0, "\(r)")
        for key in ["saves_per_second", "sessions_per_second", "save_latency_ms", "bytes_written_per_byte_saved", "peak_rss_bytes", "value_cache_hit_ratio"] {
            #expect(json[key] != nil, "bench --json has \(key): \(last)")
        }
        #expect(json["value_cache_hit_ratio"] as? Double == (cacheMiB == nil ? 1.0 : 0.0), "\(last)")
        #expect(r.stdout.contains("value cache:"), "\(r.stdout)")
    }

    @Test func checkExitsOneOnCorruption() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        for i in 0..<3 { _ = try runJelly(["put", "--data", dir.path, "p", "k\(i)", String(repeating: "v", count: 5000)]) }
        // (Opening merged the small segments of the earlier runs, so take whichever is first.)
        let segment = try segmentPaths(dir.path)[0]
        let name = String(segment.split(separator: "/").last ?? "")
        let data = try readFileBytes(segment)
        let target = Format.segmentHeaderBytes + 48 + 100
        try patchFile(segment, at: target, with: [data[target] ^ 0xFF])
        let r = try runJelly(["check", "--data", dir.path])
        #expect(r.status == 1, "\(r)")
        #expect(r.stdout.contains("CORRUPTION") && r.stdout.contains("\(name) at offset 4096"), "\(r.stdout)")
    }
}
