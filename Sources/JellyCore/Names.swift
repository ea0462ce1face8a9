#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Validation of partition names, object keys, lock owners and content types.
///
/// Names are compared byte for byte (UTF-8), never by Unicode equivalence: `"é"` written
/// precomposed and decomposed are two different keys, as they would be on disk and over HTTP.
public enum NameKind: String, Sendable {
    case partition
    case key
    case owner
    /// A sync client's id (`JellyStore.sync`).
    case clientID = "sync client id"
    /// A partition's stream of frames (`JellyStore.appendFrames`).
    case stream
}

public enum Names {
    /// Checks `name` against the rules for `kind` and returns it unchanged, or throws
    /// `JellyError` with code `.invalidArgument` naming the rule that failed.
    ///
    /// Rules for partitions and keys: 1 to `maxBytes` bytes of UTF-8; no control characters
    /// (U+0000–U+001F, U+007F–U+009F); no `/`; not `.` or `..`. Owners follow the same rules.
    @discardableResult
    public static func validate(_ name: String, as kind: NameKind, maxBytes: Int) throws -> String {
        let count = name.utf8.count
        if count == 0 {
            throw JellyError(.invalidArgument, "\(kind.rawValue) name is empty; use 1 to \(maxBytes) bytes of UTF-8")
        }
        if count > maxBytes {
            throw JellyError(
                .invalidArgument,
                "\(kind.rawValue) name is \(count) bytes; the limit is \(maxBytes) bytes of UTF-8"
            )
        }
        if name == "." || name == ".." {
            throw JellyError(.invalidArgument, "\(kind.rawValue) name may not be '.' or '..'")
        }
        for scalar in name.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || (v >= 0x7F && v <= 0x9F) {
                throw JellyError(
                    .invalidArgument,
                    "\(kind.rawValue) name \(Names.quoted(name)) contains control character U+\(hex4(v)); control characters are not allowed"
                )
            }
            if v == 0x2F {
                throw JellyError(.invalidArgument, "\(kind.rawValue) name \(Names.quoted(name)) contains '/', which is not allowed")
            }
        }
        return name
    }

    /// Content types: printable ASCII (0x20–0x7E), at most `maxBytes` bytes.
    public static func validateContentType(_ value: String, maxBytes: Int) throws {
        let count = value.utf8.count
        if count > maxBytes {
            throw JellyError(.invalidArgument, "content type is \(count) bytes; the limit is \(maxBytes)")
        }
        for byte in value.utf8 where byte < 0x20 || byte > 0x7E {
            throw JellyError(.invalidArgument, "content type must be printable ASCII; found byte 0x\(String(byte, radix: 16))")
        }
    }

    /// A name quoted for an error message, with control characters escaped.
    public static func quoted(_ name: String) -> String {
        var out = "'"
        for scalar in name.unicodeScalars.prefix(80) {
            let v = scalar.value
            if v < 0x20 || (v >= 0x7F && v <= 0x9F) { out += "\\u{\(String(v, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        if name.unicodeScalars.count > 80 { out += "…" }
        return out + "'"
    }

    private static func hex4(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}

/// A name held for hashing and ordering by its UTF-8 bytes. Strings of up to 15 bytes are
/// stored inline by Swift, so most partition and key names cost no allocation. The hash is
/// computed once, when the name is made (outside any lock), so index lookups only compare.
public struct ByteName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let string: String
    private let hashCode: Int

    public init(_ string: String) {
        var s = string
        s.makeContiguousUTF8()
        var hasher = Hasher()
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        self.string = s
        self.hashCode = hasher.finalize()
    }

    public var description: String { string }

    public static func == (a: ByteName, b: ByteName) -> Bool {
        guard a.hashCode == b.hashCode else { return false }
        let fast = a.string.utf8.withContiguousStorageIfAvailable { pa in
            b.string.utf8.withContiguousStorageIfAvailable { pb in
                guard pa.count == pb.count else { return false }
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return true } // both empty
                return memcmp(x, y, pa.count) == 0
            }
        }
        if let result = fast ?? nil { return result }
        return a.string.utf8.elementsEqual(b.string.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(hashCode)
    }

    /// Ascending unsigned byte order (the same as Unicode code point order for UTF-8).
    public static func < (a: ByteName, b: ByteName) -> Bool {
        a.string.utf8.lexicographicallyPrecedes(b.string.utf8)
    }
}
