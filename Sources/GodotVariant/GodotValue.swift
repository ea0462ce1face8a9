/// A value decoded from Godot's binary serialization (`var2bytes` in Godot 3, `var_to_bytes` in
/// Godot 4): the plain JSON kinds, Godot's math and engine types by name, byte arrays.
///
/// Math types keep Godot's field order (`Vector2` is `[x, y]`, `Rect2` is `[x, y, width, height]`,
/// `Transform2D` its three columns, `Basis` its three rows, `Color` `[r, g, b, a]`).
public indirect enum GodotValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    /// A Godot type made of numbers: its name (`Vector2`, `Color`, `Transform3D`…) and components.
    case math(String, [Double])
    /// A Godot type made of integers (`Vector2i`, `Rect2i`…).
    case integers(String, [Int64])
    /// `NodePath` and Godot 4's `StringName`: the name, and the text.
    case named(String, String)
    /// Objects, RIDs, Callables, Signals: what can be said of them without the engine.
    case opaque(String, String)
    case array([GodotValue])
    /// Keys in the order they were encoded (Godot keeps insertion order).
    case dictionary([GodotPair])
    /// A byte array (`PackedByteArray`, Godot 3's `PoolByteArray`): its name and bytes.
    case bytes(String, [UInt8])
    /// A packed array of numbers (`PackedInt32Array`, `PoolRealArray`…): its name and values.
    case packedNumbers(String, [Double])
    case packedIntegers(String, [Int64])
    case packedStrings(String, [String])
    /// A packed array of math values (`PackedVector2Array`…): the element type and each one's components.
    case packedMath(String, String, [[Double]])
}

public struct GodotPair: Equatable, Sendable {
    public var key: GodotValue
    public var value: GodotValue
    public init(_ key: GodotValue, _ value: GodotValue) {
        self.key = key
        self.value = value
    }
}

extension GodotValue {
    /// JSON text: JSON kinds as themselves; Godot's types as one-key objects naming the type
    /// (`{"Vector2": [1, 2]}`, `{"NodePath": "/root/Player"}`, `{"PackedByteArray": "base64…"}`);
    /// a dictionary whose keys are all strings as an object, any other as
    /// `{"Dictionary": [[key, value], …]}`. Floats keep Godot's precision (shortest round-trip).
    public func jsonText(indent: String? = nil) -> String {
        var out = ""
        write(into: &out, indent: indent, depth: 0)
        return out
    }

    private func write(into out: inout String, indent: String?, depth: Int) {
        func newline(_ d: Int) { if let indent { out += "\n" + String(repeating: indent, count: d) } }
        func list<T>(_ items: [T], _ body: (T, inout String) -> Void) {
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += indent == nil ? "," : ", " }
                body(item, &out)
            }
            out += "]"
        }
        func tagged(_ name: String, _ body: (inout String) -> Void) {
            out += "{" + jsonString(name) + (indent == nil ? ":" : ": ")
            body(&out)
            out += "}"
        }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .float(let d): out += jsonNumber(d)
        case .string(let s): out += jsonString(s)
        case .math(let name, let values): tagged(name) { o in list(values) { v, o in o += jsonNumber(v) } }
        case .integers(let name, let values): tagged(name) { o in list(values) { v, o in o += String(v) } }
        case .named(let name, let text): tagged(name) { $0 += jsonString(text) }
        case .opaque(let name, let text): tagged(name) { $0 += jsonString(text) }
        case .bytes(let name, let b): tagged(name) { $0 += jsonString(base64(b)) }
        case .packedNumbers(let name, let values): tagged(name) { o in list(values) { v, o in o += jsonNumber(v) } }
        case .packedIntegers(let name, let values): tagged(name) { o in list(values) { v, o in o += String(v) } }
        case .packedStrings(let name, let values): tagged(name) { o in list(values) { v, o in o += jsonString(v) } }
        case .packedMath(let name, _, let values):
            tagged(name) { o in list(values) { v, o in list(v) { x, o in o += jsonNumber(x) } } }
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                newline(depth + 1)
                item.write(into: &out, indent: indent, depth: depth + 1)
            }
            newline(depth)
            out += "]"
        case .dictionary(let pairs):
            let stringKeys = pairs.allSatisfy { if case .string = $0.key { return true } else { return false } }
            if pairs.isEmpty { out += "{}"; return }
            if stringKeys {
                out += "{"
                for (i, pair) in pairs.enumerated() {
                    if i > 0 { out += "," }
                    newline(depth + 1)
                    if case .string(let k) = pair.key { out += jsonString(k) + (indent == nil ? ":" : ": ") }
                    pair.value.write(into: &out, indent: indent, depth: depth + 1)
                }
                newline(depth)
                out += "}"
            } else {
                out += "{\"Dictionary\":" + (indent == nil ? "" : " ") + "["
                for (i, pair) in pairs.enumerated() {
                    if i > 0 { out += "," }
                    newline(depth + 1)
                    out += "["
                    pair.key.write(into: &out, indent: nil, depth: 0)
                    out += indent == nil ? "," : ", "
                    pair.value.write(into: &out, indent: indent, depth: depth + 1)
                    out += "]"
                }
                newline(depth)
                out += "]}"
            }
        }
    }
}

/// JSON has no NaN or infinities: they are written as strings, as Godot's own JSON does not.
func jsonNumber(_ d: Double) -> String {
    if d.isNaN { return "\"nan\"" }
    if d.isInfinite { return d > 0 ? "\"inf\"" : "\"-inf\"" }
    if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) + ".0" }
    return "\(d)"
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

func base64(_ bytes: [UInt8]) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
        let b0 = UInt32(bytes[i]), b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0, b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
        let n = b0 << 16 | b1 << 8 | b2
        out.append(table[Int(n >> 18 & 63)])
        out.append(table[Int(n >> 12 & 63)])
        out.append(i + 1 < bytes.count ? table[Int(n >> 6 & 63)] : UInt8(ascii: "="))
        out.append(i + 2 < bytes.count ? table[Int(n & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
