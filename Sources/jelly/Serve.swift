import ArgumentParser
import JellyCore
import JellyEngine
import JellyServer

#if canImport(Glibc)
import Glibc
#endif

/// `jelly serve`: HTTP API v1 over the embedded store.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve HTTP API v1 over the store in --data.",
        discussion: "Listens on 127.0.0.1:7420 by default. Stops gracefully on SIGTERM or SIGINT: stops accepting, finishes requests in flight, syncs and closes the store."
    )
    @OptionGroup var store: StoreOptions
    @Option(help: "HOST:PORT to listen on (port 0 picks a free port).") var listen = "127.0.0.1:7420"
    @Flag(name: .customLong("insecure-allow-unauthenticated-network-access"), help: "Listen on a non-loopback address without authentication. Anyone who can reach the port can read and write everything.")
    var insecure = false

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT, like 127.0.0.1:7420")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        if !loopback && !insecure {
            throw ValidationError("""
                refusing to listen on \(host) without authentication: anyone who reached it could read and \
                overwrite every player's data. Listen on 127.0.0.1, or pass \
                --insecure-allow-unauthenticated-network-access if something else guards the network.
                """)
        }
        if !loopback { printError("WARNING: serving \(host):\(port) WITHOUT AUTHENTICATION") }

        let embedded = try await failing { try store.open() }
        var config = JellyServerConfiguration()
        config.host = host
        config.port = port
        let data = store.data
        let durability = embedded.configuration.durability
        let ioMode = embedded.info().ioMode
        let app = JellyHTTPServer.application(store: embedded, configuration: config) { host, port in
            printLine("jelly serve: listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port), data \(data), durability \(durability), log writes \(ioMode)")
        }
        do {
            try await app.runService()
        } catch {
            try? await embedded.close()
            throw error
        }
        try await embedded.close()
        printError("jelly serve: stopped; store closed")
    }
}
