import Foundation
@testable import NATSClient
import Testing

/// A save's acknowledgement is read by hand when it is the usual flat object; everything else
/// must fall back to JSONDecoder (nil here), never be read wrong.
@Suite struct PubAckParsingTests {
    @Test(arguments: [
        #"{"stream":"J_0","seq":42}"#,
        #"{"stream":"J_0","seq":18446744073709551615,"batch":"abc123","count":2}"#,
        #" { "stream" : "J_1" , "domain" : "hub" , "seq" : 7 , "duplicate" : true } "#,
        #"{"seq":1,"stream":"s","duplicate":false,"count":1,"batch":"b"}"#,
    ])
    func readsTheFlatAcknowledgementsAsJSONDecoderDoes(_ text: String) throws {
        let expected = try JSONDecoder().decode(PubAck.self, from: Data(text.utf8))
        #expect(PubAck(flatJSON: Array(text.utf8)) == expected)
    }

    @Test(arguments: [
        #"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#,
        #"{"stream":"J\u0030","seq":1}"#,
        #"{"stream":"J_0","seq":1.5}"#,
        #"{"stream":"J_0","seq":-1}"#,
        #"{"stream":"J_0","seq":1e3}"#,
        #"{"stream":"J_0","seq":18446744073709551616}"#,
        #"{"stream":"J_0","seq":1,"val":2}"#,
        #"{"stream":"J_0"}"#,
        #"{"stream":"J_0","seq":1} trailing"#,
        #"{"stream":"J_0","seq":1"#,
        #"{"stream":"J_0","seq":1,"duplicate":tru}"#,
        #"{"stream":"J_0","seq":1,"count":null}"#,
        "",
    ])
    func leavesEverythingElseToTheDecoder(_ text: String) {
        #expect(PubAck(flatJSON: Array(text.utf8)) == nil)
    }
}
