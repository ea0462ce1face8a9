import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JellyTestSupport
import Testing

/// A real `jelly serve` process on a free loopback port.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let directory: String
    private(set) var port = 0
    private let output = Pipe()
    private let lock = NSLock()
    private var text = ""

    static func binary() throws -> String { try jellyExecutablePath() }

    init(directory: String, extraArguments: [String] = []) throws {
        self.directory = directory
        process.executableURL = URL(fileURLWithPath: try ServerProcess.binary())
        process.arguments = ["serve", "--data", directory, "--listen", "127.0.0.1:0"] + extraArguments
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.text += String(decoding: data, as: UTF8.self)
            self.lock.unlock()
        }
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            for scheme in ["http", "https"] {
                let prefix = "jelly serve: listening on \(scheme)://127.0.0.1:"
                if let line = log.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                    port = Int(line.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
                    return
                }
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.terminate()
        throw ConformanceFailure("jelly serve did not start: \(log)")
    }

    var log: String {
        lock.lock()
        defer { lock.unlock() }
        return text
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Runs `body` against this server. A failure kills it with SIGKILL; otherwise it is
    /// stopped with SIGTERM, which must exit 0 (the graceful stop).
    func use(_ body: (ServerProcess) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            _ = kill(signal: SIGKILL)
            throw error
        }
        #expect(kill(signal: SIGTERM) == 0, "graceful stop exits 0: \(log)")
    }

    func kill(signal: Int32) -> Int32 {
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        return process.terminationStatus
    }
}

struct HTTPResult {
    var status: Int
    var headers: [String: String]
    var body: Data
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// One HTTP request (a fresh session without caching or redirects).
func http(_ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil) async throws -> HTTPResult {
    guard let u = URL(string: url) else { throw ConformanceFailure("bad URL \(url)") }
    var request = URLRequest(url: u)
    request.httpMethod = method
    request.cachePolicy = .reloadIgnoringLocalCacheData
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    request.httpBody = body
    let (data, response) = try await URLSession.shared.data(for: request)
    guard let r = response as? HTTPURLResponse else { throw ConformanceFailure("no HTTP response") }
    var h: [String: String] = [:]
    for (k, v) in r.allHeaderFields { h[String(describing: k).lowercased()] = String(describing: v) }
    return HTTPResult(status: r.statusCode, headers: h, body: data)
}

func jsonBody(_ object: [String: Any]) -> Data {
    (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
}
