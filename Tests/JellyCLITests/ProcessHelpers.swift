import Foundation
import JellyTestSupport

func jellyBinary() throws -> String { try jellyExecutablePath() }

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `jelly ARGS` to completion.
func runJelly(_ arguments: [String], stdin: String? = nil) throws -> CommandResult {
    let process = try Subprocess(try jellyBinary(), arguments, input: true, output: .pipe, error: .pipe)
    // Both streams are read as they come: one left unread could fill its pipe and stall the child.
    let out = OutputCollector(process.standardOutput ?? FileHandle.nullDevice)
    let err = OutputCollector(process.standardError ?? FileHandle.nullDevice)
    if let stdin { process.standardInput?.write(Data(stdin.utf8)) }
    try? process.standardInput?.close()
    let status = process.waitUntilExit()
    return CommandResult(
        status: status, stdout: String(decoding: out.waitForEnd(seconds: 10), as: UTF8.self),
        stderr: String(decoding: err.waitForEnd(seconds: 10), as: UTF8.self))
}

/// A child process whose standard output is collected line by line until it is killed.
final class ChildProcess: Sendable {
    let process: Subprocess
    private let output: OutputCollector

    init(_ arguments: [String]) throws {
        process = try Subprocess(try jellyBinary(), arguments, output: .pipe)
        output = OutputCollector(process.standardOutput ?? FileHandle.nullDevice)
    }

    /// Complete lines printed so far.
    var lines: [String] {
        var parts = output.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        parts.removeLast() // the unfinished line, or "" after the last newline
        return parts
    }

    func killHard() {
        process.send(SIGKILL)
        process.waitUntilExit()
        // Everything the process wrote before it died.
        output.waitForEnd(seconds: 10)
    }
}
