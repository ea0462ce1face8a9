import CJellySystem
import Foundation
import JellyCore
import NATSClient
import NIOCore

/// What a cluster backup did.
public struct ClusterBackupReport: Sendable {
    public var directory: String
    public var streams: Int
    public var messages: UInt64
    public var bytes: Int64
    public var milliseconds: Int64
}

/// What a cluster restore did.
public struct ClusterRestoreReport: Sendable {
    public var streams: Int
    public var messages: UInt64
    public var bytes: Int64
    /// Locks the backup held, removed: their sessions belong to the old cluster.
    public var locksBroken: Int
    public var milliseconds: Int64
}

/// Backups of cluster mode: a JetStream snapshot (`STREAM.SNAPSHOT`) of every shard stream, each
/// taken by its stream leader while it serves, into a directory with a manifest (docs/operations.md):
///
///     CLUSTER-BACKUP            the manifest, text, checksummed like BACKUP
///     <stream>.header.json      the stream's configuration and state, as the server gave them
///     <stream>.snapshot         the snapshot's chunks, in order
///
/// Each shard stream is consistent at its own moment; a partition never spans two streams, so
/// every partition is consistent (its objects, lock and fence markers at one sequence).
extension ClusterStore {
    public static let backupManifestName = "CLUSTER-BACKUP"

    struct BackupEntry {
        var stream: String
        var bytes: Int64
        var crc: UInt32
        var messages: UInt64
        var lastSequence: UInt64
    }

    public func backup(to directory: String, progress: (@Sendable (String) -> Void)? = nil) async throws -> ClusterBackupReport {
        let started = ContinuousClock.now
        let fm = FileManager.default
        if fm.fileExists(atPath: directory), let stray = try fm.contentsOfDirectory(atPath: directory).first {
            throw JellyError(.invalidArgument, "\(directory) is not empty (it holds \(stray)); back up a cluster into a new directory")
        }
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var entries: [BackupEntry] = []
        for shard in 0..<configuration.shards {
            let stream = "\(configuration.streamPrefix)_\(shard)"
            let path = directory + "/" + stream + ".snapshot"
            guard fm.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
                throw JellyError(.io, "cannot create \(path)")
            }
            let sink = SnapshotSink(file: file)
            let header = try await call("snapshotting \(stream)", { try await js.snapshot(stream: stream, write: { try sink.write($0) }) })
            try sink.finish()
            try Data(header.json).write(to: URL(fileURLWithPath: directory + "/" + stream + ".header.json"))
            entries.append(BackupEntry(stream: stream, bytes: sink.bytes, crc: sink.crc, messages: header.state.messages, lastSequence: header.state.lastSeq))
            progress?("\(stream): \(header.state.messages) messages, \(sink.bytes) bytes")
        }
        try Data(Self.encodeManifest(entries)).write(to: URL(fileURLWithPath: directory + "/" + Self.backupManifestName))
        let ms = (ContinuousClock.now - started).components
        return ClusterBackupReport(
            directory: directory, streams: entries.count, messages: entries.reduce(0) { $0 + $1.messages },
            bytes: entries.reduce(0) { $0 + $1.bytes }, milliseconds: ms.seconds * 1000 + ms.attoseconds / 1_000_000_000_000_000
        )
    }

    /// Whether `directory` holds a cluster backup (rather than an embedded store's).
    public static func isClusterBackup(_ directory: String) -> Bool {
        FileManager.default.fileExists(atPath: directory + "/" + backupManifestName)
    }

    /// Checks every snapshot file of a cluster backup against its manifest's length and CRC-32C
    /// (JetStream checks the snapshot's contents when it restores it). Problems, empty when good.
    public static func verifyBackup(directory: String) throws -> (streams: Int, messages: UInt64, bytes: Int64, problems: [String]) {
        let entries = try readManifest(directory)
        var problems: [String] = []
        for e in entries {
            let path = directory + "/" + e.stream + ".snapshot"
            guard let data = FileManager.default.contents(atPath: path) else { problems.append("\(path): missing"); continue }
            if Int64(data.count) != e.bytes { problems.append("\(path): \(data.count) bytes, the manifest says \(e.bytes)"); continue }
            let crc = data.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) }
            if crc != e.crc { problems.append("\(path): CRC-32C \(hex(crc)), the manifest says \(hex(e.crc))") }
            if !FileManager.default.fileExists(atPath: directory + "/" + e.stream + ".header.json") { problems.append("\(directory)/\(e.stream).header.json: missing") }
        }
        return (entries.count, entries.reduce(0) { $0 + $1.messages }, entries.reduce(0) { $0 + $1.bytes }, problems)
    }

    /// Restores a cluster backup into the cluster `configuration` names, which must not have
    /// these streams yet (a new cluster): every stream through `STREAM.RESTORE`, each with a new
    /// epoch (client replicas and change feeds reset); then opens the store and removes every
    /// lock the backup held.
    public static func restore(from directory: String, configuration: ClusterStoreConfiguration, progress: (@Sendable (String) -> Void)? = nil) async throws -> ClusterRestoreReport {
        let started = ContinuousClock.now
        let check = try verifyBackup(directory: directory)
        guard check.problems.isEmpty else {
            throw JellyError(.corruption, "the cluster backup in \(directory) is damaged: \(check.problems.joined(separator: "; ")); restore another backup")
        }
        let entries = try readManifest(directory)
        let connection = try NATSConnection(options: configuration.nats)
        defer { Task { await connection.close() } }
        try await connection.waitUntilConnected(timeout: .seconds(30))
        let js = JetStream(connection: connection, timeout: configuration.requestTimeout)
        for e in entries where try await js.streamInfo(e.stream) != nil {
            throw JellyError(.invalidArgument, "the cluster already has stream \(e.stream); restore into a new cluster (or delete the stream first)")
        }
        for e in entries {
            var header = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + e.stream + ".header.json"))
            if var object = try JSONSerialization.jsonObject(with: header) as? [String: Any], var config = object["config"] as? [String: Any] {
                var metadata = config["metadata"] as? [String: String] ?? [:]
                metadata["jelly_epoch"] = String(UInt64.random(in: 1...UInt64.max), radix: 16)
                config["metadata"] = metadata
                object["config"] = config
                header = try JSONSerialization.data(withJSONObject: object)
            }
            guard let file = FileHandle(forReadingAtPath: directory + "/" + e.stream + ".snapshot") else {
                throw JellyError(.io, "cannot read \(directory)/\(e.stream).snapshot")
            }
            defer { try? file.close() }
            let info = try await js.restore(stream: e.stream, header: Array(header)) {
                let chunk = try file.read(upToCount: 128 << 10) ?? Data()
                return chunk.isEmpty ? nil : Array(chunk)
            }
            progress?("\(e.stream): \(info.state.messages) messages restored")
        }
        let store = try await ClusterStore.openAndWait(configuration)
        var broken = 0
        do {
            for e in entries {
                for subject in try await store.js.subjects(stream: e.stream, filter: "\(configuration.subjectPrefix).*.*.l").keys {
                    let tokens = subject.split(separator: ".")
                    guard tokens.count >= 4, let bytes = Base64URL.decode(tokens[tokens.count - 2]) else { continue }
                    if try await store.breakLock(partition: String(decoding: bytes, as: UTF8.self)) != nil { broken += 1 }
                }
            }
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
        let ms = (ContinuousClock.now - started).components
        return ClusterRestoreReport(
            streams: entries.count, messages: check.messages, bytes: check.bytes, locksBroken: broken,
            milliseconds: ms.seconds * 1000 + ms.attoseconds / 1_000_000_000_000_000
        )
    }

    static func encodeManifest(_ entries: [BackupEntry]) -> [UInt8] {
        var text = "jelly-cluster-backup 1\ncreated-at-ms \(SystemClock().nowMilliseconds())\n"
        for e in entries { text += "stream \(e.stream) \(e.bytes) \(hex(e.crc)) \(e.messages) \(e.lastSequence)\n" }
        let body = Array(text.utf8)
        let crc = body.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) }
        return body + Array("end \(hex(crc))\n".utf8)
    }

    static func readManifest(_ directory: String) throws -> [BackupEntry] {
        let path = directory + "/" + backupManifestName
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JellyError(.invalidArgument, "\(directory) holds no \(backupManifestName): not a cluster backup, or one that did not finish")
        }
        let bytes = Array(data)
        func bad(_ why: String) -> JellyError { JellyError(.corruption, "\(path) is not a readable cluster backup manifest: \(why)") }
        guard let end = bytes.lastRange(of: Array("end ".utf8)) else { throw bad("no end line") }
        let body = Array(bytes[..<end.lowerBound])
        let stated = String(decoding: bytes[end.upperBound...], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let crc = body.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) }
        guard stated == hex(crc) else { throw bad("its checksum is \(hex(crc)), its end line says \(stated)") }
        var entries: [BackupEntry] = []
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            switch f.first {
            case "jelly-cluster-backup": guard f.count == 2, f[1] == "1" else { throw bad("format \(f.dropFirst().joined()), this jelly reads 1") }
            case "created-at-ms": break
            case "stream":
                guard f.count == 6, let size = Int64(f[2]), let c = UInt32(f[3].dropFirst(2), radix: 16), let n = UInt64(f[4]), let last = UInt64(f[5]),
                      !f[1].contains("/") else { throw bad("bad line: \(line)") }
                entries.append(BackupEntry(stream: f[1], bytes: size, crc: c, messages: n, lastSequence: last))
            default: throw bad("unknown line: \(line)")
            }
        }
        return entries
    }
}

/// Writes a snapshot's chunks to a file and checksums them as they come.
final class SnapshotSink: @unchecked Sendable {
    private let lock = NSLock()
    private let file: FileHandle
    private(set) var bytes: Int64 = 0
    private(set) var crc: UInt32 = 0

    init(file: FileHandle) { self.file = file }

    func write(_ chunk: ByteBuffer) throws {
        lock.lock()
        defer { lock.unlock() }
        let data = Data(chunk.readableBytesView)
        try file.write(contentsOf: data)
        crc = data.withUnsafeBytes { jelly_crc32c(crc, $0.baseAddress, $0.count) }
        bytes += Int64(data.count)
    }

    func finish() throws {
        try file.synchronize()
        try file.close()
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

extension Array where Element == UInt8 {
    func lastRange(of needle: [UInt8]) -> Range<Int>? {
        guard count >= needle.count else { return nil }
        var i = count - needle.count
        while i >= 0 {
            if Array(self[i..<(i + needle.count)]) == needle { return i..<(i + needle.count) }
            i -= 1
        }
        return nil
    }
}
