import Foundation
import HTTPTypes
import Hummingbird
import JellyCore
import Logging
import NIOCore

extension JellyHTTPServer {
    static let serverName = "jelly"

    /// The router, built from the route table (`Route`), and what the direct PUT path shares
    /// with it.
    static func makeRouter(
        store: any JellyStore, configuration: JellyServerConfiguration, auth: Authenticator,
        metrics: MetricsEndpoint?, logger: Logger
    ) -> (Router<BasicRequestContext>, DirectPutHandler.Shared) {
        // HEAD is answered wherever GET is, with the GET's headers and no body (RFC 9110 §9.3.2).
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.add(middleware: NotFoundAsJSON())
        let api = API(
            store: store, auth: auth,
            bodyBytesMax: min(configuration.requestBodyBytesMax, max(store.limits.valueBytesMax, store.limits.batchBytesMax)),
            valueBytesMax: min(configuration.requestBodyBytesMax, store.limits.valueBytesMax)
        )
        let log: Logger? = configuration.logRequests ? logger : nil
        // Every path with the methods registered on it, so a wrong method can be answered 405.
        var registered: [(path: String, methods: Set<HTTPRequest.Method>)] = []
        func route(
            _ route: Route, _ recorder: RequestRecorder?,
            _ handler: @escaping @Sendable (API, Request, BasicRequestContext) async throws -> Response
        ) {
            let path = route.pattern.text
            if let i = registered.firstIndex(where: { $0.path == path }) {
                registered[i].methods.insert(route.method)
            } else {
                registered.append((path, [route.method]))
            }
            router.on(RouterPath(path), method: route.method) { request, context in
                let start = DispatchTime.now().uptimeNanoseconds
                let response = await answering { try await handler(api, request, context) }
                recorder?.record(method: request.method, path: request.uri.path, status: response.status.code, start: start)
                return response
            }
        }
        func route(_ r: Route, _ handler: @escaping @Sendable (API, Request, BasicRequestContext) async throws -> Response) {
            route(r, RequestRecorder(route: r.rawValue, log: log), handler)
        }
        // Shared with DirectPutHandler, which answers most PUTs.
        let putObject = RequestRecorder(route: Route.putObject.rawValue, log: log)
        route(.putObject, putObject) { try await $0.putObject($1, $2) }
        route(.getObject) { try await $0.getObject($1, $2) }
        route(.deleteObject) { try await $0.deleteObject($1, $2) }
        route(.listObjects) { try await $0.listObjects($1, $2) }
        route(.listPartitions) { try await $0.listPartitions($1, $2) }
        route(.me) { api, request, _ in try await api.me(request) }
        route(.preview) { try await $0.preview($1, $2) }
        // The console's files are not API requests (not counted).
        route(.console, nil) { _, _, _ in try API.consoleFile("index.html") }
        route(.consoleFile, nil) { _, _, context in try API.consoleFile(context.parameters.get("file") ?? "") }
        route(.batch) { try await $0.batch($1, $2) }
        route(.acquireLock) { try await $0.acquire($1, $2) }
        route(.inspectLock) { try await $0.inspect($1, $2) }
        route(.releaseLock) { try await $0.release($1, $2) }
        route(.renewLock) { try await $0.renew($1, $2) }
        route(.transferLock) { try await $0.transfer($1, $2) }
        route(.breakLock) { try await $0.breakLock($1, $2) }
        route(.changes) { try await $0.changes($1, $2) }
        route(.sync) { try await $0.sync($1, $2) }
        route(.appendFrame) { try await $0.appendFrame($1, $2) }
        route(.readFrames) { try await $0.readFrames($1, $2) }
        route(.trimStream) { try await $0.trimStream($1, $2) }
        route(.watch) { api, request, _ in
            // Reached only when the WebSocket upgrade was not made (`FeedSocket.accept`).
            try await api.auth.identify(request).requireServer("watch partitions (a client watches its own with /v1/partitions/{p}/changes)")
            throw APIError.badRequest("/v1/watch is a WebSocket: send a GET with Connection: Upgrade, Upgrade: websocket (docs/sync.md)")
        }
        // Health and the document are not counted as API requests.
        let health = configuration.health
        route(.health, nil) { _, _, _ in
            guard let (ok, status, detail) = health?(), !ok else {
                return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
            }
            let body = try JSONEncoder().encode(["status": status, "detail": detail])
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "application/json", .retryAfter: "1"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        let backup = configuration.backup
        route(.backup) { api, request, _ in try await api.backup(request, backup) }
        route(.openAPI, nil) { _, _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        if let metrics {
            let gauges = StoreGauges()
            route(.metrics) { api, request, _ in
                let identity = try await api.auth.identify(request)
                if !identity.isServer { throw APIError.forbidden("metrics need an API key") }
                gauges.update(metrics.storeGauges())
                return Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition()))
                )
            }
        }

        // A wrong method on a known path is 405 `bad_request`, with `Allow` naming the right ones.
        var all: [HTTPRequest.Method] = [.get, .put, .post, .delete, .patch, .head, .options, .trace, .connect]
        if let query = HTTPRequest.Method("QUERY") { all.append(query) } // the safe method with a body (IETF draft)
        for (path, registeredMethods) in registered {
            var methods = registeredMethods
            if methods.contains(.get) { methods.insert(.head) }
            let allow = methods.map(\.rawValue).sorted().joined(separator: ", ")
            for method in all where !methods.contains(method) {
                router.on(RouterPath(path), method: method) { request, _ in
                    var response = APIError.methodNotAllowed(request.method, request.uri.path).response
                    response.headers[.allow] = allow
                    return response
                }
            }
        }
        return (router, DirectPutHandler.Shared(api: api, recorder: putObject, serverName: serverName))
    }
}

/// A request for no route at all is answered like every other error, with a JSON body
/// (Hummingbird's own 404 has none).
struct NotFoundAsJSON<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            return APIError.notFound("no route for \(request.method) \(request.uri.path); the routes are listed in /v1/openapi.yaml").response
        }
    }
}
