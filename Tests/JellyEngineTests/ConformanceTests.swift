import JellyCore
import JellyEngine
import JellyTestSupport
import Testing

/// The store contract, against the embedded engine. The cluster backend runs the same cases.
@Suite struct EmbeddedConformanceTests {
    @Test(arguments: ConformanceSuite.cases)
    func conformance(_ testCase: ConformanceCase) async throws {
        try await testCase.perform(on: try EmbeddedStoreHarness())
    }

    /// The same cases with the lowest durability: lock semantics must not depend on it.
    @Test(arguments: ConformanceSuite.cases)
    func conformanceWithoutSync(_ testCase: ConformanceCase) async throws {
        try await testCase.perform(on: try EmbeddedStoreHarness { $0.durability = .never })
    }
}
