/// Readable previews of stored values, for `jelly get --decode` and the web console: a Godot
/// Variant as JSON, UTF-8 text, hex. Errors say what the bytes are not.
public enum ValuePreview {
    public struct NotDecodable: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// A Godot Variant as JSON (the layout from the content type's `version` parameter, else the
    /// one that reads the bytes exactly, Godot 4 first).
    public static func godot(_ bytes: [UInt8], contentType: String = GodotVariant.contentType) throws -> String {
        do {
            let (value, _) = try GodotVariant.decodeAny(bytes, version: GodotVariant.version(ofContentType: contentType))
            return value.jsonText(indent: "  ")
        } catch {
            throw NotDecodable(description: "not a Godot Variant (var_to_bytes / var2bytes): \(error)")
        }
    }

    public static func text(_ bytes: [UInt8]) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw NotDecodable(description: "not UTF-8 text; try --decode hex") }
        return text
    }

    /// Hex, 16 bytes a line with offsets.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var lines: [String] = []
        var i = 0
        while i < bytes.count {
            let row = bytes[i..<min(bytes.count, i + 16)]
            let offset = String(i, radix: 16)
            var line = String(repeating: "0", count: max(0, 8 - offset.count)) + offset + " "
            for b in row { line += " " + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)]) }
            lines.append(line)
            i += 16
        }
        return lines.joined(separator: "\n")
    }
}
