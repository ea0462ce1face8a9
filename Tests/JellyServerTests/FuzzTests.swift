import Foundation
import JellyTestSupport
import Testing

/// The schemathesis fuzzer over the OpenAPI document a real `jelly serve` serves: every check
/// on (no 5xx, every status and header and body as documented, schema-violating requests
/// refused, schema-valid ones accepted, undeclared methods 405), 25 examples per operation,
/// deterministic generation. The known false positives are configured, each with its reason, in
/// scripts/schemathesis.toml. `scripts/test` installs schemathesis from PyPI.
@Suite(.serialized) struct FuzzTests {
    @Test func theServedDocumentHoldsUnderTheFuzzer() async throws {
        let schemathesis = try #require(Self.schemathesis(), "schemathesis is not installed: run scripts/test (it installs it) or python3 -m pip install schemathesis")
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = FileManager.default.currentDirectoryPath + "/scripts/schemathesis.toml"
        try await ServerProcess(directory: dir.path + "/data").use { s in
            let (status, output) = try runToEnd(schemathesis, [
                "--config-file", config, "run", s.base + "/v1/openapi.yaml",
                "--checks", "all", "--exclude-checks", "use_after_free", "--max-examples", "25", "--generation-deterministic", "--request-timeout", "10",
            ], environment: ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""]) { _, b in b })
            #expect(status == 0, "the fuzzer found responses outside the document (rerun the command in FuzzTests to see each with curl):\n\(output.suffix(6000))")
            #expect(output.contains(" passed"), "the fuzzer ran: \(output.suffix(600))")
            let health = try await http("GET", s.base + "/v1/health")
            #expect(health.status == 200, "the server stayed healthy")
        }
    }

    static func schemathesis() -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/schemathesis"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
