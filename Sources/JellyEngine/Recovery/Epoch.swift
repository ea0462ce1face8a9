import JellyCore

/// The store's epoch: a random identifier made when the store is created, kept in the file
/// `EPOCH` (16 lowercase hex digits and a newline). A change feed cursor is meaningful only with
/// the epoch it came from; a restore from backup writes a new one (docs/sync.md).
enum Epoch {
    static let fileName = "EPOCH"

    /// Reads the epoch, making and syncing one when the store has none yet (a new store, or a
    /// store made before epochs existed).
    static func readOrCreate(_ storage: any StorageSystem, directory: String) throws -> String {
        let path = directory + "/" + fileName
        if storage.fileExists(path) {
            let text = String(decoding: try SegmentFiles.readAll(storage, path: path), as: UTF8.self).trimmingWhitespace()
            guard text.utf8.count == 16, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw JellyError(.corruption, "\(path) does not hold an epoch (16 hex digits); remove it to make a new one (every client replica then starts over)")
            }
            return text
        }
        let epoch = make()
        try SegmentFiles.writeAtomically(storage, directory: directory, name: fileName, bytes: Array((epoch + "\n").utf8))
        try storage.syncDirectory(directory)
        return epoch
    }

    static func make() -> String {
        let n = UInt64.random(in: 1...UInt64.max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
