/// Partition and key names as HTTP path segments (RFC 3986 percent-encoding of UTF-8): the
/// client and the benchmark escape with it, the server decodes with it. Byte loops, with a fast
/// path for names that need nothing: this runs on every request (Foundation's
/// `removingPercentEncoding` cost 3% of the server's CPU).
public enum PercentEncoding {
    /// `name` with every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) written `%XX`.
    public static func escape(_ name: String) -> String {
        if name.utf8.allSatisfy(isUnreserved) { return name }
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count * 3)
        for c in name.utf8 {
            if isUnreserved(c) {
                out.append(c)
            } else {
                out += [UInt8(ascii: "%"), digits[Int(c >> 4)], digits[Int(c & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `raw` with every `%XX` replaced by its byte, or nil when an escape is malformed or the
    /// result is not UTF-8.
    public static func decode(_ raw: String) -> String? {
        var raw = raw
        return raw.withUTF8 { bytes -> String? in
            guard bytes.contains(UInt8(ascii: "%")) else { return String(decoding: bytes, as: UTF8.self) }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var i = 0
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "%") {
                    guard i + 2 < bytes.count, let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) else { return nil }
                    out.append(high << 4 | low)
                    i += 3
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            return String(validating: out, as: UTF8.self)
        }
    }

    private static func isUnreserved(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
