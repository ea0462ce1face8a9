import Foundation

/// One rule for every whole number a request carries (lock tokens, versions, TTLs, list
/// limits): a whole number, not negative, within the field's range, written the way its
/// format writes numbers. In a header or a query that is decimal digits only (`+20`, `20.0`,
/// `2e1`, `-1` are refused; spaces around a header's value are HTTP's optional whitespace, not
/// part of it). In a JSON body it is a JSON number whose value is whole: JSON Schema's
/// `integer`, which the OpenAPI document promises, so `20`, `20.0` and `2e1` are all 20, while
/// `1000.5`, `1e30`, `"20"` and `true` are refused with the field's name, and so is `-1` for a
/// token or version (a negative TTL reaches the lease rules, whose range error names the TTL).
enum WholeNumbers {
    /// The fields of JSON bodies that hold whole numbers.
    static let jsonFields: Set<String> = ["ttl_ms", "token", "lock_token", "if_version"]

    /// `text` as a whole number, or nil when it breaks the rule or overflows.
    static func parse<S: StringProtocol>(_ text: S) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }

    /// Checks every whole-number field of a JSON body (at any depth), after the decoder refused
    /// it, so a wrong kind of number gets a message naming the field instead of "not valid JSON".
    ///
    /// - Throws: 400 naming the field, or saying the body is not JSON at all.
    static func checkJSON(_ data: Data) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            // Foundation's own description says nothing more ("not in the correct format").
            throw APIError.badRequest("the body is not valid JSON; send a JSON object as docs/http-api.md shows")
        }
        try check(object, path: "")
    }

    private static func check(_ value: Any, path: String) throws {
        if let object = value as? [String: Any] {
            for (key, child) in object {
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                if jsonFields.contains(key) {
                    try checkNumber(child, path: childPath)
                } else {
                    try check(child, path: childPath)
                }
            }
        } else if let array = value as? [Any] {
            for (i, child) in array.enumerated() { try check(child, path: "\(path)[\(i)]") }
        }
    }

    private static func checkNumber(_ value: Any, path: String) throws {
        if value is NSNull { return } // an optional field sent as null: the decoder decides
        let rule = "\(path) must be a whole number from 0 to 18446744073709551615"
        // A JSON boolean is an NSNumber too, told apart by its type code ("c") below; `is Bool`
        // cannot tell them apart (an NSNumber 1 bridges to Bool).
        guard let number = value as? NSNumber else {
            throw APIError.badRequest("\(rule); got \(value is String ? "a string" : "\(type(of: value))")")
        }
        switch UInt8(bitPattern: number.objCType.pointee) {
        case UInt8(ascii: "d"), UInt8(ascii: "f"):
            // 2^64 is the first double above UInt64's range.
            let d = number.doubleValue
            guard d.rounded(.towardZero) == d, d >= 0, d < 18_446_744_073_709_551_616.0 else {
                throw APIError.badRequest("\(rule); got \(number.stringValue)")
            }
        case UInt8(ascii: "c"), UInt8(ascii: "B"):
            throw APIError.badRequest("\(rule); got a boolean")
        default:
            if number.int64Value < 0 && number.objCType.pointee != CChar(UInt8(ascii: "Q")) {
                throw APIError.badRequest("\(rule); got \(number.stringValue)")
            }
        }
    }
}
