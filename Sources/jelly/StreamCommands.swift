import ArgumentParser
import Foundation
import JellyClient
import JellyCore
import JellyEngine

/// `jelly stream append|read|tail|trim`: a partition's streams (docs/streams.md), on a server
/// (`--url`) or on a data directory no process has open (`--data`).
struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Append to, read, tail (or replay) and trim a partition's streams of frames.",
        subcommands: [StreamAppend.self, StreamRead.self, StreamTail.self, StreamTrim.self]
    )
}

struct StreamTarget: ParsableArguments {
    @Option(help: "A server, like http://127.0.0.1:7420 (otherwise --data).") var url: String?
    @Option(name: .customLong("api-key"), help: "The server's API key, when auth is on.") var apiKey: String?
    @Option(help: "A data directory no process has open (when there is no --url).") var data: String = "./jelly-data"
    @Option(help: "The partition.") var partition: String
    @Option(help: "The stream.") var stream: String

    /// Runs `body` with the store and closes it afterwards, also when `body` throws (a
    /// `JellyClient` must be closed before it goes away).
    func use<T>(_ body: (any JellyStore) async throws -> T) async throws -> T {
        let store = try await open()
        do {
            let value = try await body(store)
            try await store.close()
            return value
        } catch {
            try? await store.close()
            throw error
        }
    }

    func open() async throws -> any JellyStore {
        if let url {
            var c = JellyClient.Configuration(url: url, bearerToken: apiKey)
            c.retries = 0
            return try JellyClient(c)
        }
        var config = EmbeddedStoreConfiguration(directory: data)
        config.durability = .always
        return try EmbeddedStore.open(config)
    }
}

enum FrameFormatOption: String, ExpressibleByArgument, CaseIterable {
    case text, hex, base64

    func render(_ f: Frame) -> String {
        let value: String
        switch self {
        case .text: value = String(decoding: f.value, as: UTF8.self).replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
        case .hex: value = f.value.map { String(format: "%02x", $0) }.joined()
        case .base64: value = Data(f.value).base64EncodedString()
        }
        return "\(f.seq) \(f.timeMilliseconds) \(f.baseVersion) \(value)"
    }
}

struct StreamAppend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append each line of standard input as a frame (or --file as one frame); prints each frame's sequence.",
        discussion: "With --url and --socket, the lines go over one WebSocket without waiting for answers (only refusals are printed, on standard error)."
    )
    @OptionGroup var target: StreamTarget
    @Option(help: "The partition's lock token, when it is locked.") var token: UInt64?
    @Option(name: .customLong("base-version"), help: "The version of the save the frames build on.") var baseVersion: UInt64 = 0
    @Option(help: "Append this file's bytes as one frame instead of standard input's lines.") var file: String?
    @Flag(help: "Send the lines over a WebSocket without waiting (needs --url).") var socket = false
    @Flag(help: "Wait until each frame is on disk.") var durable = false

    func run() async throws {
        try await failing {
            let lock = token.map { LockToken($0) }
            if socket {
                guard let url = target.url else { throw ValidationError("--socket needs --url") }
                let s = try await StreamSocketClient.append(url: url, bearerToken: target.apiKey, partition: target.partition, stream: target.stream, token: lock, baseVersion: baseVersion)
                let reporter = Task {
                    for await event in s.events {
                        if case .refused(_, let message, let refused, _) = event { printError("refused (\(refused) so far): \(message)") }
                    }
                }
                var sent = 0
                while let line = readLine(strippingNewline: true) {
                    try await s.sendAndWait(Array(line.utf8))
                    sent += 1
                }
                await s.close()
                await reporter.value
                print("sent \(sent) frames")
                return
            }
            try await target.use { store in
                if let file {
                    print(try await store.appendFrame(partition: target.partition, stream: target.stream, try readFile(file), baseVersion: baseVersion, lockToken: lock, durable: durable))
                    return
                }
                while let line = readLine(strippingNewline: true) {
                    print(try await store.appendFrame(partition: target.partition, stream: target.stream, Array(line.utf8), baseVersion: baseVersion, lockToken: lock, durable: durable))
                }
            }
        }
    }
}

struct StreamRead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Print a stream's frames from a sequence: `SEQ TIME_MS BASE_VERSION VALUE`, one per line."
    )
    @OptionGroup var target: StreamTarget
    @Option(help: "The first sequence to read.") var from: UInt64 = 0
    @Option(help: "Most frames to print (0: all).") var limit: Int = 0
    @Option(help: "How to print values: text, hex or base64.") var format: FrameFormatOption = .text

    func run() async throws {
        try await failing {
            try await target.use { store in
                var cursor = from
                var printed = 0
                while limit == 0 || printed < limit {
                    let page = try await store.readFrames(partition: target.partition, stream: target.stream, from: cursor, limit: limit == 0 ? 1000 : min(1000, limit - printed))
                    if page.frames.isEmpty { break }
                    for f in page.frames { print(format.render(f)) }
                    printed += page.frames.count
                    cursor = page.next
                }
            }
        }
    }
}

struct StreamTail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print a stream's frames from a sequence and then new ones as they are appended (Ctrl-C stops).",
        discussion: "With --url, over a WebSocket; --pace original replays at the frames' original spacing (divided by --speed)."
    )
    @OptionGroup var target: StreamTarget
    @Option(help: "The first sequence.") var from: UInt64 = 0
    @Option(help: "none (as fast as possible) or original (the recorded spacing; needs --url).") var pace: String = "none"
    @Option(help: "Replay speed with --pace original.") var speed: Double = 1
    @Flag(name: .customLong("no-follow"), help: "Stop at the end instead of waiting for new frames.") var noFollow = false
    @Option(help: "How to print values: text, hex or base64.") var format: FrameFormatOption = .text

    func run() async throws {
        try await failing {
            guard pace == "none" || pace == "original" else { throw ValidationError("--pace must be none or original") }
            if let url = target.url {
                let s = try await StreamSocketClient.tail(
                    url: url, bearerToken: target.apiKey, partition: target.partition, stream: target.stream, from: from,
                    speed: pace == "original" ? speed : nil, follow: !noFollow
                )
                for await event in s.events {
                    switch event {
                    case .frame(let f): printLine(format.render(f))
                    case .gap(let from, let first): printError("frames \(from)..<\(first) were dropped before they were read")
                    case .error(_, let message), .refused(_, let message, _, _): printError("error: \(message)")
                    case .acked: break
                    }
                }
                return
            }
            guard pace == "none" else { throw ValidationError("--pace original needs --url") }
            try await target.use { store in
                var cursor = from
                while true {
                    let page = try await store.readFrames(partition: target.partition, stream: target.stream, from: cursor, limit: 1000)
                    for f in page.frames { printLine(format.render(f)) }
                    cursor = page.next
                    if page.frames.isEmpty {
                        if noFollow { break }
                        _ = try await store.waitForFrames(partition: target.partition, stream: target.stream, after: max(cursor, 1) - 1, timeoutMilliseconds: 10_000)
                    }
                }
            }
        }
    }
}

struct StreamTrim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trim",
        abstract: "Drop a stream's frames below --before, or remove the stream (--remove)."
    )
    @OptionGroup var target: StreamTarget
    @Option(help: "Drop the frames below this sequence.") var before: UInt64?
    @Flag(help: "Remove the stream: every frame and its retention.") var remove = false
    @Option(help: "The partition's lock token, when it is locked.") var token: UInt64?

    func run() async throws {
        try await failing {
            guard (before != nil) != remove else { throw ValidationError("give --before SEQ or --remove") }
            try await target.use { store in
                try await store.trimStream(partition: target.partition, stream: target.stream, before: before, lockToken: token.map { LockToken($0) })
            }
        }
    }
}
