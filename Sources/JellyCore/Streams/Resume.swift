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
        var frames: [Frame] = []
        var from: UInt64 = 0
        while true {
            let page = try await readFrames(partition: partition, stream: stream, from: from, limit: limits.framesPageMax)
            if page.frames.isEmpty { break }
            frames += page.frames.filter { $0.baseVersion == base }
            from = page.next
        }
        return (lock, objects, frames)
    }
}
