import Foundation

/// A real `jelly serve` process on a free loopback port (the port is read from its
/// "listening on" line).
///
/// `@unchecked Sendable`: `port` is set once in `init`, before the instance is shared; `process`
/// (Foundation's `Process`, not Sendable) is only signalled and waited on, which it allows from
/// any thread.
public final class JellyServeProcess: @unchecked Sendable {
    public let process = Process()
    public private(set) var port = 0
    private let output = OutputCollector()

    /// `jelly serve --data DIRECTORY --listen 127.0.0.1:0` plus `extraArguments`.
    public convenience init(directory: String, extraArguments: [String] = []) throws {
        try self.init(arguments: ["--data", directory] + extraArguments)
    }

    /// `jelly serve --listen 127.0.0.1:0` plus `arguments`; with `softOpenFileLimit`, started
    /// through `sh` under `ulimit -S -n` (the shell execs jelly, so the pid is jelly's).
    public init(arguments: [String], softOpenFileLimit: Int? = nil) throws {
        let jelly = try jellyExecutablePath()
        let serve = ["serve", "--listen", "127.0.0.1:0"] + arguments
        if let softOpenFileLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -S -n \(softOpenFileLimit) && exec \"$0\" \"$@\"", jelly] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: jelly)
            process.arguments = serve
        }
        output.attach(to: process)
        try startProcess(process)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            for scheme in ["http", "https"] {
                let prefix = "jelly serve: listening on \(scheme)://127.0.0.1:"
                if let line = log.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                    port = Int(line.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
                    return
                }
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.terminate()
        throw ConformanceFailure("jelly serve did not start: \(log)")
    }

    public var log: String { output.text }

    public var base: String { "http://127.0.0.1:\(port)" }

    /// Sends `signal`, waits for the exit, returns the exit status.
    @discardableResult
    public func kill(signal: Int32) -> Int32 {
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
        output.detach()
        return process.terminationStatus
    }
}

/// Collects what a child process writes to stdout and stderr, as it arrives.
///
/// `@unchecked Sendable`: `collected` is read and written only under `lock`; the pipe's reading
/// handler runs on Foundation's queue and takes the same lock.
public final class OutputCollector: @unchecked Sendable {
    private let pipe = Pipe()
    private let lock = NSLock()
    private var collected = ""

    public init() {}

    /// Sends `process`'s stdout and stderr here; call before `run()`.
    public func attach(to process: Process) {
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.collected += String(decoding: data, as: UTF8.self)
            self.lock.unlock()
        }
    }

    public func detach() { pipe.fileHandleForReading.readabilityHandler = nil }

    public var text: String {
        lock.lock()
        defer { lock.unlock() }
        return collected
    }
}

/// Runs a program to its end; its exit status and its standard output and error, interleaved
/// (or its standard output alone, with `standardError: false`), in `currentDirectory` if given.
public func runToEnd(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, standardError: Bool = true,
    currentDirectory: String? = nil
) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = standardError ? pipe : FileHandle.nullDevice
    try startProcess(process)
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// Starts `process`, one start at a time in this test process: Foundation's `Process.run()` on
/// Linux is not safe to call from several threads at once (a CI run crashed in its memcpy while
/// parallel suites each started processes). Every test starts its children through this.
///
/// The child gets an explicit environment, a copy taken once: without one, `Process.run()` reads
/// the C `environ` while it builds the child's, and a `setenv` on another thread at that moment
/// (libraries do it) frees what it copies. The crash in `Process.run`'s memcpy kept coming back
/// with the start lock alone.
public func startProcess(_ process: Process) throws {
    processStartLock.lock()
    defer { processStartLock.unlock() }
    if process.environment == nil { process.environment = environmentAtStart }
    try process.run()
}

private let processStartLock = NSLock()
private let environmentAtStart: [String: String] = ProcessInfo.processInfo.environment
