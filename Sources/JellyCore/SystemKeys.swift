/// Keys a store writes for itself inside a partition, in the same commits as the objects they
/// describe. They start with `/`, which no object key may contain, so no caller can read,
/// write or list them: every listing, load and change feed leaves them out.
public enum SystemKeys {
    /// The partition's sync client registry: every client remembered, with when it last pushed.
    public static let syncRegistry = "/sync"

    /// One sync client's state: its last applied mutation id and its recent results.
    public static func syncClient(_ clientID: String) -> String { "/sync/" + clientID }

    /// Whether `key` is a system key (starts with `/`).
    @inline(__always)
    public static func isSystem(_ key: String) -> Bool { key.utf8.first == 0x2F }
}
