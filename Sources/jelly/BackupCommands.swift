import ArgumentParser
import Foundation
import JellyClient
import JellyCluster
import JellyCore
import JellyEngine

/// `jelly backup` (take one, from a server or a data directory), `jelly backup verify`, and
/// `jelly restore` (docs/operations.md).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take an online backup (incremental into the same directory), or verify one.",
        subcommands: [BackupTake.self, BackupVerify.self],
        defaultSubcommand: BackupTake.self
    )
}

struct BackupTake: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "take",
        abstract: "Back up a running server (--url) or a data directory no process has open (--data).",
        discussion: """
            With --url the server writes the backup on its own machine, into the directory --to \
            names inside its backup directory (jelly serve --backup-dir). With --data, --to is a \
            directory here. A second backup to the same place copies only what is new.
            """
    )
    @Option(help: "A running server, like http://127.0.0.1:7420 (needs an admin key when auth is on).") var url: String?
    @Option(name: .customLong("api-key"), help: "The server's admin API key, when auth is on.") var apiKey: String?
    @Option(help: "A data directory no process has open (when there is no --url).") var data: String = "./jelly-data"
    @Option(help: "Cluster mode: the NATS servers (or the `nats` section of --config); snapshots every shard stream into --to.") var nats: String?
    @Option(help: "Cluster mode: jelly serve's config file (its `nats` section).") var config: String?
    @Option(help: "Where the backup goes: a name on the server (--url) or a directory (--data, --nats).") var to: String
    @Option(name: .customLong("rate-mib"), help: "With --data: cap the copy at this many MiB/s (the server's backups take rate_mib in the request).") var rateMiB: Int?

    func run() async throws {
        try await failing {
            if nats != nil || config != nil {
                let file = try config.map { try ServeConfigFile.load(path: $0) }
                let store = try await ClusterStore.openAndWait(try clusterConfiguration(file: file, nats: nats, shards: nil, replicas: nil, limits: .default))
                do {
                    let r = try await store.backup(to: to) { printError("jelly backup: \($0)") }
                    try await store.close()
                    print("cluster backup in \(r.directory): \(r.streams) streams, \(r.messages) messages, \(formatBytes(r.bytes)), in \(format2(Double(r.milliseconds) / 1000)) s")
                } catch {
                    try? await store.close()
                    throw error
                }
                return
            }
            let report: BackupReport
            if let url {
                let client = try JellyClient(JellyClient.Configuration(url: url, bearerToken: apiKey))
                do {
                    printError("jelly backup: asking \(url) to back up into \(to)…")
                    report = try await client.backup(name: to)
                    try await client.close()
                } catch {
                    try? await client.close()
                    throw error
                }
            } else {
                let store = try EmbeddedStore.open(try StoreOptions.configuration(data: data, durability: "always"))
                let line = ProgressLine("backup")
                do {
                    report = try await store.backup(to: to, bytesPerSecond: rateMiB.map { Int64($0) << 20 }) { line.show($0) }
                    try await store.close()
                } catch {
                    try? await store.close()
                    throw error
                }
                line.finish()
            }
            print("backup of version \(report.version) in \(report.directory): \(report.files) files, \(formatBytes(report.bytesCopied)) copied, \(formatBytes(report.bytesReused)) already there, \(report.filesDeleted) old files removed, in \(format2(Double(report.milliseconds) / 1000)) s")
        }
    }
}

struct BackupVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every file, record and hint of a backup. Exits 0 when good, 1 when damaged."
    )
    @Argument(help: "The backup directory.") var directory: String

    func run() async throws {
        if ClusterStore.isClusterBackup(directory) {
            let v = try await failing { try ClusterStore.verifyBackup(directory: directory) }
            for problem in v.problems { print("DAMAGED: \(problem)") }
            print("cluster backup: \(v.streams) streams, \(v.messages) messages, \(formatBytes(v.bytes)): \(v.problems.isEmpty ? "good" : "\(v.problems.count) problem(s) found")")
            if !v.problems.isEmpty { throw ExitCode(1) }
            return
        }
        let line = ProgressLine("verify")
        let v = try await failing { try Backups.verify(directory: directory, progress: { line.show($0) }) }
        line.finish()
        for problem in v.problems { print("DAMAGED: \(problem)") }
        let range = v.versionMin.map { "versions \($0)…\(v.versionMax ?? $0)" } ?? "no records"
        print("backup of version \(v.version) (epoch \(v.epoch)): \(v.files) files, \(formatBytes(v.bytes)), \(v.records) records, \(range); restores to any version from \(v.restorableFrom) to \(v.version): \(v.isGood ? "good" : "\(v.problems.count) problem(s) found")")
        if !v.isGood { throw ExitCode(1) }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into a new data directory (never over an existing store), then check it.",
        discussion: """
            The restored store gets a new epoch (client replicas and change feeds start over), \
            versions far above the backup's (no lock token of the old store is ever issued again) \
            and no locks (game servers lock and load again). Point jelly serve --data at it.
            """
    )
    @Option(help: "The backup directory.") var from: String
    @Option(help: "The new data directory (must not exist, or be empty); not with --nats.") var data: String?
    @Option(help: "Cluster mode: restore a cluster backup into the new cluster at these NATS servers (or the `nats` section of --config).") var nats: String?
    @Option(help: "Cluster mode: jelly serve's config file (its `nats` section).") var config: String?
    @Option(name: .customLong("to-version"), help: "Restore to this version (a point in time; jelly backup verify prints the range the backup can restore to). Default: the backup's version.") var toVersion: UInt64?

    func run() async throws {
        try await failing {
            if nats != nil || config != nil {
                let file = try config.map { try ServeConfigFile.load(path: $0) }
                let r = try await ClusterStore.restore(from: from, configuration: try clusterConfiguration(file: file, nats: nats, shards: nil, replicas: nil, limits: .default)) { printError("jelly restore: \($0)") }
                print("restored \(r.streams) streams, \(r.messages) messages, \(formatBytes(r.bytes)); new epochs; \(r.locksBroken) lock(s) removed; in \(format2(Double(r.milliseconds) / 1000)) s")
                return
            }
            guard let data else { throw ValidationError("--data: where to restore the store (or --nats for a cluster backup)") }
            let line = ProgressLine("restore")
            let r = try await Backups.restore(from: from, to: data, toVersion: toVersion, progress: { line.show($0) })
            line.finish()
            print("restored version \(r.version) into \(r.directory): \(r.files) files, \(formatBytes(r.bytes)), new epoch \(r.epoch), \(r.locksBroken) lock(s) removed, jelly check: consistent, in \(format2(Double(r.milliseconds) / 1000)) s")
        }
    }
}

/// A progress line on standard error, at most a few times a second.
final class ProgressLine: @unchecked Sendable {
    private let what: String
    private let lock = NSLock()
    private var last: TimeInterval = 0
    private var shown = false

    init(_ what: String) { self.what = what }

    func show(_ p: BackupProgress) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date().timeIntervalSince1970
        guard now - last >= 0.5 || p.bytesDone == p.bytesTotal else { return }
        last = now
        shown = true
        let percent = p.bytesTotal > 0 ? Double(p.bytesDone) * 100 / Double(p.bytesTotal) : 100
        FileHandle.standardError.write(Data("\rjelly \(what): \(formatBytes(p.bytesDone)) of \(formatBytes(p.bytesTotal)) (\(Int(percent))%)   ".utf8))
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
