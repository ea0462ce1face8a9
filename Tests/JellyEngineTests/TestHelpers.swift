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

/// Reads a file's bytes.
func readFileBytes(_ path: String) throws -> [UInt8] {
    let file = try PosixStorage().openRead(path: path)
    defer { file.close() }
    let size = Int(try file.size())
    return try [UInt8](unsafeUninitializedCapacity: size) { raw, n in n = try file.read(into: UnsafeMutableRawBufferPointer(raw), at: 0) }
}

/// Overwrites bytes of a file in place.
func patchFile(_ path: String, at offset: Int, with patch: [UInt8]) throws {
    let file = try PosixStorage().openWrite(path: path, truncate: false)
    defer { file.close() }
    try patch.withUnsafeBytes { try file.write($0, at: Int64(offset)) }
    try file.sync()
}

func segmentPaths(_ directory: String) throws -> [String] {
    try PosixStorage().listDirectory(directory).filter { $0.hasSuffix(".log") }.sorted().map { directory + "/" + $0 }
}

func hintPaths(_ directory: String) throws -> [String] {
    try PosixStorage().listDirectory(directory).filter { $0.hasSuffix(".hint") }.sorted().map { directory + "/" + $0 }
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
