import JellyCore

/// Streams (docs/streams.md) on the embedded store: the lease is checked under the store's
/// lock and the frames queued to the stream log (`FrameLog`) while it is held, so a frame
/// accepted before a transfer is ordered before every frame of the new holder.
extension EmbeddedStore {
    @discardableResult
    public func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool
    ) async throws -> [UInt64] {
        try await withUnsafeThrowingContinuation { continuation in
            appendFrames(partition: partition, stream: stream, frames, lockToken: lockToken, retention: retention, durable: durable) {
                continuation.resume(with: $0)
            }
        }
    }

    public func appendFrames(
        partition: String, stream: String, _ frames: [FrameInput], lockToken: LockToken?, retention: StreamRetention?, durable: Bool,
        completion: @escaping @Sendable (Result<[UInt64], any Error>) -> Void
    ) {
        do {
            try StreamRules.validateAppend(partition: partition, stream: stream, frames, retention: retention, limits: limits)
        } catch {
            return completion(.failure(error))
        }
        let key = StreamKey(partition: ByteName(partition), stream: ByteName(stream))
        let log = self.frames
        let refusal = checkedLease(partition: partition, key.partition, lockToken) {
            log.enqueueFrames(key, frames, retention: retention, durable: durable) { completion($0.mapError { $0 }) }
        }
        if let refusal { completion(.failure(refusal)) }
    }

    /// Appends are queued in call order under the stream log's lock.
    public var appendsKeepCallOrder: Bool { true }

    public func readFrames(partition: String, stream: String, from: UInt64, limit: Int) async throws -> FramePage {
        try StreamRules.validateRead(partition: partition, stream: stream, limit: limit, limits: limits)
        let key = StreamKey(partition: ByteName(partition), stream: ByteName(stream))
        let limit = StreamRules.pageLimit(limit, limits: limits)
        let log = self.frames
        return try await readers.run { try log.read(key, from: from, limit: limit) }
    }

    public func waitForFrames(partition: String, stream: String, after: UInt64, timeoutMilliseconds: Int) async throws -> Bool {
        try StreamRules.validateWait(partition: partition, stream: stream, timeoutMilliseconds: timeoutMilliseconds, limits: limits)
        let key = StreamKey(partition: ByteName(partition), stream: ByteName(stream))
        let log = self.frames
        return await log.waiters.wait(partition: key.waitName, after: after, timeout: .milliseconds(timeoutMilliseconds)) {
            try log.last(key)
        }
    }

    public func trimStream(partition: String, stream: String, before: UInt64?, lockToken: LockToken?) async throws {
        try StreamRules.validateNames(partition: partition, stream: stream, limits: limits)
        let key = StreamKey(partition: ByteName(partition), stream: ByteName(stream))
        let log = self.frames
        let _: [UInt64] = try await withUnsafeThrowingContinuation { continuation in
            let refusal = checkedLease(partition: partition, key.partition, lockToken) {
                log.enqueueTrim(key, before: before) { continuation.resume(with: $0.mapError { $0 }) }
            }
            if let refusal { continuation.resume(throwing: refusal) }
        }
    }

    /// Runs `body` under the store's lock if the lock rule of writes lets `token` write now;
    /// returns the refusal (the rule's, or `body`'s).
    private func checkedLease(partition: String, _ pk: ByteName, _ token: LockToken?, _ body: () -> JellyError?) -> JellyError? {
        let requireLocks = configuration.requireLocks
        let clock = self.clock
        return shared.state.withLock { state -> JellyError? in
            if let blocker = state.writeBlocker { return blocker }
            if let error = LeaseRules.checkWrite(token: token, current: state.index.leases[pk], partition: partition, now: clock.nowMilliseconds(), requireLocks: requireLocks) {
                return error
            }
            return body()
        }
    }

    /// Calls `listener` with the sequence of each later append to the stream (on the writer's
    /// thread: it must not block), until stopped. For a tailing socket.
    public func listenForFrames(partition: String, stream: String, _ listener: @escaping @Sendable (UInt64) -> Void) -> ChangeListener {
        frames.waiters.listen(partition: StreamKey(partition: ByteName(partition), stream: ByteName(stream)).waitName, listener)
    }
}
