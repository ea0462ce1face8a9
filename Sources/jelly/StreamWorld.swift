import ArgumentParser
import Foundation
import JellyClient
import JellyCore

/// Used by the stream tests, and the recipe of docs/streams.md run as a program: a game server
/// that owns one entity partition, resumes it from its last save plus the frames after it,
/// then sends a frame every tick over a WebSocket without waiting and saves every few ticks.
/// The state is a tick counter; a frame and a save hold `tick=N`. Lines on standard output:
///   RESUME <token> <save version> <tick>     the lock taken and the world resumed at tick
///   FRAME <tick>                             a frame handed to the connection
///   SAVE <tick> <version>                    a save acknowledged
struct StreamWorld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stream-world", shouldDisplay: false)
    @Option var url: String
    @Option(name: .customLong("api-key")) var apiKey: String?
    @Option var partition: String
    @Option var owner: String
    @Option(name: .customLong("ttl-ms")) var ttlMilliseconds: Int64 = 2000
    @Option var hz: Double = 50
    @Option(name: .customLong("save-every")) var saveEvery = 10
    @Option var ticks = 0

    func run() async throws {
        try await failing {
            var c = JellyClient.Configuration(url: url, bearerToken: apiKey)
            c.retries = 0
            let store = try JellyClient(c)
            do {
                try await play(store)
            } catch {
                // A JellyClient must be closed before it goes away, also on the way out of an error.
                try? await store.close()
                throw error
            }
        }
    }

    func play(_ store: JellyClient) async throws {
        do {
            let resumed = try await StreamWorld.resume(store, partition: partition, owner: owner, ttlMilliseconds: ttlMilliseconds)
            printLine("RESUME \(resumed.lock.token) \(resumed.saveVersion) \(resumed.tick)")
            var tick = resumed.tick
            var base = resumed.saveVersion
            let socket = try await StreamSocketClient.append(url: url, bearerToken: apiKey, partition: partition, stream: "world", token: resumed.lock.token, baseVersion: base)
            let reporter = Task {
                for await event in socket.events {
                    if case .refused(_, let message, _, _) = event { printError("refused: \(message)") }
                }
            }
            var n = 0
            while ticks == 0 || n < ticks {
                n += 1
                tick += 1
                try await socket.sendAndWait(Array("tick=\(tick)".utf8))
                printLine("FRAME \(tick)")
                if tick % saveEvery == 0 {
                    base = try await store.put(partition: partition, key: "world", value: Array("tick=\(tick)".utf8), lockToken: resumed.lock.token)
                    socket.setBaseVersion(base)
                    printLine("SAVE \(tick) \(base)")
                }
                try await Task.sleep(for: .milliseconds(1000 / hz))
            }
            // Hibernate: the final save and the release in one commit, then the frames go.
            let final = try await store.saveAndRelease(partition: partition, [.put(key: "world", value: Array("tick=\(tick)".utf8))], lockToken: resumed.lock.token)
            await socket.close()
            reporter.cancel()
            try await store.trimStream(partition: partition, stream: "world", before: nil, lockToken: nil)
            printLine("HIBERNATE \(tick) \(final.version ?? 0)")
            try await store.close()
        }
    }

    /// The recovery recipe (`JellyStore.resume`): the save's tick, then the frames built on it.
    static func resume(_ store: any JellyStore, partition: String, owner: String, ttlMilliseconds: Int64) async throws -> (lock: LockInfo, saveVersion: UInt64, tick: Int) {
        let (lock, objects, frames) = try await store.resume(partition: partition, owner: owner, ttlMilliseconds: ttlMilliseconds, stream: "world", baseKey: "world")
        let save = objects.first { $0.key == "world" }
        let tick = frames.last.map { parseTick($0.value) } ?? save.map { parseTick($0.value) } ?? 0
        return (lock, save?.version ?? 0, tick)
    }

    static func parseTick(_ value: [UInt8]) -> Int {
        Int(String(decoding: value, as: UTF8.self).dropFirst("tick=".count)) ?? -1
    }
}
