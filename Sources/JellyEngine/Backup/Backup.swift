import JellyCore

/// Online backup of the embedded store (docs/operations.md, grammar in docs/format.md).
///
/// Sealed segments never change and the active one is only appended to, so a backup is a
/// *snapshot of lengths*: under the engine's lock, every indexed segment and how far its data
/// goes (the active segment's applied end; a sealed one's data end; the compaction output's
/// synced end) and the highest applied version. Every save acknowledged up to that version is
/// inside those lengths and nothing half: blocks are applied whole. Compaction waits while a
/// backup copies (it would remove the inputs being copied); saves go on at full rate.
///
/// A backup directory holds the copied files and `BACKUP`, the manifest (names, lengths,
/// CRC-32C of each), written last. A second backup into the same directory copies only what is
/// new: a file whose header matches and whose length grew gets only its new bytes (its CRC
/// continued from the manifest's); files no longer in the store are deleted after the new
/// manifest is in place, so the directory is a whole backup at every moment.
public struct BackupManifest: Codable, Sendable, Equatable {
    public static let fileName = "BACKUP"
    public static let formatVersion = 1

    public struct File: Codable, Sendable, Equatable {
        public var name: String
        public var bytes: Int64
        public var crc32c: UInt32
    }

    public var format: Int
    /// The store's epoch when the backup was taken (a restore makes a new one).
    public var epoch: String
    public var createdAtMilliseconds: Int64
    /// Every write acknowledged at or below this version is in the backup; none above it.
    public var version: UInt64
    /// The backup can be restored to any version from this one up to `version`: the log holds
    /// every record since (compaction, which drops superseded records, has not run since, nor
    /// before it in the same process).
    public var restorableFrom: UInt64 = 0
    public var segmentBytes: Int
    public var files: [File]
}

enum BackupFiles {
    static let chunkBytes = 1 << 20

    /// Reads `BACKUP` (nil when there is none). The grammar is in docs/format.md.
    static func decodeManifest(_ storage: any StorageSystem, directory: String) throws -> BackupManifest? {
        let path = directory + "/" + BackupManifest.fileName
        guard storage.fileExists(path) else { return nil }
        let bytes = try SegmentFiles.readAll(storage, path: path)
        func bad(_ why: String) -> JellyError {
            JellyError(.corruption, "\(path) is not a readable backup manifest: \(why); the backup is damaged (take a new one)")
        }
        guard let endAt = findLast(bytes, Array("end ".utf8)), endAt == 0 || bytes[endAt - 1] == 0x0A else { throw bad("no end line") }
        let body = Array(bytes[..<endAt])
        let endLine = String(decoding: bytes[(endAt + 4)...], as: UTF8.self).trimmingWhitespace()
        guard let stated = UInt32(endLine.dropFirst(2), radix: 16), endLine.hasPrefix("0x") else { throw bad("bad end line") }
        let actual = body.withUnsafeBytes { crc32c($0) }
        guard stated == actual else { throw bad("its checksum is \(hexCRC(actual)), its end line says \(hexCRC(stated))") }
        var m = BackupManifest(format: 0, epoch: "", createdAtMilliseconds: 0, version: 0, segmentBytes: 0, files: [])
        for (n, line) in String(decoding: body, as: UTF8.self).split(separator: "\n").enumerated() {
            let f = line.split(separator: " ").map(String.init)
            switch (f.first ?? "", f.count) {
            case ("jelly-backup", 2) where n == 0:
                guard let v = Int(f[1]), v == BackupManifest.formatVersion else {
                    throw JellyError(.corruption, "\(path) is backup format \(f[1]); this jelly reads format \(BackupManifest.formatVersion)")
                }
                m.format = v
            case ("epoch", 2): m.epoch = f[1]
            case ("created-at-ms", 2): m.createdAtMilliseconds = Int64(f[1]) ?? 0
            case ("version", 2): guard let v = UInt64(f[1]) else { throw bad("bad version line") }; m.version = v
            case ("restorable-from", 2): guard let v = UInt64(f[1]) else { throw bad("bad restorable-from line") }; m.restorableFrom = v
            case ("segment-bytes", 2): guard let v = Int(f[1]) else { throw bad("bad segment-bytes line") }; m.segmentBytes = v
            case ("file", 4):
                guard let size = Int64(f[2]), let crc = UInt32(f[3].dropFirst(2), radix: 16), !f[1].contains("/") else { throw bad("bad file line \(n + 1)") }
                m.files.append(BackupManifest.File(name: f[1], bytes: size, crc32c: crc))
            default: throw bad("unknown line \(n + 1)")
            }
        }
        guard m.format == BackupManifest.formatVersion, m.segmentBytes > 0 else { throw bad("no format or segment-bytes line") }
        if m.restorableFrom == 0 || m.restorableFrom > m.version { m.restorableFrom = m.version }
        return m
    }

    static func encodeManifest(_ m: BackupManifest) -> [UInt8] {
        var text = "jelly-backup \(m.format)\nepoch \(m.epoch)\ncreated-at-ms \(m.createdAtMilliseconds)\nversion \(m.version)\nrestorable-from \(m.restorableFrom)\nsegment-bytes \(m.segmentBytes)\n"
        for f in m.files { text += "file \(f.name) \(f.bytes) \(hexCRC(f.crc32c))\n" }
        var bytes = Array(text.utf8)
        let crc = bytes.withUnsafeBytes { crc32c($0) }
        bytes += Array("end \(hexCRC(crc))\n".utf8)
        return bytes
    }

    private static func findLast(_ bytes: [UInt8], _ needle: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var i = bytes.count - needle.count
        while i >= 0 {
            if Array(bytes[i..<(i + needle.count)]) == needle { return i }
            i -= 1
        }
        return nil
    }

    /// Copies bytes [from, to) of `source` into `target` at the same offsets, continuing `crc`
    /// (the CRC-32C of the target's first `from` bytes). Returns the CRC of the first `to` bytes.
    ///
    /// With `direct` (segments: their lengths and offsets are whole pages), both files bypass the
    /// page cache: a backup of a large store neither evicts the values the store serves from
    /// memory nor leaves gigabytes of dirty pages whose writeback would stall the log's syncs.
    static func copy(
        _ storage: any StorageSystem, from source: String, to target: String, range: Range<Int64>, crc: UInt32,
        buffer: UnsafeMutableRawBufferPointer, direct: Bool = false, progress: (Int64) -> Void
    ) throws -> UInt32 {
        let aligned = range.lowerBound % Int64(storageAlignment) == 0 && range.upperBound % Int64(storageAlignment) == 0
        let useDirect = direct && aligned
        let input = useDirect ? try storage.openLog(path: source, create: false, direct: true) : try storage.openRead(path: source)
        defer { input.close() }
        if range.lowerBound == 0 && storage.fileExists(target) { try storage.remove(target) }
        let output = useDirect ? try storage.openLog(path: target, create: true, direct: true) : try storage.openWrite(path: target, truncate: range.lowerBound == 0)
        defer { output.close() }
        var crc = crc
        var at = range.lowerBound
        while at < range.upperBound {
            let want = Int(min(Int64(buffer.count), range.upperBound - at))
            let n = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: at)
            guard n == want else {
                throw JellyError(.io, "\(source) ended at \(at + Int64(n)) bytes while \(range.upperBound) were to be copied")
            }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            try output.write(chunk, at: at)
            if let base = chunk.baseAddress { crc = crc32c(crc, base, n) }
            at += Int64(n)
            progress(Int64(n))
        }
        if try output.size() > range.upperBound { try output.truncate(to: range.upperBound) }
        try output.sync()
        return crc
    }

    /// CRC-32C of a file's first `bytes` bytes (nil when it is shorter).
    static func checksum(_ storage: any StorageSystem, path: String, bytes: Int64, buffer: UnsafeMutableRawBufferPointer) throws -> UInt32? {
        let file = try storage.openRead(path: path)
        defer { file.close() }
        var crc: UInt32 = 0
        var at: Int64 = 0
        while at < bytes {
            let want = Int(min(Int64(buffer.count), bytes - at))
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: at)
            if n < want { return nil }
            if let base = buffer.baseAddress { crc = crc32c(crc, base, n) }
            at += Int64(n)
        }
        return crc
    }

    static func headerBytes(_ storage: any StorageSystem, path: String) -> [UInt8]? {
        guard let file = try? storage.openRead(path: path) else { return nil }
        defer { file.close() }
        var bytes = [UInt8](repeating: 0, count: Format.segmentHeaderUsedBytes)
        guard let n = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }), n == bytes.count else { return nil }
        return bytes
    }
}

func hexCRC(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

/// One file of a backup snapshot: the store's file, how much of it.
struct SnapshotFile {
    var name: String
    var bytes: Int64
    /// Segments change only by appends past `bytes`; hints never change.
    var isSegment: Bool
}
