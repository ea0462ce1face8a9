import ArgumentParser
import JellyCore
import JellyEngine

#if canImport(Glibc)
import Glibc
#endif

/// Used by the crash test: writes forever and prints every acknowledgement, so a parent that
/// kills it with SIGKILL knows what must survive. Lines:
///   LOCK <partition> <token>          a lock acquired (durable)
///   ACK <partition> <key> <version> <value>   a save acknowledged
///   REL <partition> <key> <version> <value>   a final save and release acknowledged
struct CrashWriter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crash-writer", shouldDisplay: false)
    @Option var data: String
    @Option var workers = 8
    @Option var seed: UInt64 = 1
    @Option(help: "always | interval:MS | never") var durability = "always"
    @Option(name: .customLong("segment-kib")) var segmentKiB = 0
    @Flag(name: .customLong("compact-eagerly"), help: "Compact as soon as there is garbage, every 5 ms, so that kills land mid-compaction.") var compactEagerly = false

    func run() async throws {
        var config = EmbeddedStoreConfiguration(directory: data)
        config.durability = Durability(parsing: durability) ?? .always
        if segmentKiB > 0 {
            config.segmentBytes = segmentKiB << 10
            config.limits.valueBytesMax = 4096
            config.limits.batchBytesMax = 64 << 10
            config.groupCommitBytesMax = 64 << 10
        }
        if compactEagerly {
            config.compaction.garbageBytesAllowance = 0
            config.compaction.checkIntervalMilliseconds = 5
        }
        let store = try await failing { try EmbeddedStore.open(config) }
        printLine("OPEN")
        let base = seed
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<workers {
                group.addTask {
                    var rng = SplitMix(seed: base &* 1000 &+ UInt64(w))
                    var round = 0
                    while true {
                        round += 1
                        let partition = "s\(base)-w\(w)-p\(rng.next() % 4)"
                        let lock = try await store.acquireLock(partition: partition, owner: "writer-\(base)-\(w)", ttlMilliseconds: 600_000)
                        printLine("LOCK \(partition) \(lock.token)")
                        for _ in 0..<Int(rng.next() % 6) {
                            let key = "k\(rng.next() % 3)"
                            let value = "\(base)-\(w)-\(round)-\(rng.next() % 1_000_000)"
                            let padded = Array(value.utf8) + [UInt8](repeating: 0x2E, count: Int(rng.next() % 2000))
                            let version = try await store.put(partition: partition, key: key, value: padded, lockToken: lock.token)
                            printLine("ACK \(partition) \(key) \(version) \(value) \(padded.count)")
                        }
                        if rng.next() % 2 == 0 {
                            let key = "k\(rng.next() % 3)"
                            let value = "\(base)-\(w)-\(round)-final"
                            let result = try await store.saveAndRelease(partition: partition, [.put(key: key, value: Array(value.utf8))], lockToken: lock.token)
                            printLine("REL \(partition) \(key) \(result.version ?? 0) \(value) \(value.utf8.count)")
                        } else {
                            // Leave the lock held: after the crash it must still be held with this token.
                            printLine("HELD \(partition) \(lock.token)")
                            try await store.releaseLock(partition: partition, token: lock.token)
                            printLine("UNLOCK \(partition) \(lock.token)")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

func printLine(_ text: String) { writeAll(fd: 1, Array((text + "\n").utf8)) }

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
