import JellyCore

/// Rebuilds the stream log's table from its files at open: every record in file order, then
/// each stream's frames sorted, cut at its floor, and held to its retention. A torn record at
/// the end of the newest file (a crash mid-write) is cut off; damage anywhere else fails the
/// open with the file and offset.
enum FrameRecovery {
    struct Result {
        var table: FrameTable
        var files: [UInt32: any StorageFile]
        /// The newest file and where its records end.
        var last: (id: UInt32, end: Int64)?
        var notes: [String]
    }

    static func recover(directory: String, storage: any StorageSystem, defaults: StreamRetention, now: Int64) throws -> Result {
        let ids = try storage.listDirectory(directory).compactMap(FrameLog.parseFileName).sorted()
        var table = FrameTable(defaults: defaults)
        var files: [UInt32: any StorageFile] = [:]
        var notes: [String] = []
        var frames: [StreamKey: [FrameEntry]] = [:]
        var floors: [StreamKey: UInt64] = [:]
        var retentions: [StreamKey: StreamRetention?] = [:]
        var last: (id: UInt32, end: Int64)?
        do {
            for (n, id) in ids.enumerated() {
                let isLast = n == ids.count - 1
                let path = directory + "/" + FrameLog.fileName(id)
                let file = try storage.openRead(path: path)
                let size = Int(try file.size())
                var bytes = [UInt8](repeating: 0, count: size)
                let read = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
                guard read == size else { throw JellyError(.io, "\(path): read \(read) of \(size) bytes") }
                let headerOK = bytes.withUnsafeBytes { FrameFormat.decodeHeader($0) } == id
                if !headerOK {
                    guard isLast else {
                        throw JellyError(.corruption, "\(path): not a stream log file (bad header); run `jelly check`, or move the file away to open the store without it")
                    }
                    // A file whose creation a crash interrupted: it held nothing yet.
                    file.close()
                    try storage.remove(path)
                    notes.append("removed \(path): its header was incomplete (a crash while it was created)")
                    continue
                }
                var offset = FrameFormat.headerBytes
                try bytes.withUnsafeBytes { raw in
                    while offset < size {
                        let record: FrameFormat.Record
                        do {
                            record = try FrameFormat.decode(raw, at: offset)
                        } catch let error as FrameFormat.DecodeError {
                            if isLast, case .truncated = error { break }
                            if isLast, case .badChecksum = error { break }
                            throw JellyError(.corruption, "\(path) at offset \(offset): stream log record is damaged (\(error)); run `jelly check`")
                        }
                        let key = StreamKey(
                            partition: ByteName(String(decoding: raw[record.partition], as: UTF8.self)),
                            stream: ByteName(String(decoding: raw[record.stream], as: UTF8.self))
                        )
                        switch record.kind {
                        case .frame:
                            frames[key, default: []].append(FrameEntry(seq: record.a, time: Int64(bitPattern: record.b), base: record.c, segment: id, offset: UInt32(offset), recordLength: UInt32(record.length)))
                            table.nextSeq = max(table.nextSeq, record.a + 1)
                        case .trim:
                            floors[key] = max(floors[key] ?? 0, record.a)
                        case .remove:
                            floors[key] = max(floors[key] ?? 0, record.a)
                            retentions[key] = .some(nil)
                        case .retain:
                            retentions[key] = StreamRetention(frames: Int(clamping: record.a), bytes: Int64(clamping: record.b), ageMilliseconds: Int64(clamping: record.c))
                        case .next:
                            table.nextSeq = max(table.nextSeq, record.a)
                        }
                        offset += record.length
                    }
                }
                if offset < size {
                    file.close()
                    let w = try storage.openWrite(path: path, truncate: false)
                    try w.truncate(to: Int64(offset))
                    try w.sync()
                    w.close()
                    notes.append("cut \(size - offset) bytes of an incomplete stream log record at the end of \(path) (a crash mid-write; those frames were never acknowledged as durable)")
                    files[id] = try storage.openRead(path: path)
                } else {
                    files[id] = file
                }
                last = (id, Int64(offset))
            }
        } catch {
            for f in files.values { f.close() }
            throw error
        }
        for (key, r) in retentions { table.streams[key, default: StreamState()].retention = r }
        for key in Set(frames.keys).union(floors.keys) {
            table.streams[key, default: StreamState()].floor = floors[key] ?? 0
            guard var list = frames[key] else { continue }
            list.sort { $0.seq < $1.seq }
            table.publish(key, list, now: now)
            table.streams[key]?.lastTime = list.last?.time ?? 0
        }
        table.expire(now: now)
        return Result(table: table, files: files, last: last, notes: notes)
    }
}
