import Foundation
import JellyCore
import JellyEngine

/// The replica's durable state in an embedded store on the device: one local partition holding
/// the replica state (`state`), the server's objects (`s.` + key: the server version in 8 bytes,
/// then the value) and the pending edits (`m.` + the id in 20 digits, JSON). Every transition
/// of the replica is one atomic local batch, so a process killed at any point comes back in a
/// state the replica has been in.
struct ReplicaStorage: Sendable {
    let store: EmbeddedStore
    static let partition = "replica"
    static let stateKey = "state"

    /// Longest object key a replica holds: the store's 512 minus the local prefix.
    static let keyBytesMax = 510

    enum Change {
        case state(ReplicaState)
        case server(String, ServerObject?)
        case pending(UInt64, PendingMutation?)

        var localKey: String {
            switch self {
            case .state: return ReplicaStorage.stateKey
            case .server(let key, _): return "s." + key
            case .pending(let id, _): return ReplicaStorage.pendingKey(id)
            }
        }
    }

    static func pendingKey(_ id: UInt64) -> String {
        let digits = String(id)
        return "m." + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// Opens the local store, sized for the server's values (`serverValueBytesMax`).
    static func open(directory: String, durability: Durability, serverValueBytesMax: Int) throws -> ReplicaStorage {
        var config = EmbeddedStoreConfiguration(directory: directory)
        config.durability = durability
        config.directIO = false
        config.limits.valueBytesMax = min(256 << 20, serverValueBytesMax + 8)
        config.limits.batchBytesMax = config.limits.valueBytesMax + 4096
        config.limits.batchOperationsMax = 100_000
        // Small segments: a device holds one partition, and each segment file is allocated whole.
        config.groupCommitBytesMax = 1 << 20
        config.segmentBytes = max(4 << 20, config.limits.batchBytesMax + (1 << 20))
        config.compaction.garbageBytesAllowance = 16 << 20
        return ReplicaStorage(store: try EmbeddedStore.open(config))
    }

    func load() async throws -> (ReplicaState?, [String: ServerObject], [UInt64: PendingMutation]) {
        let lock = try await store.acquireLockAndLoad(partition: Self.partition, owner: "replica", ttlMilliseconds: 60_000)
        try await store.releaseLock(partition: Self.partition, token: lock.lock.token)
        var state: ReplicaState?
        var server: [String: ServerObject] = [:]
        var pending: [UInt64: PendingMutation] = [:]
        let decoder = JSONDecoder()
        for object in lock.objects {
            if object.key == Self.stateKey {
                state = try decoder.decode(ReplicaState.self, from: Data(object.value))
            } else if object.key.hasPrefix("s.") {
                guard object.value.count >= 8 else { throw JellyError(.corruption, "replica object \(Names.quoted(object.key)) is too short") }
                let version = object.value.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                server[String(object.key.dropFirst(2))] = ServerObject(version: version, value: ReplicaValue(Array(object.value.dropFirst(8)), contentType: object.contentType))
            } else if object.key.hasPrefix("m.") {
                let m = try decoder.decode(PendingMutation.self, from: Data(object.value))
                pending[m.id] = m
            }
        }
        return (state, server, pending)
    }

    /// Applies `changes` in one atomic, durable batch (the last change of a key wins). A change
    /// set over the local batch limit (a large pulled page) is written in parts with the state
    /// last: a crash between parts leaves server objects newer than the cursor, which the next
    /// pull writes again (it keeps the higher version), and never a cursor past what is stored.
    func commit(_ changes: [Change]) async throws {
        var order: [String] = []
        var latest: [String: Change] = [:]
        for c in changes {
            if latest.updateValue(c, forKey: c.localKey) == nil { order.append(c.localKey) }
        }
        guard !order.isEmpty else { return }
        if let i = order.firstIndex(of: Self.stateKey) { order.append(order.remove(at: i)) }
        let encoder = JSONEncoder()
        var ops: [WriteOperation] = []
        ops.reserveCapacity(order.count)
        for key in order {
            switch latest[key] {
            case .state(let s)?:
                ops.append(.put(key: key, value: [UInt8](try encoder.encode(s)), contentType: "application/json"))
            case .server(_, let object?)?:
                var bytes = [UInt8](repeating: 0, count: 8)
                for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: object.version >> (8 * UInt64(i))) }
                bytes.append(contentsOf: object.value.value)
                ops.append(.put(key: key, value: bytes, contentType: object.value.contentType))
            case .pending(_, let m?)?:
                ops.append(.put(key: key, value: [UInt8](try encoder.encode(m)), contentType: "application/json"))
            default:
                ops.append(.delete(key: key))
            }
        }
        let limits = store.limits
        let partitionBytes = Self.partition.utf8.count
        var part: [WriteOperation] = []
        var bytes = 0
        for op in ops {
            let size = WriteRules.batchBytes(partitionBytes: partitionBytes, op)
            if !part.isEmpty && (bytes + size > limits.batchBytesMax || part.count == limits.batchOperationsMax) {
                try await store.write(partition: Self.partition, part, lockToken: nil, releaseLock: false)
                part = []
                bytes = 0
            }
            part.append(op)
            bytes += size
        }
        if !part.isEmpty { try await store.write(partition: Self.partition, part, lockToken: nil, releaseLock: false) }
    }

    func close() async throws { try await store.close() }
}
