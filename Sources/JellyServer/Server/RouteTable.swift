import HTTPTypes

/// A route's path as the router takes it (`/v1/partitions/:partition/objects/:key`): literal
/// segments and `:name` parameters, each one non-empty path segment.
struct RoutePattern: Sendable {
    let text: String
    private let parts: [Part]
    private enum Part: Sendable { case literal(String), parameter }

    init(_ text: String) {
        self.text = text
        parts = text.split(separator: "/").map { $0.hasPrefix(":") ? .parameter : .literal(String($0)) }
    }

    /// The parameters' raw (still percent-encoded) values when `path` is exactly this route
    /// (no query, no fragment, no trailing slash), else nil.
    func match(_ path: String) -> [Substring]? {
        var captures: [Substring] = []
        return scan(path) { captures.append($0) } ? captures : nil
    }

    /// `match` for a pattern of two parameters (the direct PUT's partition and key), without
    /// allocating: it runs for every PUT.
    func matchTwo(_ path: String) -> (Substring, Substring)? {
        var first: Substring?
        var second: Substring?
        guard scan(path, { if first == nil { first = $0 } else { second = $0 } }), let first, let second else { return nil }
        return (first, second)
    }

    /// Walks `path` against the pattern, handing each parameter's segment to `visit`; false
    /// when the path is not this route.
    private func scan(_ path: String, _ visit: (Substring) -> Void) -> Bool {
        var rest = Substring(path)
        for part in parts {
            guard rest.utf8.first == UInt8(ascii: "/") else { return false }
            rest = rest.dropFirst()
            let end = rest.utf8.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
            let segment = rest[..<end]
            switch part {
            case .literal(let literal): guard segment == literal else { return false }
            case .parameter:
                guard !segment.isEmpty else { return false }
                visit(segment)
            }
            rest = rest[end...]
        }
        return rest.isEmpty
    }
}

/// Every route of HTTP API v1, in one table (docs/http-api.md): the router registers each, and
/// the direct PUT path (`DirectPutHandler`) matches `putObject` with the same pattern. The raw
/// value is the route's name in metrics and request logs.
enum Route: String, CaseIterable, Sendable {
    case putObject = "put_object"
    case getObject = "get_object"
    case deleteObject = "delete_object"
    case listObjects = "list_objects"
    case batch
    case acquireLock = "acquire_lock"
    case inspectLock = "inspect_lock"
    case releaseLock = "release_lock"
    case renewLock = "renew_lock"
    case transferLock = "transfer_lock"
    case breakLock = "break_lock"
    case changes
    case sync
    case watch
    case appendFrame = "append_frame"
    case readFrames = "read_frames"
    case trimStream = "trim_stream"
    case health
    case openAPI = "openapi"
    case metrics
    case backup
    case listPartitions = "list_partitions"
    case me
    case preview
    case console
    case consoleFile = "console_file"

    static let object = RoutePattern("/v1/partitions/:partition/objects/:key")
    static let objects = RoutePattern("/v1/partitions/:partition/objects")
    static let batchPath = RoutePattern("/v1/partitions/:partition/batch")
    static let lock = RoutePattern("/v1/partitions/:partition/lock")
    static let lockRenew = RoutePattern("/v1/partitions/:partition/lock/renew")
    static let lockTransfer = RoutePattern("/v1/partitions/:partition/lock/transfer")
    static let lockBreak = RoutePattern("/v1/partitions/:partition/lock/break")
    static let changesPath = RoutePattern("/v1/partitions/:partition/changes")
    static let syncPath = RoutePattern("/v1/partitions/:partition/sync")
    static let watchPath = RoutePattern("/v1/watch")
    static let streamPath = RoutePattern("/v1/partitions/:partition/streams/:stream")
    static let healthPath = RoutePattern("/v1/health")
    static let openAPIPath = RoutePattern("/v1/openapi.yaml")
    static let metricsPath = RoutePattern("/metrics")
    static let backupPath = RoutePattern("/v1/admin/backup")
    static let partitionsPath = RoutePattern("/v1/partitions")
    static let mePath = RoutePattern("/v1/me")
    static let previewPath = RoutePattern("/v1/partitions/:partition/objects/:key/preview")
    static let consolePath = RoutePattern("/console")
    static let consoleFilePath = RoutePattern("/console/:file")

    var method: HTTPRequest.Method {
        switch self {
        case .putObject: .put
        case .getObject, .listObjects, .inspectLock, .changes, .watch, .readFrames, .health, .openAPI, .metrics, .listPartitions, .me, .preview, .console, .consoleFile: .get
        case .deleteObject, .releaseLock, .trimStream: .delete
        case .batch, .acquireLock, .renewLock, .transferLock, .breakLock, .sync, .appendFrame, .backup: .post
        }
    }

    var pattern: RoutePattern {
        switch self {
        case .putObject, .getObject, .deleteObject: Route.object
        case .listObjects: Route.objects
        case .batch: Route.batchPath
        case .acquireLock, .inspectLock, .releaseLock: Route.lock
        case .renewLock: Route.lockRenew
        case .transferLock: Route.lockTransfer
        case .breakLock: Route.lockBreak
        case .changes: Route.changesPath
        case .sync: Route.syncPath
        case .watch: Route.watchPath
        case .appendFrame, .readFrames, .trimStream: Route.streamPath
        case .health: Route.healthPath
        case .openAPI: Route.openAPIPath
        case .metrics: Route.metricsPath
        case .backup: Route.backupPath
        case .listPartitions: Route.partitionsPath
        case .me: Route.mePath
        case .preview: Route.previewPath
        case .console: Route.consolePath
        case .consoleFile: Route.consoleFilePath
        }
    }
}
