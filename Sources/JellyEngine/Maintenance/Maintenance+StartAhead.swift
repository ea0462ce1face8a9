import JellyCore

/// Starting the log's next segment ahead of the committer's need (the hand-over itself is the
/// pure state machine `StartAhead`).
extension Maintenance {
    /// Asks the worker to start log segment `id` now (`startSegment`), so that the committer's
    /// next rotation only seals: renaming a file, writing a header and syncing the file and the
    /// directory take a millisecond or more, during which every writer would wait.
    func startAhead(id: UInt32) {
        work.withLock { $0.startAhead.want(id) }
        wake.signal()
    }

    /// Log segment `id` if the worker started it (waiting if it is starting it now); otherwise
    /// nil, and the caller starts it itself.
    func takeStarted(id: UInt32) -> StartedSegment? {
        while true {
            switch work.withLock({ $0.startAhead.take(id) }) {
            case .ready(let segment): return segment
            case .startItYourself: return nil
            case .wait: startDone.wait()
            }
        }
    }

    /// Starts the segment the committer asked for, if any.
    func startWanted() {
        guard let id = work.withLock({ $0.startAhead.beginStart() }) else { return }
        let made = try? startSegment(id: id)
        let waiters = work.withLock { $0.startAhead.finish(made) }
        for _ in 0..<waiters { startDone.signal() }
    }

    /// Makes a spare file (recycled, or zero-filled now) log segment `id`: header written and
    /// synced, then renamed into place and the directory synced. It holds no block yet;
    /// recovery reuses such a segment.
    ///
    /// The header is durable before the file takes the segment's name, so a file under a
    /// segment's name always names that segment: a recycled spare still holds the header and
    /// the blocks of the segment it was, which must never be read as this one's.
    func startSegment(id: UInt32) throws -> StartedSegment {
        let prepared = try work.withLock({ $0.prepared.popLast() }) ?? prepareFile()
        wake.signal()
        let staging = try shared.storage.openLog(path: prepared, create: false, direct: configuration.directIO)
        do {
            defer { staging.close() }
            let floor = shared.state.withLock { $0.nextVersion }
            let header = AlignedBuffer(capacity: Format.segmentHeaderBytes)
            SegmentHeader(segmentID: UInt64(id), versionFloor: floor, createdAtMilliseconds: configuration.clock.nowMilliseconds()).encode(into: header.pointer)
            try staging.write(header.bytes(Format.segmentHeaderBytes), at: 0)
            try staging.sync()
        }
        let path = shared.path(segmentFileName(id))
        try shared.storage.rename(prepared, path)
        try shared.storage.syncDirectory(shared.directory)
        let file = try shared.storage.openLog(path: path, create: false, direct: configuration.directIO)
        return StartedSegment(id: id, path: path, file: file)
    }
}

/// A log segment started ahead of its use (`Maintenance.startSegment`).
struct StartedSegment {
    let id: UInt32
    let path: String
    let file: any StorageFile
}
