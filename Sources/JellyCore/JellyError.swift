/// The one error type of the store contract. `code` says what kind of failure it is (and maps
/// to an HTTP status in one place, in the server); `message` says what failed and what to do.
public struct JellyError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A name, value, token or option breaks a documented rule. Nothing was written.
        public static let invalidArgument = Code("invalid_argument")
        /// A value or batch is over its size limit. Nothing was written.
        public static let tooLarge = Code("too_large")
        /// The partition is locked by someone else, or the lock token sent is not the current
        /// lock (stale, expired, released or transferred). Nothing was written. `holder` tells who
        /// holds the lock now, when anyone does.
        public static let locked = Code("locked")
        /// An `ifVersion` / `ifAbsent` condition did not hold. Nothing was written.
        public static let preconditionFailed = Code("precondition_failed")
        /// The store cannot take writes (a disk write or sync failed earlier, or it is closed).
        public static let unavailable = Code("unavailable")
        /// The disk holding the store is full: nothing was written. Writes resume by themselves
        /// once space is freed; reads keep working. Not a failed device (that is `unavailable`).
        public static let diskFull = Code("disk_full")
        /// Data on disk failed its checksum or does not follow the format.
        public static let corruption = Code("corruption")
        /// The data directory is open in another process.
        public static let alreadyOpen = Code("already_open")
        /// An operating-system call failed.
        public static let io = Code("io")
        /// A remote store refused the credentials (missing, malformed or wrong).
        public static let unauthorized = Code("unauthorized")
        /// A remote store knows who is asking, but that identity may not do this.
        public static let forbidden = Code("forbidden")
        /// An object or lock that had to exist does not (remote stores' 404).
        public static let notFound = Code("not_found")
    }

    public var code: Code
    public var message: String
    /// The current holder of the lock, for `.locked` errors where the partition is locked.
    public var holder: LockInfo?

    public init(_ code: Code, _ message: String, holder: LockInfo? = nil) {
        self.code = code
        self.message = message
        self.holder = holder
    }

    public var description: String { "\(code): \(message)" }
}
