import JellyCore
import JellyEngine
import JellyTestSupport
import Testing

/// The store contract, against the embedded engine. The cluster backend runs the same cases.
@Suite struct EmbeddedConformanceTests {
    @Test(arguments: ConformanceSuite.cases)
    func conformance(_ testCase: ConformanceCase) async throws {
        let harness = try EmbeddedStoreHarness()
        do {
            try await testCase.run(harness)
        } catch {
            await harness.finish()
            throw error
        }
        await harness.finish()
    }

    /// The same cases with the lowest durability: lock semantics must not depend on it.
    @Test(arguments: ConformanceSuite.cases)
    func conformanceWithoutSync(_ testCase: ConformanceCase) async throws {
        let harness = try EmbeddedStoreHarness { $0.durability = .never }
        do {
            try await testCase.run(harness)
        } catch {
            await harness.finish()
            throw error
        }
        await harness.finish()
    }
}
