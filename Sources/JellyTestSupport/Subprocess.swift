import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process of a test, started with `posix_spawn` directly.
///
/// Not Foundation's `Process`, for two reasons found in CI:
/// - `Process.run()` on Linux finds the highest open descriptor by reading `/proc/self/fd` and
///   copies each entry's whole 256-byte `d_name`; when the test process holds about 1,350
///   descriptors (the conformance suite opens a few hundred stores at once) the directory
///   buffer is full and the copy of the last entry reads past the buffer's end: SIGSEGV in
///   memcpy, the whole test run lost. Here the child closes every descriptor above 2 with
///   `posix_spawn_file_actions_addclosefrom_np`, and nothing reads `/proc/self/fd`.
/// - `waitUntilExit()` could miss a child's exit while other tests started processes, and
///   spin forever. Here the exit is asked of the kernel (`waitpid`).
///
/// Standard streams are `/dev/null` unless asked for: `input: true` gives `standardInput` (the
/// write end of a pipe), `output: .pipe` gives `standardOutput` (the read end), `error: .pipe`
/// gives `standardError`, `error: .standardOutput` sends standard error into the same pipe as
/// standard output.
///
/// `@unchecked Sendable`: `status` is read and written under `lock`; the rest is set in `init`.
public final class Subprocess: @unchecked Sendable {
    public enum Output: Sendable {
        case discard
        case pipe
        /// Standard error only: into the same pipe as standard output.
        case standardOutput
    }

    public let processIdentifier: pid_t
    public let standardInput: FileHandle?
    public let standardOutput: FileHandle?
    public let standardError: FileHandle?

    private let lock = NSLock()
    private var status: Int32?

    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        currentDirectory: String? = nil, input: Bool = false, output: Output = .discard, error: Output = .discard
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        // The child's ends are closed here once it has them; the parent's ends are returned.
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        func makePipe() throws -> (read: Int32, write: Int32) {
            // No O_CLOEXEC needed: every child closes all descriptors above 2 (below).
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw ConformanceFailure("pipe2 failed: \(String(cString: strerror(errno)))") }
            return (fds[0], fds[1])
        }

        if input {
            let p = try makePipe()
            childEnds.append(p.read)
            posix_spawn_file_actions_adddup2(&actions, p.read, 0)
            standardInput = FileHandle(fileDescriptor: p.write, closeOnDealloc: true)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            standardInput = nil
        }
        var outputWriteEnd: Int32?
        switch output {
        case .pipe, .standardOutput:
            let p = try makePipe()
            childEnds.append(p.write)
            outputWriteEnd = p.write
            posix_spawn_file_actions_adddup2(&actions, p.write, 1)
            standardOutput = FileHandle(fileDescriptor: p.read, closeOnDealloc: true)
        case .discard:
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            standardOutput = nil
        }
        switch error {
        case .pipe:
            let p = try makePipe()
            childEnds.append(p.write)
            posix_spawn_file_actions_adddup2(&actions, p.write, 2)
            standardError = FileHandle(fileDescriptor: p.read, closeOnDealloc: true)
        case .standardOutput:
            guard let outputWriteEnd else { throw ConformanceFailure("error: .standardOutput needs output: .pipe") }
            posix_spawn_file_actions_adddup2(&actions, outputWriteEnd, 2)
            standardError = nil
        case .discard:
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            standardError = nil
        }
        try Self.closeFrom(3, in: &actions)
        if let currentDirectory { try Self.changeDirectory(to: currentDirectory, in: &actions) }

        // Its own process group (as Foundation's did: a ^C at the terminal goes to the tests,
        // which kill their children), and no signal blocked that the spawning thread blocked.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = (environment ?? environmentAtStart).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ConformanceFailure("could not start \(executable): \(String(cString: strerror(result)))")
        }
        processIdentifier = pid
    }

    // glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+) and `…_addchdir_np` (2.29+),
    // looked up at run time: Swift's Glibc module does not declare them.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    nonisolated(unsafe) private static let closeFromSymbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
    nonisolated(unsafe) private static let changeDirectorySymbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np")

    private static func closeFrom(_ fd: Int32, in actions: inout posix_spawn_file_actions_t) throws {
        guard let closeFromSymbol else {
            throw ConformanceFailure("this libc has no posix_spawn_file_actions_addclosefrom_np: glibc 2.34 or later is needed")
        }
        let result = unsafeBitCast(closeFromSymbol, to: CloseFrom.self)(&actions, fd)
        guard result == 0 else { throw ConformanceFailure("addclosefrom_np: \(String(cString: strerror(result)))") }
    }

    private static func changeDirectory(to path: String, in actions: inout posix_spawn_file_actions_t) throws {
        guard let changeDirectorySymbol else {
            throw ConformanceFailure("this libc has no posix_spawn_file_actions_addchdir_np: glibc 2.29 or later is needed")
        }
        let result = unsafeBitCast(changeDirectorySymbol, to: ChangeDirectory.self)(&actions, path)
        guard result == 0 else { throw ConformanceFailure("addchdir_np \(path): \(String(cString: strerror(result)))") }
    }

    /// Whether the child has not exited yet (reaps it when it has).
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return reapLocked() == nil
    }

    private func reapLocked() -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        let r = waitpid(processIdentifier, &raw, WNOHANG)
        if r == -1 && errno == ECHILD {
            // Reaped elsewhere: gone, its status unknown. (Waiting on would spin for ever.)
            status = -1
            return status
        }
        guard r == processIdentifier else { return nil }
        // Exit code, or the signal that ended it (as Foundation's `terminationStatus`).
        let signal = raw & 0x7f
        status = signal == 0 ? (raw >> 8) & 0xff : signal
        return status
    }

    /// Waits for the child to exit; its exit code, or the number of the signal that ended it.
    @discardableResult
    public func waitUntilExit() -> Int32 {
        while true {
            if let s = waitUntilExit(seconds: 3_600) { return s }
        }
    }

    /// Waits up to `seconds` for the child to exit; its status, or nil if it still runs.
    public func waitUntilExit(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let s = lock.withLock({ reapLocked() }) { return s }
            usleep(2_000)
        }
        return nil
    }

    /// The exit status; the child must have exited (`waitUntilExit`).
    public var terminationStatus: Int32 {
        lock.withLock { reapLocked() } ?? -1
    }

    /// Sends `signal` unless the child was already reaped (its pid may belong to another
    /// process by then).
    public func send(_ signal: Int32) {
        lock.lock()
        defer { lock.unlock() }
        if status == nil { kill(processIdentifier, signal) }
    }

    public func terminate() { send(SIGTERM) }
}

/// The environment children get unless a test gives one: a copy taken once, so no start reads
/// the C `environ` while another thread's `setenv` may be changing it.
let environmentAtStart: [String: String] = ProcessInfo.processInfo.environment

/// Reads a descriptor to its end on a thread of its own, `read(2)` by `read(2)`.
///
/// Not `FileHandle.readabilityHandler`: its `availableData` traps on EINTR.
/// `@unchecked Sendable`: `collected` and `ended` are read and written under `lock`.
public final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [UInt8] = []
    private var ended = false
    private let handle: FileHandle

    /// Starts reading `handle` (kept open until the end is read).
    public init(_ handle: FileHandle) {
        self.handle = handle
        let thread = Thread { [self] in self.readToEnd() }
        thread.name = "test-output"
        thread.start()
    }

    private func readToEnd() {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            lock.lock()
            if n > 0 { collected.append(contentsOf: buffer[..<n]) } else { ended = true }
            lock.unlock()
            if n <= 0 { return }
        }
    }

    public var bytes: [UInt8] { lock.withLock { collected } }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Whether the writer closed its end (the child and everything it started have exited).
    public var isAtEnd: Bool { lock.withLock { ended } }

    /// Waits for the end of the stream, up to `seconds`; the bytes read.
    @discardableResult
    public func waitForEnd(seconds: Double = 60) -> [UInt8] {
        let deadline = Date().addingTimeInterval(seconds)
        while !isAtEnd && Date() < deadline { usleep(2_000) }
        return bytes
    }
}
