import Foundation

/// A real `jelly serve` process on a free loopback port (the port is read from its
/// "listening on" line).
///
/// `@unchecked Sendable`: `port` is set once in `init`, before the instance is shared.
public final class JellyServeProcess: @unchecked Sendable {
    public let process: Subprocess
    public private(set) var port = 0
    /// The address it listens on.
    public let host: String
    private let output: OutputCollector

    /// `jelly serve --data DIRECTORY --listen 127.0.0.1:0` plus `extraArguments`.
    public convenience init(directory: String, extraArguments: [String] = []) throws {
        try self.init(arguments: ["--data", directory] + extraArguments)
    }

    /// `jelly serve --listen 127.0.0.1:0` plus `arguments`; with `softOpenFileLimit`, started
    /// through `sh` under `ulimit -S -n` (the shell execs jelly, so the pid is jelly's). With
    /// `network`, in its host `networkHost` (j1 or j2), listening on its client address.
    public init(arguments: [String], softOpenFileLimit: Int? = nil, network: TestNetwork? = nil, networkHost: String = "j1") throws {
        let jelly = try jellyExecutablePath()
        host = network?.clientAddress(networkHost) ?? "127.0.0.1"
        let serve = ["serve", "--listen", "\(host):\(network == nil ? 0 : 8080)"] + arguments
        if let network {
            let (executable, wrapped) = network.command(in: networkHost, jelly, serve)
            process = try Subprocess(executable, wrapped, output: .pipe, error: .standardOutput)
        } else if let softOpenFileLimit {
            process = try Subprocess(
                "/bin/sh", ["-c", "ulimit -S -n \(softOpenFileLimit) && exec \"$0\" \"$@\"", jelly] + serve,
                output: .pipe, error: .standardOutput)
        } else {
            process = try Subprocess(jelly, serve, output: .pipe, error: .standardOutput)
        }
        // `output: .pipe` always gives a handle.
        output = OutputCollector(process.standardOutput ?? FileHandle.nullDevice)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            for scheme in ["http", "https"] {
                let prefix = "jelly serve: listening on \(scheme)://\(host):"
                if let line = log.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                    port = Int(line.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
                    return
                }
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.send(SIGKILL)
        process.waitUntilExit()
        throw ConformanceFailure("jelly serve did not start: \(log)")
    }

    public var log: String { output.text }

    public var base: String { "http://\(host):\(port)" }

    /// Sends `signal`, waits for the exit, returns the exit status.
    @discardableResult
    public func kill(signal: Int32) -> Int32 {
        process.send(signal)
        return process.waitUntilExit()
    }
}

/// Runs a program to its end; its exit status and its standard output and error, interleaved
/// (or its standard output alone, with `standardError: false`), in `currentDirectory` if given.
public func runToEnd(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, standardError: Bool = true,
    currentDirectory: String? = nil
) throws -> (status: Int32, output: String) {
    let process = try Subprocess(
        executable, arguments, environment: environment, currentDirectory: currentDirectory,
        output: .pipe, error: standardError ? .standardOutput : .discard)
    let output = OutputCollector(process.standardOutput ?? FileHandle.nullDevice)
    let status = process.waitUntilExit()
    // The pipe ends when the last holder exits: a grandchild left running gets 10 s.
    return (status, String(decoding: output.waitForEnd(seconds: 10), as: UTF8.self))
}
