import ArgumentParser
import CJellySystem
import Foundation
import JellyCore
import JellyEngine

#if canImport(Glibc)
import Glibc
#endif

/// `jelly bench-backup`: what an online backup costs the session workload, and how fast it
/// copies compared with the disk's sequential read rate (docs/benchmarks.md).
struct BenchBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-backup",
        abstract: "Fill a store, then back it up while the session workload runs; report both rates.",
        discussion: """
            Fills a fresh store (--data) with --store-gib of 1 MiB values, runs the session \
            workload alone for --duration seconds, then again while a backup of the whole store \
            runs into --to. Page-cache pages of the store are dropped first (posix_fadvise), so \
            the backup reads the disk, and the disk's own sequential read rate is measured with \
            O_DIRECT reads of sealed segments. Release build: swift run -c release jelly bench-backup.
            """
    )
    @Option(help: "Store directory (must not exist).") var data: String
    @Option(help: "Backup directory (must not exist).") var to: String
    @Option(name: .customLong("store-gib"), help: "GiB of data to fill the store with before measuring.") var storeGiB: Double = 10
    @Option(help: "Seconds of the workload alone (the baseline).") var duration: Double = 20
    @Option(help: "Players.") var players = 10_000
    @Option(help: "Concurrent sessions.") var sessions = 64
    @Option(name: .customLong("rate-mib"), help: "Cap the backup's copy rate at this many MiB/s (default: none).") var rateMiB: Int?
    @Flag(help: "Keep the store and the backup afterwards.") var keep = false

    func run() async throws {
        let command = self
        try await Task.detached { try await command.benchmark() }.value
    }

    func benchmark() async throws {
        for d in [data, to] where access(d, F_OK) == 0 { throw ValidationError("\(d) already exists; the benchmark needs fresh directories") }
        defer { if !keep { removeTree(data); removeTree(to) } }
        var config = EmbeddedStoreConfiguration(directory: data)
        config.limits.valueBytesMax = max(config.limits.valueBytesMax, 1 << 20)
        let store = try await failing { try EmbeddedStore.open(config) }
        let bench = try Bench.parse(["--players", "\(players)", "--sessions", "\(sessions)", "--duration", "\(duration)"])
        log("jelly bench-backup: backup rate cap \(rateMiB.map { "\($0) MiB/s" } ?? "none"); fill \(format1(storeGiB)) GiB of 1 MiB values, then the session workload (\(players) players, \(sessions) sessions, 4 KiB saves, durability always) alone for \(format1(duration)) s and during the backup")

        // Fill.
        let fillStart = monotonicSeconds()
        let blobs = Int(storeGiB * 1024)
        let written = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<8 {
                group.addTask {
                    var value = [UInt8](repeating: UInt8(w), count: 1 << 20)
                    var i = w
                    while i < blobs {
                        value[0] = UInt8(truncatingIfNeeded: i)
                        try await store.put(partition: "archive-\(i / 256)", key: "blob-\(i)", value: value)
                        let n = written.value.add(1, ordering: .relaxed).newValue
                        if n % 1024 == 0 { log("filled \(n >> 10) GiB of \(format1(storeGiB))") }
                        i += 8
                    }
                }
            }
            try await group.waitForAll()
        }
        log("filled in \(format1(monotonicSeconds() - fillStart)) s")
        let keys = ["object-0", "object-1"]
        try await bench.loadPlayers(targets: [StoreTarget(store: store)], keys: keys)

        // The disk's sequential read rate, and the store's pages out of the page cache.
        let readRate = try Self.sequentialReadRate(directory: data)
        Self.dropCache(directory: data)
        log("disk sequential read (O_DIRECT, 1 MiB reads, sealed segments): \(format1(readRate / 1e6)) MB/s")

        // Baseline, then during the backup, in 2-second slices.
        let alone = try await slices(bench: bench, store: store, keys: keys, seconds: duration, while: nil)
        let rate = rateMiB.map { Int64($0) << 20 }
        let backup = Task { try await store.backup(to: to, bytesPerSecond: rate) }
        let during = try await slices(bench: bench, store: store, keys: keys, seconds: .infinity, while: backup)
        let report = try await backup.value
        try await store.close()

        let aloneRate = Double(alone.saves) / alone.seconds
        let duringRate = Double(during.saves) / during.seconds
        let backupRate = Double(report.bytesCopied) / (Double(report.milliseconds) / 1000)
        print("store:             \(formatBytes(report.bytesCopied + report.bytesReused)) in \(report.files) files")
        print("saves/s alone:     \(format1(aloneRate))  (\(alone.saves) saves in \(format2(alone.seconds)) s)")
        print("saves/s in backup: \(format1(duringRate))  (\(during.saves) saves in \(format2(during.seconds)) s)  \(format1((1 - duringRate / aloneRate) * 100))% lower")
        print("backup:            \(formatBytes(report.bytesCopied)) in \(format2(Double(report.milliseconds) / 1000)) s = \(format1(backupRate / 1e6)) MB/s, \(format2(backupRate / readRate)) of the disk's sequential read rate (\(format1(readRate / 1e6)) MB/s)")
    }

    /// Runs the sessions in 2-second slices for `seconds`, or while `task` runs (slices that end
    /// after it finished are not counted).
    func slices(bench: Bench, store: EmbeddedStore, keys: [String], seconds: Double, while task: Task<BackupReport, any Error>?) async throws -> (saves: Int, seconds: Double) {
        let start = monotonicSeconds()
        var saves = 0
        var counted = 0.0
        let done = DoneFlag()
        if let task { Task { _ = try? await task.value; done.set() } }
        while monotonicSeconds() - start < seconds {
            if task != nil && done.isSet { break }
            let s0 = monotonicSeconds()
            let results = try await bench.runSessions(targets: [StoreTarget(store: store)], keys: keys, until: s0 + 2)
            if task != nil && done.isSet { break }
            saves += results.reduce(0) { $0 + $1.latencies.count }
            counted += monotonicSeconds() - s0
        }
        return (saves, counted)
    }

    /// Bytes per second read with O_DIRECT from up to three sealed segment files.
    static func sequentialReadRate(directory: String) throws -> Double {
        let names = try PosixStorage().listDirectory(directory).filter { $0.hasSuffix(".log") }.prefix(3)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var bytes = 0
        let start = monotonicSeconds()
        for name in names {
            let fd = jelly_open_direct(directory + "/" + name, O_RDONLY, 0)
            guard fd >= 0 else { throw JellyError(.io, "cannot open \(name) with O_DIRECT") }
            defer { close(fd) }
            var offset: off_t = 0
            while true {
                let n = pread(fd, buffer, 1 << 20, offset)
                if n <= 0 { break }
                bytes += n
                offset += off_t(n)
            }
        }
        return Double(bytes) / (monotonicSeconds() - start)
    }

    /// Drops the store's files from the page cache (after syncing them), so a backup reads the disk.
    static func dropCache(directory: String) {
        for name in (try? PosixStorage().listDirectory(directory)) ?? [] {
            let fd = open(directory + "/" + name, O_RDONLY)
            guard fd >= 0 else { continue }
            _ = fdatasync(fd)
            _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
            close(fd)
        }
    }
}

/// A flag set by one task and read by another.
final class DoneFlag: Sendable {
    private let value = Counter()
    func set() { value.value.store(1, ordering: .releasing) }
    var isSet: Bool { value.value.load(ordering: .acquiring) == 1 }
}
