extension DecodingError {
    /// What is wrong and where, in words (the field's path, the expected type): for errors
    /// about a JSON body or config file that a person reads.
    public var readableDescription: String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the body" : p
        }
        switch self {
        case .typeMismatch(_, let c): return "\(path(c)) has the wrong type (\(c.debugDescription))"
        case .valueNotFound(_, let c): return "\(path(c)) is null or missing"
        case .keyNotFound(let key, let c): return "\(path(c)) lacks the field \"\(key.stringValue)\""
        case .dataCorrupted(let c): return "\(path(c)): \(c.debugDescription)"
        @unknown default: return "\(self)"
        }
    }
}
