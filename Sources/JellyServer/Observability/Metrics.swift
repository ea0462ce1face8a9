import CoreMetrics
import Foundation
import HTTPTypes
import Logging
import Synchronization

/// One route's metrics, through swift-metrics (the executable bootstraps a backend; `jelly
/// serve` uses the Prometheus one and serves it at `GET /metrics`). The handles are made when
/// the route is registered (counters once per status seen), so a request costs a counter
/// increment and a histogram update, not a lookup in the metrics factory.
final class RouteMetrics: Sendable {
    private let route: String
    private let timer: CoreMetrics.Timer
    private let counters = Mutex<[Int: CoreMetrics.Counter]>([:])

    init(route: String) {
        self.route = route
        timer = CoreMetrics.Timer(label: "jelly_http_request_duration_seconds", dimensions: [("route", route)])
    }

    func record(status: Int, nanoseconds: UInt64) {
        let counter = counters.withLock { cache in
            if let c = cache[status] { return c }
            let c = CoreMetrics.Counter(label: "jelly_http_requests_total", dimensions: [("route", route), ("status", String(status))])
            cache[status] = c
            return c
        }
        counter.increment()
        timer.recordNanoseconds(Int64(truncatingIfNeeded: nanoseconds))
    }
}

/// What an answered request leaves behind, whichever path answered it (the router or
/// `DirectPutHandler`): its route's metrics and, with `log_requests`, one log line.
struct RequestRecorder: Sendable {
    let route: String
    private let metrics: RouteMetrics
    private let log: Logger?

    init(route: String, log: Logger?) {
        self.route = route
        self.metrics = RouteMetrics(route: route)
        self.log = log
    }

    /// `start`: `DispatchTime.now().uptimeNanoseconds` when the request's head arrived.
    func record(method: HTTPRequest.Method, path: String, status: Int, start: UInt64) {
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        metrics.record(status: status, nanoseconds: elapsed)
        log?.info("request", metadata: [
            "method": "\(method)", "path": "\(path)", "route": "\(route)",
            "status": "\(status)", "ms": "\(Double(elapsed / 1000) / 1000)",
        ])
    }
}

/// Store gauges, refreshed on every scrape of `/metrics` from what the store reports.
final class StoreGauges: Sendable {
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
