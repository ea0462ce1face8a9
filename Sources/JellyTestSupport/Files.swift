import JellyEngine

// Files of a store directory, read and damaged on purpose by tests.

/// Reads a file's bytes.
public func readFileBytes(_ path: String) throws -> [UInt8] {
    let file = try PosixStorage().openRead(path: path)
    defer { file.close() }
    let size = Int(try file.size())
    return try [UInt8](unsafeUninitializedCapacity: size) { raw, n in n = try file.read(into: UnsafeMutableRawBufferPointer(raw), at: 0) }
}

/// Overwrites bytes of a file in place.
public func patchFile(_ path: String, at offset: Int, with patch: [UInt8]) throws {
    let file = try PosixStorage().openWrite(path: path, truncate: false)
    defer { file.close() }
    try patch.withUnsafeBytes { try file.write($0, at: Int64(offset)) }
    try file.sync()
}

public func segmentPaths(_ directory: String) throws -> [String] {
    try PosixStorage().listDirectory(directory).filter { $0.hasSuffix(".log") }.sorted().map { directory + "/" + $0 }
}

public func hintPaths(_ directory: String) throws -> [String] {
    try PosixStorage().listDirectory(directory).filter { $0.hasSuffix(".hint") }.sorted().map { directory + "/" + $0 }
}
