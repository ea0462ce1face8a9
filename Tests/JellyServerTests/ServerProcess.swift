import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JellyTestSupport
import Testing

typealias ServerProcess = JellyServeProcess

extension JellyServeProcess {
    /// Runs `body` against this server. A failure kills it with SIGKILL; otherwise it is
    /// stopped with SIGTERM, which must exit 0 (the graceful stop).
    func use(_ body: (JellyServeProcess) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            kill(signal: SIGKILL)
            throw error
        }
        #expect(kill(signal: SIGTERM) == 0, "graceful stop exits 0: \(log)")
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

