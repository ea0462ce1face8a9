#if canImport(Glibc)
import Glibc
#endif
import JellyCore
@testable import JellyEngine
import JellyTestSupport

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A seeded generator, so a failing seed reproduces.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

/// Offsets of block headers in a segment's bytes.
func blockOffsets(_ data: [UInt8], segment: UInt64) -> [Int] {
    var offsets: [Int] = []
    var at = Format.segmentHeaderBytes
    data.withUnsafeBytes { raw in
        while at + Format.blockHeaderBytes <= raw.count, let h = BlockHeader.decode(raw.baseAddress! + at, expectedSegment: segment) {
            offsets.append(at)
            at += h.totalBytes
        }
    }
    return offsets
}
