#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CJellySystem
import JellyCore

/// The platform seam: every system call the engine makes goes through these two protocols.
/// `PosixStorage` implements them for Linux (O_DIRECT, fdatasync) and Darwin (F_NOCACHE,
/// F_FULLFSYNC); `JellyTestSupport.FaultInjectingStorage` wraps them to fail syncs and to
/// simulate power loss. The engine itself never calls the OS for file I/O.
public protocol StorageSystem: Sendable {
    /// Opens (creating if asked) a file for appending log blocks. Tries direct I/O first when
    /// `direct` is true; the returned file says whether it got it.
    func openLog(path: String, create: Bool, direct: Bool) throws -> any StorageFile
    /// Opens a file for reading (buffered).
    func openRead(path: String) throws -> any StorageFile
    /// Opens or creates a file for buffered writing (hint files, lock file).
    func openWrite(path: String, truncate: Bool) throws -> any StorageFile
    func listDirectory(_ path: String) throws -> [String]
    func makeDirectory(_ path: String) throws
    func fileExists(_ path: String) -> Bool
    func remove(_ path: String) throws
    func rename(_ from: String, _ to: String) throws
    /// Makes a directory's entries (creates, renames, removes) durable.
    func syncDirectory(_ path: String) throws
    /// Bytes free for this process on the filesystem holding `path` (nil: unknown).
    func availableBytes(_ path: String) -> Int64?
    /// Takes the exclusive lock that lets one process at a time open a store directory.
    /// The returned file holds the lock until closed.
    func lockDirectory(_ path: String) throws -> any StorageFile
}

/// An open file. Offsets and lengths of direct-I/O files must be multiples of `alignment`
/// and buffers aligned to it.
public protocol StorageFile: AnyObject, Sendable {
    var path: String { get }
    /// True when writes bypass the page cache.
    var isDirect: Bool { get }
    /// Why direct I/O is off, when it was asked for and refused.
    var bufferedReason: String? { get }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws
    /// Reads up to `buffer.count` bytes; returns how many were read (short at end of file).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
    /// fdatasync (Linux) / F_FULLFSYNC (Darwin).
    func sync() throws
    func size() throws -> Int64
    func truncate(to size: Int64) throws
    func close()
    /// Hints that reads are random point reads (a value, a record), so that the kernel reads no
    /// more than asked: readahead of the neighbours, mostly garbage or other players' values,
    /// would cost disk bandwidth the log needs. Optional.
    func adviseRandomReads()
}

extension StorageFile {
    public func adviseRandomReads() {}
}

extension StorageSystem {
    public func availableBytes(_ path: String) -> Int64? { nil }
}

extension StorageSystem {
    /// Creates `path` and every missing parent, each made durable in its own parent (a
    /// directory's entry is a change of its parent's contents: without the parent's sync, a power
    /// loss can take the new directory, and everything synced inside it, away).
    public func makeDirectoryDurably(_ path: String) throws {
        var missing: [String] = []
        var p = path
        while !p.isEmpty && p != "/" && p != "." && !fileExists(p) {
            missing.append(p)
            guard let slash = p.lastIndex(of: "/") else { p = "."; break }
            p = slash == p.startIndex ? "/" : String(p[..<slash])
        }
        for dir in missing.reversed() {
            try makeDirectory(dir)
            let parent = dir.lastIndex(of: "/").map { $0 == dir.startIndex ? "/" : String(dir[..<$0]) } ?? "."
            try syncDirectory(parent)
        }
    }
}

/// The alignment direct I/O needs for buffers, offsets and lengths.
public let storageAlignment = 4096

func ioError(_ what: String, _ path: String, _ err: Int32 = errno) -> JellyError {
    let text = String(cString: strerror(err))
    if err == ENOSPC || err == EDQUOT {
        return JellyError(.diskFull, "\(what) \(path) failed: \(text) (errno \(err))")
    }
    let next = err == EMFILE || err == ENFILE
        ? "; the store keeps every segment file open: raise the open-file limit (ulimit -n; jelly serve raises its soft limit to the hard one by itself)"
        : ""
    return JellyError(.io, "\(what) \(path) failed: \(text) (errno \(err))\(next)")
}

/// The POSIX implementation of the storage seam.
public struct PosixStorage: StorageSystem {
    public init() {}

    public func openLog(path: String, create: Bool, direct: Bool) throws -> any StorageFile {
        let flags = O_RDWR | (create ? O_CREAT : 0)
        var reason: String? = nil
        if direct {
            #if os(Linux)
            let fd = jelly_open_direct(path, flags, 0o644)
            if fd >= 0 { return PosixFile(fd: fd, path: path, isDirect: true, bufferedReason: nil) }
            let err = errno
            if err != EINVAL && err != ENOTSUP && err != EOPNOTSUPP { throw ioError("open", path, err) }
            reason = "the filesystem refused O_DIRECT (\(String(cString: strerror(err)))); using buffered writes"
            #elseif canImport(Darwin)
            let fd = open(path, flags | O_CLOEXEC, 0o644)
            if fd < 0 { throw ioError("open", path) }
            if fcntl(fd, F_NOCACHE, 1) == 0 {
                return PosixFile(fd: fd, path: path, isDirect: true, bufferedReason: nil)
            }
            return PosixFile(fd: fd, path: path, isDirect: false, bufferedReason: "F_NOCACHE refused; using buffered writes")
            #endif
        } else {
            reason = "direct I/O disabled by configuration"
        }
        let fd = open(path, flags | O_CLOEXEC, 0o644)
        if fd < 0 { throw ioError("open", path) }
        return PosixFile(fd: fd, path: path, isDirect: false, bufferedReason: reason)
    }

    public func openRead(path: String) throws -> any StorageFile {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ioError("open", path) }
        return PosixFile(fd: fd, path: path, isDirect: false, bufferedReason: nil)
    }

    public func openWrite(path: String, truncate: Bool) throws -> any StorageFile {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
        if fd < 0 { throw ioError("open", path) }
        return PosixFile(fd: fd, path: path, isDirect: false, bufferedReason: nil)
    }

    public func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw ioError("opendir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST { throw ioError("mkdir", current) }
        }
    }

    public func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw ioError("unlink", path) }
    }

    public func rename(_ from: String, _ to: String) throws {
        #if canImport(Glibc)
        if Glibc.rename(from, to) != 0 { throw ioError("rename to \(to)", from) }
        #else
        if Darwin.rename(from, to) != 0 { throw ioError("rename to \(to)", from) }
        #endif
    }

    public func availableBytes(_ path: String) -> Int64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    public func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ioError("open directory", path) }
        defer { _ = Glibc_close(fd) }
        if fsync(fd) != 0 { throw ioError("fsync directory", path) }
    }

    public func lockDirectory(_ path: String) throws -> any StorageFile {
        let lockPath = path + "/LOCK"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw ioError("open", lockPath) }
        // A lock just released can look held for an instant: a child process between fork and
        // exec shares the descriptor (O_CLOEXEC closes it only at exec). Retry briefly before
        // reporting another opener.
        var attempts = 0
        while jelly_lock_exclusive(fd) != 0 && (errno == EWOULDBLOCK || errno == EAGAIN) && attempts < 50 {
            attempts += 1
            usleep(10_000)
        }
        if jelly_lock_exclusive(fd) != 0 {
            let err = errno
            var holder = ""
            var buf = [UInt8](repeating: 0, count: 64)
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
            if n > 0 {
                holder = " (process " + String(decoding: buf[0..<n], as: UTF8.self).trimmingWhitespace() + ")"
            }
            _ = Glibc_close(fd)
            if err == EWOULDBLOCK || err == EAGAIN {
                throw JellyError(
                    .alreadyOpen,
                    "the store at \(path) is open in another process\(holder); stop that process or use another data directory"
                )
            }
            throw ioError("flock", lockPath, err)
        }
        let pid = String(getpid()) + "\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return PosixFile(fd: fd, path: lockPath, isDirect: false, bufferedReason: nil)
    }
}

@inline(__always)
func Glibc_close(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}


/// A file descriptor. Safe to share across threads: pread/pwrite/fdatasync on one descriptor are
/// thread-safe, and `fd` is immutable until `close`, which the owner calls once no one else
/// uses the file (the engine drops segment files only when no read holds them).
final class PosixFile: StorageFile, @unchecked Sendable {
    let fd: Int32
    let path: String
    let isDirect: Bool
    let bufferedReason: String?
    private var closed = false

    init(fd: Int32, path: String, isDirect: Bool, bufferedReason: String?) {
        self.fd = fd
        self.path = path
        self.isDirect = isDirect
        self.bufferedReason = bufferedReason
    }

    deinit { close() }

    func adviseRandomReads() { _ = jelly_advise_random(fd) }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write", path)
            }
            if n == 0 { throw JellyError(.io, "write \(path) failed: wrote 0 bytes at offset \(offset + Int64(done))") }
            done += n
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    func sync() throws {
        if jelly_datasync(fd) != 0 { throw ioError("fdatasync", path) }
    }

    func size() throws -> Int64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw ioError("fstat", path) }
        return Int64(st.st_size)
    }

    func truncate(to size: Int64) throws {
        if ftruncate(fd, off_t(size)) != 0 { throw ioError("ftruncate", path) }
    }

    func close() {
        if !closed {
            closed = true
            _ = Glibc_close(fd)
        }
    }
}
