import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

extension API {
    /// A backup's name: the directory it goes in, inside the server's backup directory. One path
    /// component, so that no request can write anywhere else on the server's machine.
    static let backupNameBytesMax = 128

    static func validateBackupName(_ name: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= backupNameBytesMax && name.first != "." &&
            name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "_" || $0 == "." }
        guard ok else {
            throw APIError.badRequest("backup name \(Names.quoted(name)) must be 1–\(backupNameBytesMax) ASCII letters, digits, '-', '_' or '.', not starting with '.' (it names a directory inside the server's backup directory)")
        }
    }

    /// `POST /v1/admin/backup` with `{"name": "nightly"}`: an online backup into the server's
    /// backup directory (a second one under the same name copies only what is new). Admin only.
    func backup(_ request: Request, _ take: (@Sendable (String, Int64?) async throws -> BackupReport)?) async throws -> Response {
        try await auth.identify(request).requireAdmin("take backups")
        struct Body: Decodable { var name: String; var rate_mib: Int? }
        let body = try await decode(Body.self, request)
        try Self.validateBackupName(body.name)
        if let rate = body.rate_mib, !(0...1_048_576).contains(rate) {
            throw APIError.badRequest("rate_mib must be 0 (no cap) to 1048576 MiB/s, not \(rate)")
        }
        guard let take else {
            throw APIError(status: .notImplemented, code: "not_implemented", message: "this server's store cannot be backed up over HTTP: in cluster mode back up the JetStream streams with the NATS tools (docs/operations.md)")
        }
        let report = try await take(body.name, body.rate_mib.map { Int64($0) << 20 })
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(report))))
    }

    /// `GET /v1/partitions?prefix=&after=&limit=`: the store's partitions holding an object or
    /// a live lock, in byte order, with their object counts and locks. Game servers and admins
    /// (the console); never clients.
    func listPartitions(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let limit = try pageLimit(request)
        // Any text is a cursor or a prefix (compared byte by byte); empty means none.
        let after = query.get("after").flatMap { $0.isEmpty ? nil : $0 }
        let prefix = query.get("prefix").flatMap { $0.isEmpty ? nil : $0 }
        try await auth.identify(request).requireServer("list partitions")
        let page = try await store.listPartitions(prefix: prefix, after: after, limit: limit)
        var out = JSONText(capacity: 64 + page.partitions.count * 96)
        out.raw("{")
        if let next = page.next { out.raw("\"next\":"); out.string(next); out.raw(",") }
        out.raw("\"partitions\":[")
        for (i, p) in page.partitions.enumerated() {
            if i > 0 { out.raw(",") }
            out.raw("{")
            if let lock = p.lock {
                out.raw("\"lock\":{\"expires_at_ms\":\(lock.expiresAtMilliseconds),\"owner\":")
                out.string(lock.owner)
                out.raw(",\"token\":\(lock.token.rawValue)},")
            }
            out.raw("\"objects\":\(p.objects),\"partition\":")
            out.string(p.partition)
            out.raw("}")
        }
        out.raw("]}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: out.buffer))
    }
}
