import Foundation
import GodotVariant
import HTTPTypes
import Hummingbird
import JellyCore
import NIOCore

/// What the web console (`/console`, `ConsoleAssets`) needs beyond the API: who the key is, and
/// stored values as readable text.
extension API {
    /// `GET /v1/me`: the caller's role (`admin`, `server` or `client`; `admin` when auth is off)
    /// and its key's name, so the console offers what the key may do.
    func me(_ request: Request) async throws -> Response {
        let identity = try await auth.identify(request)
        var body: [String: String]
        switch identity {
        case .unauthenticated: body = ["role": "admin"]
        case .apiKey(let name, let role): body = ["role": role == .admin ? "admin" : "server", "name": name]
        case .client(let partition): body = ["role": "client", "partition": partition]
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(body))))
    }

    /// Bytes of a value shown at most (hex and text previews are cut there).
    static let previewBytesMax = 16 << 10

    /// `GET /v1/partitions/{p}/objects/{key}/preview` (game servers and admins): the value as
    /// text for an operator: a Godot Variant decoded to JSON, JSON indented, UTF-8 text, or hex.
    func preview(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (partition, key) = try names(rawPartition: context.parameters.get("partition") ?? "", rawKey: context.parameters.get("key") ?? "")
        try await auth.identify(request).requireServer("preview values (the console)")
        guard let object = try await store.get(partition: partition, key: key) else {
            throw APIError.notFound("no object \(Names.quoted(key)) in partition \(Names.quoted(partition))")
        }
        let (kind, text) = Self.previewText(object.value, contentType: object.contentType)
        struct Body: Encodable { var key: String; var version: UInt64; var content_type: String; var size: Int; var decoded_as: String; var text: String }
        let body = Body(key: key, version: object.version, content_type: object.contentType, size: object.value.count, decoded_as: kind, text: text)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(body))))
    }

    /// The readable form of a value: by its content type first, then by what the bytes are.
    static func previewText(_ value: [UInt8], contentType: String) -> (kind: String, text: String) {
        let type = contentType.lowercased()
        if type.hasPrefix(GodotVariant.contentType) || type == "application/octet-stream" {
            if let text = try? ValuePreview.godot(value, contentType: contentType) { return ("godot", text) }
        }
        if type.hasPrefix("application/json") || type.hasSuffix("+json"),
           let object = try? JSONSerialization.jsonObject(with: Data(value), options: [.fragmentsAllowed]),
           let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) {
            return ("json", String(decoding: pretty, as: UTF8.self))
        }
        if value.count <= previewBytesMax, let text = String(validating: value, as: UTF8.self), !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" && $0 != "\r" }) {
            return ("text", text)
        }
        let shown = Array(value.prefix(previewBytesMax))
        return ("hex", ValuePreview.hex(shown) + (value.count > shown.count ? "\n… \(value.count - shown.count) more bytes" : ""))
    }

    /// `GET /console` and its files.
    static func consoleFile(_ name: String) throws -> Response {
        guard let file = ConsoleAssets.files[name] else { throw APIError.notFound("no console file \(Names.quoted(name))") }
        return Response(
            status: .ok, headers: [.contentType: file.contentType, .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: file.body))
        )
    }
}
