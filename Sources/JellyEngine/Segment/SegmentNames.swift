/// The names of a store directory's files (docs/format.md, "directory"), in one place.
///
/// ```
/// segment   := "<id as 16 lowercase hex digits>.log"
/// hint      := "<id as 16 lowercase hex digits>.hint"
/// prepared  := "prepared-<n>.zero" | "prepared-<n>.recycled"
/// ```
/// Files ending in `.tmp` are unfinished writes, deleted on open.

/// Segment ids at or above this are compaction outputs (see CompactionOutput). The log's own
/// segments stay below it. The highest id on each side is the only segment of its side that may
/// be unsealed and end in a torn write.
let compactedSegmentIDBase: UInt32 = 0x8000_0000

func isCompactionOutput(_ id: UInt32) -> Bool { id >= compactedSegmentIDBase }

func segmentFileName(_ id: UInt32) -> String { hex16(UInt64(id)) + ".log" }
func hintFileName(_ id: UInt32) -> String { hex16(UInt64(id)) + ".hint" }

/// A spare segment file: zero-filled (`recycled` false) or a compacted segment kept for reuse.
func preparedFileName(_ number: Int, recycled: Bool) -> String { "prepared-\(number)" + (recycled ? ".recycled" : ".zero") }

/// `prepared-12.zero` or `prepared-12.recycled` → 12.
func parsePreparedName(_ name: String) -> Int? {
    guard name.hasPrefix("prepared-"), let dot = name.lastIndex(of: "."),
          [".zero", ".recycled"].contains(String(name[dot...])) else { return nil }
    return Int(name[name.index(name.startIndex, offsetBy: "prepared-".count)..<dot])
}

/// `0000000000000001.log` → 1.
func parseSegmentName(_ name: String, suffix: String) -> UInt32? {
    guard name.hasSuffix(suffix) else { return nil }
    let stem = name.dropLast(suffix.count)
    guard stem.count == 16, let value = UInt64(stem, radix: 16), value <= UInt64(UInt32.max) else { return nil }
    return UInt32(value)
}

func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - s.count)) + s
}
