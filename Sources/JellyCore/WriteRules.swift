/// The parts of the write contract that do not depend on how a backend stores data: argument
/// checks before anything is read, and the condition check against an object's current version.
/// Both backends call these, so their errors read the same.
public enum WriteRules {
    /// Checks a batch's shape: the partition name, at least one operation (or a release), the
    /// operation count, a token for a release. Keys and values are checked by `validate(_:limits:)`.
    public static func validateBatch(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool, limits: JellyLimits
    ) throws {
        try Names.validate(partition, as: .partition, maxBytes: limits.partitionBytesMax)
        if operations.isEmpty && !releaseLock {
            throw JellyError(.invalidArgument, "a write needs at least one operation")
        }
        if operations.count > limits.batchOperationsMax {
            throw JellyError(.tooLarge, "a batch has \(operations.count) operations; the limit is \(limits.batchOperationsMax)")
        }
        if releaseLock && lockToken == nil {
            throw JellyError(.invalidArgument, "releasing the lock with a write needs the lock's token")
        }
    }

    /// Checks one operation: its key, its value's size, its content type.
    public static func validate(_ operation: WriteOperation, limits: JellyLimits, allowSystemKeys: Bool = false) throws {
        if !(allowSystemKeys && SystemKeys.isSystem(operation.key)) {
            try Names.validate(operation.key, as: .key, maxBytes: limits.keyBytesMax)
        }
        if case .put(let key, let value, let contentType, _, _) = operation {
            if value.count > limits.valueBytesMax {
                throw JellyError(.tooLarge, "value of key \(Names.quoted(key)) is \(value.count) bytes; the limit is \(limits.valueBytesMax) bytes")
            }
            if let contentType { try Names.validateContentType(contentType, maxBytes: limits.contentTypeBytesMax) }
        }
    }

    /// Every argument check of a write, the same on every backend, before anything is read or
    /// queued: the batch's shape, each operation, no key named twice, and the batch's size as
    /// `batchBytes` counts it. `allowSystemKeys` is for a store's own records (`SystemKeys`).
    ///
    /// - Returns: the batch's size as `batchBytes` counts it (the embedded store's encoded size).
    /// - Throws: `.invalidArgument` or `.tooLarge`, naming what is wrong.
    @discardableResult
    public static func validateWrite(
        partition: String, _ operations: [WriteOperation], lockToken: LockToken?, releaseLock: Bool, limits: JellyLimits,
        allowSystemKeys: Bool = false
    ) throws -> Int {
        try validateBatch(partition: partition, operations, lockToken: lockToken, releaseLock: releaseLock, limits: limits)
        let partitionBytes = partition.utf8.count
        var total = 0
        // Byte for byte, like every name: "é" precomposed and decomposed are two keys.
        var seen = Set<ByteName>(minimumCapacity: operations.count > 1 ? operations.count : 0)
        for op in operations {
            try validate(op, limits: limits, allowSystemKeys: allowSystemKeys)
            if operations.count > 1 && !seen.insert(ByteName(op.key)).inserted { throw duplicateKeyError(op.key) }
            total += batchBytes(partitionBytes: partitionBytes, op)
        }
        if total > limits.batchBytesMax {
            throw JellyError(.tooLarge, "the batch is \(total) bytes (values, names and \(recordFramingBytes) bytes of framing per object); the limit is \(limits.batchBytesMax) bytes; write large values one at a time")
        }
        return total
    }

    /// Bytes of fixed fields per object that count toward `JellyLimits.batchBytesMax` (the
    /// embedded store's record header and trailer, docs/format.md), on every backend.
    public static let recordFramingBytes = 40

    /// What one operation counts toward `JellyLimits.batchBytesMax`: its value, key, partition
    /// and content type, plus `recordFramingBytes`. It is exactly the size of the embedded
    /// store's record for it.
    public static func batchBytes(partitionBytes: Int, _ operation: WriteOperation) -> Int {
        switch operation {
        case .put(let key, let value, let contentType, _, _):
            return recordFramingBytes + partitionBytes + key.utf8.count + (contentType ?? defaultContentType).utf8.count + value.count
        case .delete(let key, _):
            return recordFramingBytes + partitionBytes + key.utf8.count
        }
    }

    public static func duplicateKeyError(_ key: String) -> JellyError {
        JellyError(.invalidArgument, "key \(Names.quoted(key)) is named twice in one batch")
    }

    /// The error when `condition` does not hold for an object at `current` (nil: absent).
    public static func conditionError(
        _ condition: WriteCondition, current: UInt64?, key: String, partition: String
    ) -> JellyError? {
        switch condition {
        case .none:
            return nil
        case .ifVersion(let expected):
            if current == expected { return nil }
            return JellyError(
                .preconditionFailed,
                "key \(Names.quoted(key)) of partition \(Names.quoted(partition)) is at \(current.map { "version \($0)" } ?? "no version (it does not exist)"), not version \(expected); nothing was written"
            )
        case .ifAbsent:
            guard let current else { return nil }
            return JellyError(
                .preconditionFailed,
                "key \(Names.quoted(key)) of partition \(Names.quoted(partition)) already exists (version \(current)); nothing was written"
            )
        }
    }
}
