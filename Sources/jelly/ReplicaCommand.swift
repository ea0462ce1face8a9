import ArgumentParser
import Foundation
import JellyClient
import JellyCore
import JellyReplica

/// `jelly replica`: a client replica driven by lines on standard input, one answer line each
/// on standard output. For trying sync from a shell and for the multi-process tests.
///
///     put KEY TEXT | append KEY TOKEN | delete KEY | get KEY | dump | pending | sync | start | stop | quit
///
/// `append` adds a comma-separated token to the object's text; with `--merge append` conflicts
/// are resolved as theirs followed by the tokens this replica appended since its base, so
/// every token any replica appended ends up once in the server's object.
struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "A client replica of one partition, driven by lines on standard input (see docs/sync.md)."
    )

    @Option(help: "The server, like http://127.0.0.1:7420.") var url: String
    @Option(help: "A client token for the partition (or an API key).") var token: String?
    @Option(help: "The partition to replicate.") var partition: String
    @Option(help: "The replica's local directory.") var dir: String
    @Option(help: "The sync client id (made once and kept when absent).") var clientID: String?
    @Option(help: "Conflict resolution: theirs (the default resolver), mine, or append.") var merge: String = "theirs"
    @Option(help: "Edits per push.") var pushBatch: Int = 100

    func run() async throws {
        var client = JellyClient.Configuration(url: url, bearerToken: token)
        client.requestTimeoutMilliseconds = 10_000
        client.retries = 0
        let remote = try JellyClient(client)
        var config = JellyReplica.Configuration(directory: dir, partition: partition, remote: remote, clientID: clientID)
        config.waitMilliseconds = 2000
        // Change notices over the feed's WebSocket where the server speaks it (plain http).
        if url.hasPrefix("http://") {
            let (url, token, partition) = (url, token, partition)
            config.notices = { cursor in
                let socket = try await FeedSocketClient.watch(url: url, bearerToken: token, partition: partition, since: cursor)
                let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
                let relay = Task {
                    for await _ in socket.messages { continuation.yield() }
                    continuation.finish()
                }
                continuation.onTermination = { _ in
                    relay.cancel()
                    Task { await socket.close() }
                }
                return stream
            }
        }
        guard pushBatch >= 1 else { throw ValidationError("--push-batch must be at least 1") }
        config.pushBatch = pushBatch
        switch merge {
        case "theirs": break
        case "mine": config.resolver = { _ in .mine }
        case "append": config.resolver = Self.appendMerge
        default: throw ValidationError("--merge must be theirs, mine or append")
        }
        let replica: JellyReplica
        do {
            replica = try await failing { try await JellyReplica.open(config) }
        } catch {
            try? await remote.close()
            throw error
        }
        say("ready \(await replica.clientID)")
        for await line in Self.lines() {
            let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
            guard let command = parts.first else { continue }
            do {
                switch (command, parts.count) {
                case ("put", 3):
                    try await replica.put(parts[1], ReplicaValue(Array(parts[2].utf8), contentType: "text/plain"))
                    say("ok")
                case ("append", 3):
                    let now = await replica.get(parts[1]).map { String(decoding: $0.value.value, as: UTF8.self) } ?? ""
                    try await replica.put(parts[1], ReplicaValue(Array((now.isEmpty ? parts[2] : now + "," + parts[2]).utf8), contentType: "text/plain"))
                    say("ok")
                case ("delete", 2):
                    try await replica.delete(parts[1])
                    say("ok")
                case ("get", 2):
                    if let o = await replica.get(parts[1]) { say("value " + String(decoding: o.value.value, as: UTF8.self)) } else { say("none") }
                case ("dump", 1):
                    var all: [String: String] = [:]
                    for o in await replica.list() { all[o.key] = String(decoding: o.value.value, as: UTF8.self) }
                    let data = try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])
                    say("dump " + String(decoding: data, as: UTF8.self))
                case ("pending", 1):
                    say("pending \(await replica.pendingCount)")
                case ("sync", 1):
                    let r = try await replica.sync()
                    say("synced pushed=\(r.pushed) pulled=\(r.pulled) conflicts=\(r.conflicts) locked=\(r.lockedBy ?? "-")")
                case ("start", 1):
                    await replica.start()
                    say("ok")
                case ("stop", 1):
                    await replica.stop()
                    say("ok")
                case ("quit", 1):
                    try await replica.close()
                    try await remote.close()
                    say("bye")
                    return
                default:
                    say("error unknown command: \(line)")
                }
            } catch let error as JellyError {
                say("error \(error.code): \(error.message)")
            }
        }
        try await replica.close()
        try await remote.close()
    }

    func say(_ text: String) { writeStandardOutput(Array((text + "\n").utf8)) }

    /// Standard input's lines, read on a thread of their own (a read blocks).
    static func lines() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let thread = Thread {
            while let line = readLine() { continuation.yield(line) }
            continuation.finish()
        }
        thread.start()
        return stream
    }

    /// Theirs, then the tokens mine added to base (each once).
    static let appendMerge: ReplicaResolver = { c in
        func tokens(_ v: ReplicaValue?) -> [String] {
            v.map { String(decoding: $0.value, as: UTF8.self).split(separator: ",").map(String.init) } ?? []
        }
        let base = Set(tokens(c.base))
        var out = tokens(c.theirs)
        var have = Set(out)
        for t in tokens(c.mine) where !base.contains(t) && have.insert(t).inserted { out.append(t) }
        return .merged(ReplicaValue(Array(out.joined(separator: ",").utf8), contentType: "text/plain"))
    }
}
