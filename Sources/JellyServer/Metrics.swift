import CoreMetrics
import Foundation
import Synchronization

/// The server's metrics, through swift-metrics (the executable bootstraps a backend; `jelly
/// serve` uses the Prometheus one and serves it at `GET /metrics`). Handles are made once per
/// route and status and cached, so a request costs two lock-free-ish updates, not a lookup in
/// the metrics factory.
final class RequestMetrics: Sendable {
    private struct Key: Hashable { var route: String; var status: Int }
    private let counters = Mutex<[Key: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])

    func record(route: String, status: Int, nanoseconds: UInt64) {
        let key = Key(route: route, status: status)
        let counter = counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = CoreMetrics.Counter(label: "jelly_http_requests_total", dimensions: [("route", route), ("status", String(status))])
            cache[key] = c
            return c
        }
        counter.increment()
        let timer = timers.withLock { cache in
            if let t = cache[route] { return t }
            let t = CoreMetrics.Timer(label: "jelly_http_request_duration_seconds", dimensions: [("route", route)])
            cache[route] = t
            return t
        }
        timer.recordNanoseconds(Int64(truncatingIfNeeded: nanoseconds))
    }
}

/// Store gauges, refreshed on every scrape of `/metrics` from what the store reports.
final class StoreGauges: Sendable {
    static let shared = StoreGauges()
    private let gauges = Mutex<[String: CoreMetrics.Gauge]>([:])

    func update(_ values: [String: Double]) {
        for (name, value) in values {
            let gauge = gauges.withLock { cache in
                if let g = cache[name] { return g }
                let g = CoreMetrics.Gauge(label: name)
                cache[name] = g
                return g
            }
            gauge.record(value)
        }
    }
}

/// What `/metrics` needs from the process: the store's current gauges and the text exposition
/// of every metric. Both are given by the executable, which owns the metrics backend.
public struct MetricsEndpoint: Sendable {
    public var storeGauges: @Sendable () -> [String: Double]
    public var exposition: @Sendable () -> [UInt8]

    public init(storeGauges: @escaping @Sendable () -> [String: Double], exposition: @escaping @Sendable () -> [UInt8]) {
        self.storeGauges = storeGauges
        self.exposition = exposition
    }
}
