import ArgumentParser
import CJellySystem
import JellyCore
import JellyEngine

#if canImport(Glibc)
import Glibc
#endif

/// How long opening a large store takes, and what its index costs in memory.
struct BenchOpen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-open",
        abstract: "Build a store of --keys objects, then measure how long opening it takes and the index's memory.",
        discussion: "Index memory is the heap growth across open (glibc mallinfo2), per key, beside the mean key length. Use a release build."
    )
    @Option var keys = 1_000_000
    @Option(name: .customLong("keys-per-partition")) var keysPerPartition = 10
    @Option(name: .customLong("value-bytes")) var valueBytes = 100
    @Option(help: "Opens to time (the median is reported).") var opens = 3
    @Option(help: "Store directory (must not exist); default: a temporary directory here, removed afterwards.") var data: String?
    @Flag var json = false

    func run() async throws {
        let command = self
        try await Task.detached { try await command.measure() }.value
    }

    func measure() async throws {
        let directory = data ?? "./jelly-bench-open-\(getpid())"
        if access(directory, F_OK) == 0 { throw ValidationError("\(directory) already exists; the benchmark needs a fresh directory") }
        defer { if data == nil { removeTree(directory) } }
        var config = EmbeddedStoreConfiguration(directory: directory)
        config.compaction.automatic = false
        let partitions = (keys + keysPerPartition - 1) / keysPerPartition
        let perPartition = keysPerPartition, total = keys, valueSize = valueBytes

        log("building \(keys) keys in \(partitions) partitions (\(keysPerPartition) per partition, \(valueBytes)-byte values)")
        let store = try await failing { try EmbeddedStore.open(config) }
        let t0 = monotonicSeconds()
        let written = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var p = worker
                    let value = [UInt8](repeating: 0x61, count: valueSize)
                    while p < partitions {
                        let count = min(perPartition, total - p * perPartition)
                        let ops = (0..<count).map { WriteOperation.put(key: "key-\($0)", value: value) }
                        try await store.write(partition: "player-\(p)", ops, lockToken: nil, releaseLock: false)
                        let n = written.value.add(count, ordering: .relaxed).newValue
                        if n / 100_000 != (n - count) / 100_000 { log("wrote \(n) of \(total) keys") }
                        p += 64
                    }
                }
            }
            try await group.waitForAll()
        }
        let info = store.info()
        try await store.close()
        log("built in \(format2(monotonicSeconds() - t0)) s: \(info.objects) objects, \(formatBytes(info.segmentBytes)) in \(info.segments) segments")

        var times: [Double] = []
        var indexBytes: [Int] = []
        for _ in 0..<opens {
            let before = heapBytes()
            let start = monotonicSeconds()
            let reopened = try await failing { try EmbeddedStore.open(config) }
            let elapsed = monotonicSeconds() - start
            let after = heapBytes()
            let objects = reopened.info().objects
            try await reopened.close()
            guard objects == keys else { throw ValidationError("reopened store has \(objects) objects, expected \(keys)") }
            times.append(elapsed)
            indexBytes.append(after - before)
            log("open: \(format2(elapsed * 1000)) ms, heap +\(formatBytes(Int64(after - before)))")
        }
        times.sort()
        indexBytes.sort()
        let median = times[times.count / 2]
        let perKey = Double(indexBytes[indexBytes.count / 2]) / Double(keys)
        let meanKeyLength = Double("key-0".utf8.count + "player-0".utf8.count) // both inline (≤ 15 bytes)
        print("open \(keys) keys: median \(format2(median * 1000)) ms (of \(opens); min \(format2(times[0] * 1000)), max \(format2(times[times.count - 1] * 1000)))")
        print("index memory: \(format1(perKey)) bytes per key (heap growth across open; keys and partition names of \(Int(meanKeyLength)) bytes together, stored inline)")
        if json {
            print("{\"keys\": \(keys), \"open_ms_median\": \(format2(median * 1000)), \"index_bytes_per_key\": \(format1(perKey)), \"keys_per_partition\": \(keysPerPartition)}")
        }
    }
}

/// Bytes the C heap has handed out (glibc).
func heapBytes() -> Int {
    Int(jelly_heap_bytes())
}
