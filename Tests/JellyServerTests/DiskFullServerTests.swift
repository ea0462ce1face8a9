import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// A real full disk under a real `jelly serve`: a small tmpfs (mounting one needs root, which
/// the test machines have; elsewhere the engine's DiskFullTests cover the same through the
/// storage seam). Saves fill it until the server answers 507; health says degraded; reads go
/// on; a restart on the full disk serves reads; growing the filesystem lets writes resume
/// without a restart; nothing acknowledged is lost.
extension HeavyProcessTests {
@Suite(.enabled(if: canMountTmpfs(), "needs root to mount a small tmpfs"))
struct DiskFullServerTests {


    @Test func savesUntilTheDiskIsFullThenWritesResumeOnceItHasRoom() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let mount = dir.path + "/disk"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        // Two 64 MiB segments fit, a third does not.
        #expect(try runToEnd("/bin/mount", ["-t", "tmpfs", "-o", "size=160m", "tmpfs", mount]).status == 0)
        defer { _ = try? runToEnd("/bin/umount", ["-l", mount]) }
        let data = mount + "/data"
        var server = try JellyServeProcess(directory: data)
        let value = [UInt8](repeating: 0x5A, count: 1 << 20)
        var acked: [String: UInt64] = [:]
        var refusal: HTTPResult?
        // Every save a new key: compaction cannot make room by dropping overwritten values.
        for n in 0..<400 {
            let key = "slot-\(n)"
            let r = try await http("PUT", server.base + "/v1/partitions/player/objects/\(key)", body: Data(value + Array("\(n)".utf8)))
            if r.status == 200 || r.status == 201 {
                acked[key] = UInt64(n)
            } else {
                refusal = r
                break
            }
        }
        let full = try #require(refusal, "400 saves of 1 MiB fit in 160 MiB")
        #expect(full.status == 507, "\(full.status) \(full.text)")
        #expect(full.json["error"] as? String == "disk_full" && full.text.contains("free"), "\(full.text)")
        #expect(full.headers["retry-after"] == "5")
        let health = try await http("GET", server.base + "/v1/health")
        #expect(health.status == 503 && health.json["status"] as? String == "degraded", "\(health.text)")
        #expect((health.json["detail"] as? String ?? "").contains("disk"), "\(health.text)")
        try await expectAcknowledged(acked, server.base)

        // A restart on the full disk serves reads and says why writes are refused.
        server.kill(signal: SIGKILL)
        server = try JellyServeProcess(directory: data)
        try await expectAcknowledged(acked, server.base)
        let afterRestart = try await http("PUT", server.base + "/v1/partitions/player/objects/more", body: Data(value))
        #expect(afterRestart.status == 507, "\(afterRestart.text)")
        #expect(try await http("GET", server.base + "/v1/health").json["status"] as? String == "degraded")

        // The operator makes room: writes resume by themselves.
        #expect(try runToEnd("/bin/mount", ["-o", "remount,size=400m", mount]).status == 0)
        var resumed = false
        for _ in 0..<60 where !resumed {
            resumed = try await http("PUT", server.base + "/v1/partitions/player/objects/more", body: Data(value)).status == 201
            if !resumed { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(resumed, "writes did not resume within 6 s of the disk having room")
        #expect(try await http("GET", server.base + "/v1/health").status == 200)
        try await expectAcknowledged(acked, server.base)
        server.kill(signal: SIGTERM)
        #expect(try runToEnd(try jellyExecutablePath(), ["check", "--data", data]).status == 0)
    }

    func expectAcknowledged(_ acked: [String: UInt64], _ base: String) async throws {
        for (key, n) in acked.sorted(by: { $0.key < $1.key }) {
            let r = try await http("GET", base + "/v1/partitions/player/objects/\(key)")
            #expect(r.status == 200 && r.body.suffix("\(n)".utf8.count) == Data("\(n)".utf8), "\(key): save \(n) acknowledged, read \(r.status)")
        }
    }
}
}

/// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN).
func canMountTmpfs() -> Bool {
    guard getuid() == 0, let dir = try? TemporaryDirectory() else { return false }
    defer { dir.remove() }
    let ok = (try? runToEnd("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir.path]))?.status == 0
    if ok { _ = try? runToEnd("/bin/umount", [dir.path]) }
    return ok
}
