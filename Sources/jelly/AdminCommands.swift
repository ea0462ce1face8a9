import ArgumentParser
import JellyCore
import JellyEngine

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show keys, bytes, segments, garbage ratio and the I/O mode.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        try await failing {
            let s = try store.open()
            let i = s.info()
            try await s.close()
            print("directory:      \(i.directory)")
            print("objects:        \(i.objects) in \(i.partitions) partitions")
            print("locks held:     \(i.locksHeld)")
            print("live data:      \(formatBytes(i.liveBytes)) (\(i.liveBytes) bytes)")
            print("segments:       \(i.segments) (\(i.sealedSegments) sealed), \(formatBytes(i.segmentBytes)) of data on disk")
            print("garbage ratio:  \(format2(i.garbageRatio))")
            print("log writes:     \(i.ioMode)")
            print("durability:     \(i.durability)")
            print("next version:   \(i.nextVersion)")
            for note in i.recoveryNotes { print("recovery:       \(note)") }
        }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify every record and index file. Exits 0 when consistent, 1 on corruption.",
        discussion: "The store must not be open in another process while it is checked."
    )
    @Option(name: .long, help: "The data directory.") var data: String = "./jelly-data"

    func run() async throws {
        let report = try await failing { try StoreChecker.check(directory: data, progress: { printError($0) }) }
        for line in report.lines { print(line) }
        for note in report.notes { print("note: \(note)") }
        for problem in report.problems { print("CORRUPTION: \(problem)") }
        print("\(report.segments) segments, \(report.records) records, \(report.hints) hint files: \(report.isConsistent ? "consistent" : "\(report.problems.count) problem(s) found")")
        if !report.isConsistent { throw ExitCode(1) }
    }
}

struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reclaim the space of overwritten and deleted values now.")
    @OptionGroup var store: StoreOptions
    @Option(help: "Keep deletes this long for client replicas' change feed (default 30 days; 0: drop them once they hide nothing). Use the server's tombstone_retention_ms.")
    var tombstoneRetentionMs: Int64?
    @Option(help: "Keep at most this many deletes per partition (default 10000). Use the server's tombstones_per_partition_max.")
    var tombstonesPerPartitionMax: Int?

    func run() async throws {
        try await failing {
            var config = try store.configuration()
            if let ms = tombstoneRetentionMs { config.compaction.tombstoneRetentionMilliseconds = ms }
            if let n = tombstonesPerPartitionMax { config.compaction.tombstonesPerPartitionMax = n }
            let s = try EmbeddedStore.open(config)
            let before = s.info()
            print("before: \(before.segments) segments, \(formatBytes(before.segmentBytes)) on disk, garbage ratio \(format2(before.garbageRatio))")
            let report = try await s.compact(force: true) { p in
                print("compacting segment \(p.segment) (\(p.index) of \(p.count)); moved \(formatBytes(Int64(p.report.bytesMoved))) so far")
            }
            let after = s.info()
            try await s.close()
            print("compacted \(report.segmentsCompacted) segments: moved \(formatBytes(Int64(report.bytesMoved))), reclaimed \(formatBytes(Int64(report.bytesReclaimed)))")
            print("after: \(after.segments) segments, \(formatBytes(after.segmentBytes)) on disk, garbage ratio \(format2(after.garbageRatio))")
        }
    }
}
