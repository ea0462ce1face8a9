import Foundation
import Hummingbird
import JWTKit
import JellyCore

/// Who sent a request.
enum Identity: Sendable, Equatable {
    /// No authentication configured (loopback only): may do everything.
    case unauthenticated
    case apiKey(name: String, role: AuthConfiguration.Role)
    /// A game client: a verified token whose `sub` is this partition.
    case client(partition: String)

    var isAdmin: Bool {
        switch self {
        case .unauthenticated, .apiKey(_, .admin): return true
        default: return false
        }
    }

    var isServer: Bool {
        switch self {
        case .unauthenticated, .apiKey: return true
        case .client: return false
        }
    }
}

/// The claims of a client token: `sub` is the partition the client owns; `exp` is required.
struct ClientClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var aud: AudienceClaim?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Checks `Authorization: Bearer …` against the configured API keys and client-token keys.
struct Authenticator: Sendable {
    private let apiKeys: [(key: [UInt8], name: String, role: AuthConfiguration.Role)]
    private let clientKeys: JWTKeyCollection?
    private let audience: String?
    private let partitionBytesMax: Int
    /// Whether credentials are required at all (auth is configured).
    let enabled: Bool

    /// nil `configuration`: every request is `.unauthenticated` (allowed only on loopback).
    init(_ configuration: AuthConfiguration?, partitionBytesMax: Int) async throws {
        self.partitionBytesMax = partitionBytesMax
        guard let configuration else {
            apiKeys = []
            clientKeys = nil
            audience = nil
            enabled = false
            return
        }
        enabled = true
        apiKeys = configuration.apiKeys.map { (Array($0.key.utf8), $0.name, $0.role) }
        audience = configuration.clientTokenAudience
        if configuration.clientTokenHS256Secret != nil || configuration.clientTokenEdDSAPublicKey != nil {
            let keys = JWTKeyCollection()
            if let secret = configuration.clientTokenHS256Secret {
                await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: "hs256")
            }
            if let text = configuration.clientTokenEdDSAPublicKey {
                let key: EdDSA.PublicKey
                do {
                    key = text.contains("-----BEGIN") ? try EdDSA.PublicKey(pem: text) : try EdDSA.PublicKey(x: text, curve: .ed25519)
                } catch {
                    throw JellyError(.invalidArgument, "auth.client_tokens.eddsa_public_key is neither a PEM public key nor a base64url Ed25519 key: \(error)")
                }
                await keys.add(eddsa: key, kid: "eddsa")
            }
            clientKeys = keys
        } else {
            clientKeys = nil
        }
    }

    /// The identity of a request that needs no client-token verification: `.unauthenticated`
    /// without auth, or the API key it carries. nil otherwise (a client token, or credentials to
    /// refuse): `identify` answers those.
    func identifyServer(_ headers: HTTPFields) -> Identity? {
        guard enabled else { return .unauthenticated }
        return (try? bearerCredential(headers)).flatMap(apiKey)
    }

    /// The credential of `Authorization: Bearer …`; 401 when the header is missing or malformed.
    private func bearerCredential(_ headers: HTTPFields) throws -> String {
        guard let header = headers[.authorization] else {
            throw APIError.unauthorized("this server requires credentials: send Authorization: Bearer <api key or client token>")
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthorized("the Authorization header must be Bearer <api key or client token>")
        }
        return parts[1].trimmingOWS()
    }

    /// The API key `credential` names, compared in full against every key so that timing does
    /// not tell how much of a guess matched.
    private func apiKey(_ credential: String) -> Identity? {
        let bytes = Array(credential.utf8)
        var found: (String, AuthConfiguration.Role)?
        for candidate in apiKeys where constantTimeEqual(candidate.key, bytes) {
            found = (candidate.name, candidate.role)
        }
        return found.map { .apiKey(name: $0.0, role: $0.1) }
    }

    /// The request's identity; 401 when credentials are missing, malformed or wrong.
    func identify(_ request: Request) async throws -> Identity {
        try await identify(headers: request.headers)
    }

    /// `identify` from a request's headers alone (a WebSocket upgrade's, say).
    func identify(headers: HTTPFields) async throws -> Identity {
        guard enabled else { return .unauthenticated }
        let credential = try bearerCredential(headers)
        if let identity = apiKey(credential) { return identity }
        guard let clientKeys, credential.split(separator: ".").count == 3 else {
            throw APIError.unauthorized("the credential is not a known API key or a valid client token")
        }
        let claims: ClientClaims
        do {
            claims = try await clientKeys.verify(credential, as: ClientClaims.self, iteratingKeys: true)
        } catch {
            throw APIError.unauthorized("the client token was rejected: \(error)")
        }
        if let audience, !(claims.aud?.value.contains(audience) ?? false) {
            throw APIError.unauthorized("the client token's aud claim does not include \"\(audience)\"")
        }
        let partition = claims.sub.value
        do {
            try Names.validate(partition, as: .partition, maxBytes: partitionBytesMax)
        } catch {
            throw APIError.unauthorized("the client token's sub claim is not a valid partition name")
        }
        return .client(partition: partition)
    }
}

private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference: UInt8 = a.count == b.count ? 0 : 1
    for i in 0..<max(a.count, b.count) {
        let x = i < a.count ? a[i] : 0
        let y = i < b.count ? b[i] : 0
        difference |= x ^ y
    }
    return difference == 0
}

extension Identity {
    /// Server roles only: batches and lock operations.
    func requireServer(_ what: String) throws {
        if !isServer { throw APIError.forbidden("client tokens may not \(what); a game server does that with an API key") }
    }

    func requireAdmin(_ what: String) throws {
        if !isAdmin { throw APIError.forbidden("only an admin API key may \(what)") }
    }

    /// A client may read an object whose access allows it: `owner` in its own partition,
    /// `public` anywhere.
    func mayRead(_ access: ObjectAccess, partition: String) -> Bool {
        switch self {
        case .unauthenticated, .apiKey: return true
        case .client(let own):
            switch access.read {
            case .server: return false
            case .owner: return own == partition
            case .public: return true
            }
        }
    }

    /// Clients act only on their own partition (public reads aside).
    func requireOwnPartition(_ partition: String) throws {
        if case .client(let own) = self, own != partition {
            throw APIError.forbidden("a client token for partition \(Names.quoted(own)) may not touch partition \(Names.quoted(partition))")
        }
    }
}
