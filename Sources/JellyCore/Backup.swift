/// What an online backup did (`EmbeddedStore.backup(to:)`, `POST /v1/admin/backup`).
public struct BackupReport: Sendable, Equatable, Codable {
    public init(directory: String, version: UInt64, files: Int, bytesCopied: Int64, bytesReused: Int64, filesDeleted: Int, milliseconds: Int64) {
        self.directory = directory; self.version = version; self.files = files; self.bytesCopied = bytesCopied
        self.bytesReused = bytesReused; self.filesDeleted = filesDeleted; self.milliseconds = milliseconds
    }

    public var directory: String
    public var version: UInt64
    public var files: Int
    /// Bytes read from the store and written to the backup now.
    public var bytesCopied: Int64
    /// Bytes already in the backup directory (an earlier backup) and not copied again.
    public var bytesReused: Int64
    /// Files of an earlier backup no longer needed, deleted.
    public var filesDeleted: Int
    public var milliseconds: Int64

    /// The names of `POST /v1/admin/backup`'s answer.
    enum CodingKeys: String, CodingKey {
        case directory, version, files, milliseconds
        case bytesCopied = "bytes_copied", bytesReused = "bytes_reused", filesDeleted = "files_deleted"
    }
}

/// Progress of a long backup or restore, for a progress line.
public struct BackupProgress: Sendable {
    public init(file: String, bytesDone: Int64, bytesTotal: Int64) { self.file = file; self.bytesDone = bytesDone; self.bytesTotal = bytesTotal }

    public var file: String
    public var bytesDone: Int64
    public var bytesTotal: Int64
}

