/// Godot's binary serialization (the "Binary serialization API" of the Godot docs; Godot's
/// `core/io/marshalls.cpp`), decoded without the engine: what a game stored with `var2bytes`
/// (Godot 3) or `var_to_bytes` (Godot 4) under the content type `application/x-godot-variant`.
///
/// Every value is a little-endian u32 header (the type in the low byte; flags above: bit 16 is
/// "64-bit" for numbers, "object as id" for objects) and its payload, padded to 4 bytes. Godot 3
/// and 4 number their types differently, so the version is a parameter; `decodeAny` tries both.
/// Malformed bytes are a `GodotDecodingError` naming the offset, never a crash: every length is
/// checked against what is left before anything is allocated, and nesting is bounded.
public enum GodotVersion: String, Sendable, CaseIterable {
    case godot3 = "3"
    case godot4 = "4"
}

public struct GodotDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "byte \(offset): \(message)" }
}

public enum GodotVariant {
    /// The content type Jelly stores Godot values under (`; version=3` for Godot 3's layout).
    public static let contentType = "application/x-godot-variant"
    /// Nesting deeper than this is refused (Godot's own limit is 1,024; a decoder on a server
    /// must not let a crafted value exhaust its stack).
    public static let depthMax = 128

    /// Decodes one value that must fill `bytes` exactly.
    public static func decode(_ bytes: [UInt8], version: GodotVersion) throws(GodotDecodingError) -> GodotValue {
        var reader = Reader(bytes: bytes, version: version)
        let value = try reader.value(depth: 0)
        guard reader.offset == bytes.count else {
            throw GodotDecodingError(offset: reader.offset, message: "\(bytes.count - reader.offset) bytes after the value (not one Godot \(version.rawValue) value)")
        }
        return value
    }

    /// The version from a content type's `version` parameter (`application/x-godot-variant;
    /// version=3`), or nil.
    public static func version(ofContentType contentType: String) -> GodotVersion? {
        for part in contentType.split(separator: ";").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces() }
            if kv.count == 2, kv[0].lowercased() == "version" { return GodotVersion(rawValue: kv[1].trimmingCharacters(["\""])) }
        }
        return nil
    }

    /// Decodes with `version` if given, else as Godot 4 and then as Godot 3, returning the first
    /// layout that reads the bytes exactly; the error of the preferred one otherwise.
    public static func decodeAny(_ bytes: [UInt8], version: GodotVersion? = nil) throws(GodotDecodingError) -> (GodotValue, GodotVersion) {
        if let version { return (try decode(bytes, version: version), version) }
        var first: GodotDecodingError?
        for v in [GodotVersion.godot4, .godot3] {
            do { return (try decode(bytes, version: v), v) } catch { first = first ?? error }
        }
        throw first ?? GodotDecodingError(offset: 0, message: "not a Godot value")
    }
}

/// A cursor over the bytes. Every read checks what is left.
struct Reader {
    let bytes: [UInt8]
    let version: GodotVersion
    var offset = 0

    var remaining: Int { bytes.count - offset }

    func fail(_ message: String, at: Int? = nil) -> GodotDecodingError {
        GodotDecodingError(offset: at ?? offset, message: message)
    }

    mutating func need(_ n: Int, _ what: String) throws(GodotDecodingError) {
        guard n >= 0, n <= remaining else { throw fail("\(what) needs \(n) bytes, \(remaining) left") }
    }

    mutating func u32(_ what: String) throws(GodotDecodingError) -> UInt32 {
        try need(4, what)
        let v = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
        offset += 4
        return v
    }

    mutating func u64(_ what: String) throws(GodotDecodingError) -> UInt64 {
        let lo = UInt64(try u32(what)), hi = UInt64(try u32(what))
        return hi << 32 | lo
    }

    mutating func i32(_ what: String) throws(GodotDecodingError) -> Int64 { Int64(Int32(bitPattern: try u32(what))) }
    mutating func f32(_ what: String) throws(GodotDecodingError) -> Double { Double(Float(bitPattern: try u32(what))) }
    mutating func f64(_ what: String) throws(GodotDecodingError) -> Double { Double(bitPattern: try u64(what)) }

    /// A count that each element of at least `elementBytes` must still fit.
    mutating func count(_ what: String, elementBytes: Int) throws(GodotDecodingError) -> Int {
        let at = offset
        let raw = try u32(what)
        let n = Int(raw & 0x7FFF_FFFF)
        guard raw & 0x8000_0000 == 0 || what == "dictionary" || what == "array" else { throw fail("\(what) count \(raw) is negative", at: at) }
        guard n <= remaining / max(1, elementBytes) else { throw fail("\(what) says \(n) elements; only \(remaining) bytes are left", at: at) }
        return n
    }

    /// A UTF-8 string: u32 length, the bytes, zero padding to 4.
    mutating func string(_ what: String) throws(GodotDecodingError) -> String {
        let at = offset
        let length = Int(try u32(what))
        let padded = (length + 3) & ~3
        guard length <= Int(Int32.max), padded <= remaining else { throw fail("\(what) of \(length) bytes; \(remaining) left", at: at) }
        let raw = bytes[offset..<(offset + length)]
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("\(what) is not valid UTF-8", at: offset) }
        offset += padded
        return s
    }

    mutating func floats(_ n: Int, wide: Bool, _ what: String) throws(GodotDecodingError) -> [Double] {
        try need(n * (wide ? 8 : 4), what)
        var out: [Double] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(wide ? try f64(what) : try f32(what)) }
        return out
    }

    mutating func ints(_ n: Int, _ what: String) throws(GodotDecodingError) -> [Int64] {
        try need(n * 4, what)
        var out: [Int64] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try i32(what)) }
        return out
    }

    mutating func value(depth: Int) throws(GodotDecodingError) -> GodotValue {
        guard depth <= GodotVariant.depthMax else { throw fail("nested deeper than \(GodotVariant.depthMax)") }
        let at = offset
        let header = try u32("a value's header")
        let typeID = Int(header & 0xFF)
        let flags = header >> 16
        let wide = flags & 1 != 0
        guard let (type, name) = GodotType.lookup(typeID, version) else {
            throw fail("type \(typeID) is not a Godot \(version.rawValue) type", at: at)
        }
        switch type {
        case .null: return .null
        case .bool: return .bool(try u32("bool") != 0)
        case .int: return .int(wide ? Int64(bitPattern: try u64("int")) : try i32("int"))
        case .float: return .float(wide ? try f64("float") : try f32("float"))
        case .string: return .string(try string("string"))
        case .math(let components):
            // Color is always single precision; Godot 3 math types too.
            let w = wide && version == .godot4 && name != "Color"
            return .math(name, try floats(components, wide: w, name))
        case .integers(let components): return .integers(name, try ints(components, name))
        case .stringName: return .named("StringName", try string("StringName"))
        case .nodePath: return .named("NodePath", try nodePath())
        case .rid:
            if version == .godot3 { return .opaque("RID", "") }
            return .opaque("RID", String(try u64("RID")))
        case .object:
            if flags & 1 != 0 {
                let id = try u64("object id")
                return id == 0 ? .null : .opaque("Object", "#\(id)")
            }
            let cls = try string("object class")
            if cls.isEmpty { return .null }
            let n = try count("object properties", elementBytes: 8)
            var props: [GodotPair] = [.init(.string("class"), .string(cls))]
            for _ in 0..<n {
                let key = try string("property name")
                props.append(.init(.string(key), try value(depth: depth + 1)))
            }
            return .dictionary([.init(.string("Object"), .dictionary(props))])
        case .callable: return .opaque("Callable", "")
        case .signal:
            let signal = try string("signal name")
            return .opaque("Signal", "\(signal) of #\(try u64("signal object"))")
        case .dictionary:
            if version == .godot4 { try containerType(flags & 3, "dictionary keys"); try containerType(flags >> 2 & 3, "dictionary values") }
            let n = try count("dictionary", elementBytes: 8)
            var pairs: [GodotPair] = []
            pairs.reserveCapacity(n)
            for _ in 0..<n {
                let k = try value(depth: depth + 1)
                pairs.append(.init(k, try value(depth: depth + 1)))
            }
            return .dictionary(pairs)
        case .array:
            if version == .godot4 { try containerType(flags & 3, "array elements") }
            let n = try count("array", elementBytes: 4)
            var items: [GodotValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(depth: depth + 1)) }
            return .array(items)
        case .packedBytes:
            let n = try count(name, elementBytes: 1)
            let padded = (n + 3) & ~3
            try need(padded, name)
            let b = Array(bytes[offset..<(offset + n)])
            offset += padded
            return .bytes(name, b)
        case .packedInt32:
            let n = try count(name, elementBytes: 4)
            return .packedIntegers(name, try ints(n, name))
        case .packedInt64:
            let n = try count(name, elementBytes: 8)
            try need(n * 8, name)
            var out: [Int64] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(Int64(bitPattern: try u64(name))) }
            return .packedIntegers(name, out)
        case .packedFloat32:
            let n = try count(name, elementBytes: 4)
            return .packedNumbers(name, try floats(n, wide: false, name))
        case .packedFloat64:
            let n = try count(name, elementBytes: 8)
            return .packedNumbers(name, try floats(n, wide: true, name))
        case .packedStrings:
            let n = try count(name, elementBytes: 4)
            var out: [String] = []
            out.reserveCapacity(n)
            // Each string's length counts a NUL terminator (Godot writes `utf8.length() + 1`).
            for _ in 0..<n {
                var text = try string(name)
                while text.hasSuffix("\u{0}") { text.removeLast() }
                out.append(text)
            }
            return .packedStrings(name, out)
        case .packedMath(let element, let components):
            let w = wide && version == .godot4 && element != "Color"
            let n = try count(name, elementBytes: components * (w ? 8 : 4))
            var out: [[Double]] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try floats(components, wide: w, name)) }
            return .packedMath(name, element, out)
        }
    }

    /// Godot 4.3+ typed containers: the element type follows the header (a builtin type id, or
    /// a class name or script path), before the count. The values themselves are as usual.
    mutating func containerType(_ kind: UInt32, _ what: String) throws(GodotDecodingError) {
        switch kind {
        case 0: return
        case 1: _ = try u32("\(what)' type")
        default: _ = try string("\(what)' class or script")
        }
    }

    /// New-format NodePath: names and subnames, `/`-joined, absolute with a leading `/`.
    mutating func nodePath() throws(GodotDecodingError) -> String {
        let at = offset
        let first = try u32("NodePath")
        guard first & 0x8000_0000 != 0 else { throw fail("NodePath in the pre-3.0 format", at: at) }
        let names = Int(first & 0x7FFF_FFFF)
        var subnames = Int(try u32("NodePath subnames"))
        let flags = try u32("NodePath flags")
        if flags & 2 != 0 { subnames += 1 }
        guard names + subnames <= remaining / 4 else { throw fail("NodePath says \(names + subnames) parts; \(remaining) bytes left", at: at) }
        var parts: [String] = []
        for _ in 0..<(names + subnames) { parts.append(try string("NodePath part")) }
        let path = parts.prefix(names).joined(separator: "/")
        let sub = parts.dropFirst(names).joined(separator: ":")
        return (flags & 1 != 0 ? "/" : "") + path + (sub.isEmpty ? "" : ":" + sub)
    }
}

/// The types of both layouts, by what their payload is.
enum GodotType: Equatable {
    case null, bool, int, float, string
    /// Components of a float type (Vector2: 2).
    case math(Int)
    case integers(Int)
    case stringName, nodePath, rid, object, callable, signal, dictionary, array
    case packedBytes, packedInt32, packedInt64, packedFloat32, packedFloat64, packedStrings
    case packedMath(String, Int)

    static let godot3: [(GodotType, String)] = [
        (.null, "Nil"), (.bool, "bool"), (.int, "int"), (.float, "float"), (.string, "String"),
        (.math(2), "Vector2"), (.math(4), "Rect2"), (.math(3), "Vector3"), (.math(6), "Transform2D"),
        (.math(4), "Plane"), (.math(4), "Quat"), (.math(6), "AABB"), (.math(9), "Basis"), (.math(12), "Transform"),
        (.math(4), "Color"), (.nodePath, "NodePath"), (.rid, "RID"), (.object, "Object"), (.dictionary, "Dictionary"),
        (.array, "Array"), (.packedBytes, "PoolByteArray"), (.packedInt32, "PoolIntArray"), (.packedFloat32, "PoolRealArray"),
        (.packedStrings, "PoolStringArray"), (.packedMath("Vector2", 2), "PoolVector2Array"),
        (.packedMath("Vector3", 3), "PoolVector3Array"), (.packedMath("Color", 4), "PoolColorArray"),
    ]

    static let godot4: [(GodotType, String)] = [
        (.null, "Nil"), (.bool, "bool"), (.int, "int"), (.float, "float"), (.string, "String"),
        (.math(2), "Vector2"), (.integers(2), "Vector2i"), (.math(4), "Rect2"), (.integers(4), "Rect2i"),
        (.math(3), "Vector3"), (.integers(3), "Vector3i"), (.math(6), "Transform2D"), (.math(4), "Vector4"),
        (.integers(4), "Vector4i"), (.math(4), "Plane"), (.math(4), "Quaternion"), (.math(6), "AABB"), (.math(9), "Basis"),
        (.math(12), "Transform3D"), (.math(16), "Projection"), (.math(4), "Color"), (.stringName, "StringName"),
        (.nodePath, "NodePath"), (.rid, "RID"), (.object, "Object"), (.callable, "Callable"), (.signal, "Signal"),
        (.dictionary, "Dictionary"), (.array, "Array"), (.packedBytes, "PackedByteArray"), (.packedInt32, "PackedInt32Array"),
        (.packedInt64, "PackedInt64Array"), (.packedFloat32, "PackedFloat32Array"), (.packedFloat64, "PackedFloat64Array"),
        (.packedStrings, "PackedStringArray"), (.packedMath("Vector2", 2), "PackedVector2Array"),
        (.packedMath("Vector3", 3), "PackedVector3Array"), (.packedMath("Color", 4), "PackedColorArray"),
        (.packedMath("Vector4", 4), "PackedVector4Array"),
    ]

    /// The type numbered `id` in `version`'s layout, and its name there.
    static func lookup(_ id: Int, _ version: GodotVersion) -> (GodotType, String)? {
        let table = version == .godot3 ? godot3 : godot4
        return id < table.count ? table[id] : nil
    }
}

extension Substring {
    func trimmingSpaces() -> String { String(self).trimmingCharacters([" ", "\t"]) }
}

extension String {
    func trimmingCharacters(_ set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
