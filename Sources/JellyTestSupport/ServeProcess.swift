import Foundation

/// A real `jelly serve` process on a free loopback port (the port is read from its
/// "listening on" line).
public final class JellyServeProcess: @unchecked Sendable {
    public let process = Process()
    public private(set) var port = 0
    private let output = Pipe()
    private let lock = NSLock()
    private var text = ""

    /// `jelly serve --data DIRECTORY --listen 127.0.0.1:0` plus `extraArguments`.
    public convenience init(directory: String, extraArguments: [String] = []) throws {
        try self.init(arguments: ["--data", directory] + extraArguments)
    }

    /// `jelly serve --listen 127.0.0.1:0` plus `arguments`.
    public init(arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try jellyExecutablePath())
        process.arguments = ["serve", "--listen", "127.0.0.1:0"] + arguments
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.text += String(decoding: data, as: UTF8.self)
            self.lock.unlock()
        }
        try process.run()
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

    public var log: String {
        lock.lock()
        defer { lock.unlock() }
        return text
    }

    public var base: String { "http://127.0.0.1:\(port)" }

    /// Sends `signal`, waits for the exit, returns the exit status.
    @discardableResult
    public func kill(signal: Int32) -> Int32 {
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        return process.terminationStatus
    }
}
