import CJellySystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import JellyEngine
import Testing

@Suite struct FormatTests {
    @Test func crc32cKnownVectors() {
        let digits = Array("123456789".utf8)
        #expect(digits.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) } == 0xE306_9283)
        #expect(digits.withUnsafeBytes { jelly_crc32c_software(0, $0.baseAddress, $0.count) } == 0xE306_9283)
        let zeros = [UInt8](repeating: 0, count: 32)
        #expect(zeros.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) } == 0x8A91_36AA)
        // Checksums compose: crc(a + b) == crc(crc(a), b).
        let a = Array("hello, ".utf8), b = Array("world".utf8)
        let whole = (a + b).withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) }
        let first = a.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) }
        #expect(b.withUnsafeBytes { jelly_crc32c(first, $0.baseAddress, $0.count) } == whole)
    }

    @Test func hardwareAndSoftwareAgree() {
        var rng = SystemRandomNumberGenerator()
        for length in [0, 1, 7, 8, 9, 63, 64, 65, 4095, 4096, 70_001] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let hw = bytes.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress, $0.count) }
            let sw = bytes.withUnsafeBytes { jelly_crc32c_software(0, $0.baseAddress, $0.count) }
            #expect(hw == sw, "length \(length)")
            // Unaligned starts.
            if length > 3 {
                let hw3 = bytes.withUnsafeBytes { jelly_crc32c(0, $0.baseAddress! + 3, $0.count - 3) }
                let sw3 = bytes.withUnsafeBytes { jelly_crc32c_software(0, $0.baseAddress! + 3, $0.count - 3) }
                #expect(hw3 == sw3)
            }
        }
    }

    @Test func recordRoundTripAndEveryByteIsCovered() throws {
        var records = EncodedRecords(capacity: 256)
        records.append(kind: .put, partition: "player-1", key: "inventory", contentType: "application/json", value: Array("{\"gold\":7}".utf8), token: 0, expiresAtMilliseconds: 0)
        records.seal(version: 42)
        let bytes = records.bytes
        let view = try bytes.withUnsafeBytes { try RecordView.parse($0, at: 0) }
        #expect(view.kind == .put && view.version == 42 && view.length == bytes.count)
        #expect(Array(bytes[view.partition]) == Array("player-1".utf8))
        #expect(Array(bytes[view.key]) == Array("inventory".utf8))
        #expect(Array(bytes[view.contentType]) == Array("application/json".utf8))
        #expect(Array(bytes[view.value]) == Array("{\"gold\":7}".utf8))
        // Flipping any single bit anywhere is detected.
        for i in bytes.indices {
            var damaged = bytes
            damaged[i] ^= 0x10
            #expect(throws: RecordView.Problem.self, "byte \(i)") { try damaged.withUnsafeBytes { _ = try RecordView.parse($0, at: 0) } }
        }
        // A record cut short is truncated, not garbage.
        let cut = Array(bytes.prefix(bytes.count - 1))
        #expect(throws: RecordView.Problem.truncated) { try cut.withUnsafeBytes { _ = try RecordView.parse($0, at: 0) } }
    }

    @Test func blockHeaderRejectsOtherSegmentsAndDamage() {
        let header = BlockHeader(segmentID: 7, payloadBytes: 100, recordCount: 2, durableOffset: 4096, flags: 0)
        var bytes = [UInt8](repeating: 0, count: Format.blockHeaderBytes)
        bytes.withUnsafeMutableBytes { header.encode(into: $0.baseAddress!) }
        #expect(bytes.withUnsafeBytes { BlockHeader.decode($0.baseAddress!, expectedSegment: 7) } == header)
        #expect(bytes.withUnsafeBytes { BlockHeader.decode($0.baseAddress!, expectedSegment: 8) } == nil)
        bytes[20] ^= 1
        #expect(bytes.withUnsafeBytes { BlockHeader.decode($0.baseAddress!, expectedSegment: 7) } == nil)
        #expect(header.totalBytes == 4096)
    }

    /// Out of file descriptors (the store keeps every segment open), the error says what to
    /// raise; other errors do not carry that advice.
    @Test func ioErrorsSayWhatToDoWhenOutOfFiles() {
        #expect(ioError("open", "/d/0000000000000001.log", EMFILE).message.contains("raise the open-file limit (ulimit -n"))
        #expect(!ioError("open", "/d/0000000000000001.log", ENOENT).message.contains("ulimit"))
    }
}
