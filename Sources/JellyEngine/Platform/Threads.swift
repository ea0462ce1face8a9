import CJellySystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import JellyCore
import Synchronization

/// A dedicated OS thread. The committer and the maintenance worker block on I/O, so they run
/// on their own threads rather than on Swift's cooperative pool.
final class OSThread: @unchecked Sendable {
    // Written once by `start` before any other thread reads it; read by `join` on the owner.
    private var handle: pthread_t?

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Shown by `top -H`, `ps -L` and debuggers (Linux keeps the first 15 bytes).
    private let name: String

    init(name: String) { self.name = name }

    func start(_ body: @escaping @Sendable () -> Void) {
        let name = self.name
        let box = Unmanaged.passRetained(Box {
            _ = jelly_set_thread_name(name)
            body()
        }).toOpaque()
        #if canImport(Glibc)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
            return nil
        }, box)
        #else
        var tid: pthread_t?
        let rc = pthread_create(&tid, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
            return nil
        }, box)
        #endif
        precondition(rc == 0, "pthread_create failed: \(rc)")
        handle = tid
    }

    func join() {
        guard let h = handle else { return }
        handle = nil
        pthread_join(h, nil)
    }
}

/// A page-aligned buffer for direct I/O, grown on demand. Used by one thread at a time.
final class AlignedBuffer {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init(capacity: Int) {
        self.capacity = Format.alignUp(max(capacity, Format.pageBytes))
        pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: Format.pageBytes)
    }

    func reserve(_ bytes: Int) {
        guard bytes > capacity else { return }
        pointer.deallocate()
        capacity = Format.alignUp(bytes)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: Format.pageBytes)
    }

    func bytes(_ count: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: count) }

    deinit { pointer.deallocate() }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// A fixed set of threads for blocking file reads, so that reads waiting on the disk never hold
/// one of Swift's cooperative threads (there are only as many as cores).
final class BlockingIOPool: Sendable {
    private let jobs = Mutex<(queue: [@Sendable () -> Void], stopping: Bool)>(([], false))
    private let wake = DispatchSemaphore(value: 0)
    private let threads: [OSThread]

    init(threads count: Int, name: String) {
        threads = (0..<max(1, count)).map { OSThread(name: "\(name)-\($0)") }
        for thread in threads {
            thread.start { [self] in
                while true {
                    wake.wait()
                    let job = jobs.withLock { state -> (@Sendable () -> Void)? in
                        state.queue.isEmpty ? nil : state.queue.removeFirst()
                    }
                    guard let job else { return } // woken to stop
                    job()
                }
            }
        }
    }

    /// Runs `body` on a pool thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { continuation in
            let accepted = jobs.withLock { state -> Bool in
                guard !state.stopping else { return false }
                state.queue.append {
                    do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
                }
                return true
            }
            if accepted {
                wake.signal()
            } else {
                continuation.resume(throwing: JellyError(.unavailable, "the store is closed"))
            }
        }
    }

    func stop() {
        let running = jobs.withLock { state -> Bool in
            let r = !state.stopping
            state.stopping = true
            return r
        }
        guard running else { return }
        for _ in threads { wake.signal() }
        for thread in threads { thread.join() }
    }
}
