extension JellyStore {
    /// The recovery recipe of docs/streams.md, for a game server taking over an entity: takes
    /// the lock, loads the objects, and reads the frames of `stream` built on the save of
    /// `baseKey` (frames whose base version is that object's current version, or 0 when there
    /// is no such object). The world is the save plus those frames, in order: at most the frames
    /// the previous holder had not handed to Jelly are missing.
    public func resume(
        partition: String, owner: String, ttlMilliseconds: Int64, stream: String, baseKey: String
    ) async throws -> (lock: LockInfo, objects: [StoredObject], frames: [Frame]) {
        let (lock, objects) = try await acquireLockAndLoad(partition: partition, owner: owner, ttlMilliseconds: ttlMilliseconds)
        let base = objects.first { $0.key == baseKey }?.version ?? 0
        let frames = try await readAllFrames(partition: partition, stream: stream).filter { $0.baseVersion == base }
        return (lock, objects, frames)
    }

    /// Every frame the stream keeps from sequence `from` on, oldest first, read a page
    /// (`limits.framesPageMax`) at a time. For a recorded match or a resume; a stream kept long
    /// is large (its retention bounds it), so a reader that can work page by page should.
    public func readAllFrames(partition: String, stream: String, from: UInt64 = 0) async throws -> [Frame] {
        var frames: [Frame] = []
        var cursor = from
        while true {
            let page = try await readFrames(partition: partition, stream: stream, from: cursor, limit: limits.framesPageMax)
            if page.frames.isEmpty { return frames }
            frames += page.frames
            cursor = page.next
        }
    }
}
