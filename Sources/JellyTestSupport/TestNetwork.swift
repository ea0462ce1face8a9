import Foundation

/// Separate hosts on this machine for cluster tests: `scripts/netns-cluster` (network namespaces,
/// veth pairs, three bridges, optional latency between every two hosts), which the benchmarks
/// use too. NATS servers run in hosts n1–n3 on
/// the cluster network, Jelly nodes in j1 and j2 on both networks; the test process is on both
/// (an operator's machine), so it can ask NATS who leads a stream and talk to the Jelly nodes.
///
/// A fault is a host's links taken down (`cut`): for a NATS host, every peer and client loses
/// it; for a Jelly host, NATS does (its game servers still reach it). `isolate` cuts a NATS host
/// from its peers only (NATS servers route to each other on a network of their own).
public final class TestNetwork: Sendable {
    public let name: String
    public let octet: Int
    public let delayMilliseconds: Int

    /// The script, from this file's place in the repository.
    public static let script: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() } // TestNetwork.swift, JellyTestSupport, Sources
        return url.path + "/scripts/netns-cluster"
    }()

    /// Brings the hosts up (replacing a set of the same name left by a killed run). The default
    /// name and subnet come from this process's id, so two test runs on one machine (a CI clone
    /// beside a developer's run) do not take each other's hosts.
    public init(
        name: String = "t\(getpid() % 100_000)", octet: Int = 100 + Int(getpid() % 150), delayMilliseconds: Int = 0
    ) throws {
        self.name = name
        self.octet = octet
        self.delayMilliseconds = delayMilliseconds
        try run(["up", "--delay-ms", String(delayMilliseconds)])
    }

    private var environment: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["JELLY_NETNS"] = name
        e["JELLY_NETNS_NET"] = String(octet)
        return e
    }

    private func run(_ arguments: [String]) throws {
        let result = try runToEnd("/bin/bash", [Self.script] + arguments, environment: environment)
        guard result.status == 0 else {
            throw ConformanceFailure("scripts/netns-cluster \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.output)")
        }
    }

    /// The host's address on the cluster network (NATS servers and Jelly nodes): n1–n3 are
    /// .1–.3, j1 and j2 .11 and .12, as in `scripts/netns-cluster`.
    public func clusterAddress(_ host: String) -> String { "10.\(octet).1.\(Self.hostNumber(host))" }

    /// A NATS host's address on the routes network (between NATS servers only).
    public func routesAddress(_ host: String) -> String { "10.\(octet).3.\(Self.hostNumber(host))" }

    /// A Jelly host's address on the client network.
    public func clientAddress(_ host: String) -> String { "10.\(octet).2.\(Self.hostNumber(host))" }

    /// n1 → 1, j1 → 11: the last byte of a host's addresses.
    private static func hostNumber(_ host: String) -> Int {
        let number = Int(host.dropFirst()) ?? 0
        return host.hasPrefix("j") ? 10 + number : number
    }

    /// `executable arguments` run inside `host` (`ip netns exec` execs it: the pid is the
    /// program's own, so signals reach it).
    public func command(in host: String, _ executable: String, _ arguments: [String]) -> (String, [String]) {
        ("/usr/sbin/ip", ["netns", "exec", "\(name)-\(host)", executable] + arguments)
    }

    /// Takes `host`'s links to the other hosts down (a Jelly host keeps its clients).
    public func cut(_ host: String) throws { try run(["cut", host]) }

    /// Takes a NATS host's routes down: it keeps its clients, loses its peers.
    public func isolate(_ host: String) throws { try run(["isolate", host]) }

    /// Puts back what `cut` or `isolate` took down.
    public func heal(_ host: String) throws { try run(["heal", host]) }

    /// Removes the hosts (stop what runs in them first).
    public func finish() { try? run(["down"]) }
}
