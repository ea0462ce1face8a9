#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import JellyCore
import JellyEngine
import Synchronization

/// A fresh directory under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "jelly-test") throws {
        let base = (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp") + "/\(prefix)-XXXXXX"
        var template = Array(base.utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ buf in buf.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw JellyError(.io, "mkdtemp \(base) failed")
        }
        path = String(cString: made)
    }

    public func remove() { removeTree(path) }
}

/// The `jelly` executable built beside the test bundle (or under .build/debug), for tests that
/// run real processes.
public func jellyExecutablePath() throws -> String {
    var candidates: [String] = []
    if let argv0 = CommandLine.arguments.first, let slash = argv0.lastIndex(of: "/") {
        candidates.append(String(argv0[..<slash]) + "/jelly")
    }
    var cwd = [CChar](repeating: 0, count: 4096)
    if getcwd(&cwd, cwd.count) != nil {
        let bytes = cwd.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        candidates.append(String(decoding: bytes, as: UTF8.self) + "/.build/debug/jelly")
    }
    for path in candidates where access(path, X_OK) == 0 { return path }
    throw JellyError(.io, "the jelly executable was not found in \(candidates); run `swift build` first")
}

/// Removes a directory tree (tests only).
public func removeTree(_ path: String) {
    guard let dir = opendir(path) else { unlink(path); return }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
        if name != "." && name != ".." { names.append(name) }
    }
    closedir(dir)
    for name in names {
        let child = path + "/" + name
        var st = stat()
        if lstat(child, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
    }
    rmdir(path)
}

extension EmbeddedStoreConfiguration {
    /// A configuration for tests: small segments (so seals, hints and compaction happen with
    /// little data), small limits, a manual clock, no background compaction unless asked.
    public static func testing(directory: String, clock: ManualClock, storage: any StorageSystem = PosixStorage()) -> EmbeddedStoreConfiguration {
        var config = EmbeddedStoreConfiguration(directory: directory)
        config.clock = clock
        config.storage = storage
        config.segmentBytes = 256 << 10
        config.limits.valueBytesMax = 16 << 10
        config.limits.batchBytesMax = 64 << 10
        config.groupCommitBytesMax = 64 << 10
        config.compaction.automatic = false
        config.compaction.garbageBytesAllowance = 0
        config.readThreads = 2
        return config
    }
}

extension EmbeddedStoreConfiguration {
    /// A test configuration over a fault-injecting storage layer (buffered writes, so the layer
    /// sees every write before the disk does), and that layer.
    public static func faultInjected(directory: String, clock: ManualClock) -> (EmbeddedStoreConfiguration, FaultInjectingStorage) {
        let fault = FaultInjectingStorage()
        var config = EmbeddedStoreConfiguration.testing(directory: directory, clock: clock, storage: fault)
        config.directIO = false
        return (config, fault)
    }
}

/// Runs the conformance suite (and other tests) against the embedded engine.
public final class EmbeddedStoreHarness: ConformanceHarness, @unchecked Sendable {
    // `current` is replaced only by `restart`, which tests call from one task at a time.
    public let clock: ManualClock
    public let directory: TemporaryDirectory
    public let configuration: EmbeddedStoreConfiguration
    private var current: EmbeddedStore

    public init(configure: (inout EmbeddedStoreConfiguration) -> Void = { _ in }) throws {
        clock = ManualClock()
        directory = try TemporaryDirectory()
        var config = EmbeddedStoreConfiguration.testing(directory: directory.path, clock: clock)
        configure(&config)
        configuration = config
        current = try EmbeddedStore.open(config)
    }

    public var store: any JellyStore { current }
    public var embedded: EmbeddedStore { current }

    public func restart() async throws {
        try await current.close()
        current = try EmbeddedStore.open(configuration)
    }

    /// Opens the store again after `crashForTesting` (no close first).
    public func reopenAfterCrash() async throws {
        current = try EmbeddedStore.open(configuration)
    }

    /// Closes the store, leaving it closed (reopen with `reopenAfterCrash`).
    public func close() async throws {
        try await current.close()
    }

    /// Closes the store and removes its directory.
    public func finish() async {
        try? await current.close()
        directory.remove()
    }
}
