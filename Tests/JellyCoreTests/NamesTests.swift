import JellyCore
import Testing

@Suite struct NamesTests {
    @Test(arguments: ["p", "player-42", "日本語", String(repeating: "x", count: 128), "a b", "a.b", "..."])
    func validPartitions(_ name: String) throws {
        try Names.validate(name, as: .partition, maxBytes: 128)
    }

    @Test(arguments: ["", ".", "..", "a/b", "/", "tab\t", "nl\n", "nul\u{0}", "del\u{7F}", "c1\u{85}", String(repeating: "x", count: 129), String(repeating: "é", count: 65)])
    func invalidPartitions(_ name: String) {
        #expect(throws: JellyError.self) { try Names.validate(name, as: .partition, maxBytes: 128) }
    }

    @Test func errorsSayWhatIsWrong() {
        do {
            try Names.validate("a/b", as: .key, maxBytes: 512)
            Issue.record("accepted a slash")
        } catch let error as JellyError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("'/'"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func byteNamesCompareBytesNotUnicodeEquivalence() {
        let precomposed = ByteName("é")
        let decomposed = ByteName("e\u{301}")
        #expect(precomposed != decomposed)
        #expect(Set([precomposed, decomposed]).count == 2)
        #expect(ByteName("B") < ByteName("a"))
        #expect(ByteName("a") < ByteName("a0"))
        #expect(ByteName("z") < ByteName("é"))
        #expect(ByteName(String(repeating: "long-name-", count: 5)) == ByteName(String(repeating: "long-name-", count: 5)))
    }

    @Test func contentTypes() throws {
        try Names.validateContentType("application/json; charset=utf-8", maxBytes: 255)
        #expect(throws: JellyError.self) { try Names.validateContentType("bad\ntype", maxBytes: 255) }
        #expect(throws: JellyError.self) { try Names.validateContentType(String(repeating: "a", count: 256), maxBytes: 255) }
    }

    @Test func limitsValidate() throws {
        try JellyLimits().validate()
        var bad = JellyLimits()
        bad.partitionBytesMax = 129
        #expect(throws: JellyError.self) { try bad.validate() }
        bad = JellyLimits()
        bad.batchBytesMax = bad.valueBytesMax
        #expect(throws: JellyError.self) { try bad.validate() }
    }

    @Test(arguments: ["player-42", "a b", "café", "日本語", "a/b", "100%", "~._-", "nul\u{0}"])
    func percentEncodingRoundTrips(_ name: String) {
        let escaped = PercentEncoding.escape(name)
        #expect(escaped.utf8.allSatisfy { $0 < 0x80 && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: " ") }, "\(escaped)")
        #expect(PercentEncoding.decode(escaped) == name)
    }

    @Test func percentEncodingRefusesMalformedEscapes() {
        #expect(PercentEncoding.escape("a b/é") == "a%20b%2F%C3%A9")
        #expect(PercentEncoding.decode("plain") == "plain")
        for bad in ["ab%", "a%2", "%zz", "%", "x%G0", "%C3", "%FF"] {
            #expect(PercentEncoding.decode(bad) == nil, "\(bad)")
        }
    }
}
