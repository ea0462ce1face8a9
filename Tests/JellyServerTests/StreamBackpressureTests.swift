import Foundation
import JellyClient
import JellyCore
import JellyEngine
import JellyServer
import JellyTestSupport
import Logging
import Testing

/// A slow disk slows the sender instead of growing the server's memory: a stream socket holds
/// at most `StreamSocket.queueBytesMax` of received, uncommitted frames and then stops reading,
/// so TCP pushes back on the client.
@Suite struct StreamBackpressureTests {
    @Test func aSlowDiskSlowsTheSocketInsteadOfGrowingMemory() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (config, storage) = EmbeddedStoreConfiguration.faultInjected(directory: dir.path, clock: ManualClock())
        let store = try EmbeddedStore.open(config)
        // 32 MiB of frames through a stream log disk of 8 MB/s: about 4 s of writing.
        storage.throttleWrites(pathContaining: "/frames/", bytesPerSecond: 8 << 20)
        var serverConfig = JellyServerConfiguration()
        serverConfig.port = 0
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "jelly-test")
        logger.logLevel = .critical
        let app = try await JellyHTTPServer.application(store: store, configuration: serverConfig, logger: logger) { _, port in readyContinuation.yield(port) }
        let server = Task { try await app.run() }
        var port = 0
        for await p in ready { port = p; break }
        let url = "http://127.0.0.1:\(port)"

        let socket = try await StreamSocketClient.append(url: url, bearerToken: nil, partition: "p", stream: "s", token: nil)
        let frame = [UInt8](repeating: 7, count: 16 << 10)
        let count = 2048
        let t0 = ContinuousClock.now
        for _ in 0..<count { try await socket.sendAndWait(frame) }
        let sending = ContinuousClock.now - t0
        await socket.close()
        let peak = store.info().frameQueueBytesPeak
        storage.throttleWrites(pathContaining: "/frames/", bytesPerSecond: nil)
        // Kernel buffers on loopback hold a few MiB; the rest had to wait for the disk.
        #expect(sending >= .milliseconds(1500), "the sender was slowed to the disk's pace: \(sending) for 32 MiB at 8 MB/s")
        #expect(peak <= 2 << 20, "the store held at most the socket's bound plus a read: \(peak) bytes")
        let stored = try await store.readAllFrames(partition: "p", stream: "s")
        #expect(stored.allSatisfy { $0.value == frame })
        #expect(stored.count == count, "every frame landed: \(stored.count)")
        server.cancel()
        _ = await server.result
        try await store.close()
    }
}
