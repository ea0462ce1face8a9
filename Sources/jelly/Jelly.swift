import ArgumentParser
import JellyCore
import JellyEngine

#if canImport(Glibc)
import Glibc
#endif

@main
struct Jelly: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jelly",
        abstract: "Jelly: a database for online games (session locks with fencing, durable saves).",
        subcommands: [
            Serve.self, Put.self, Get.self, Delete.self, List.self, Lock.self, Unlock.self,
            Info.self, Check.self, Compact.self, Bench.self, BenchOpen.self, CrashWriter.self, ReplicaCommand.self, BenchSync.self, StreamCommand.self, StreamWorld.self, BenchFrames.self,
            BackupCommand.self, Restore.self, BenchBackup.self, BenchJetStream.self,
        ]
    )
}

struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory.")
    var data: String = "./jelly-data"

    @Option(name: .long, help: "always | interval | interval:MS | never")
    var durability: String = "always"

    func configuration() throws -> EmbeddedStoreConfiguration {
        try StoreOptions.configuration(data: data, durability: durability)
    }

    static func configuration(data: String, durability: String) throws -> EmbeddedStoreConfiguration {
        var config = EmbeddedStoreConfiguration(directory: data)
        guard let durability = Durability(parsing: durability) else {
            throw ValidationError("--durability must be always, interval, interval:MS or never")
        }
        config.durability = durability
        return config
    }

    func open() throws -> EmbeddedStore {
        try EmbeddedStore.open(configuration())
    }
}

/// Prints a Jelly error as `error: …` and exits 1 (2 for usage errors, from ArgumentParser).
func failing<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as JellyError {
        printError("error: \(error.message)")
        throw ExitCode(1)
    }
}

func printError(_ text: String) {
    writeAll(fd: 2, Array((text + "\n").utf8))
}

func writeAll(fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count, let base = raw.baseAddress {
            let n = write(fd, base + done, raw.count - done)
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }
}

func readStandardInput() -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, 65536) }
        if n <= 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw ValidationError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, 65536, f) }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

func writeStandardOutput(_ bytes: [UInt8]) {
    writeAll(fd: 1, bytes)
}

func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format1(v)) + " " + units[u]
}

func format1(_ v: Double) -> String {
    let scaled = (v * 10).rounded() / 10
    return scaled == scaled.rounded() ? String(Int(scaled)) + ".0" : String(scaled)
}

func format2(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < 2 { s += String(repeating: "0", count: 2 - decimals) }
    }
    return s
}
