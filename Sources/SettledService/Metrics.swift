import Foundation
import SettledStore
import SettledHTTP

/// Request counters by route and status, and request latency, for `/metrics`.
public final class Metrics: @unchecked Sendable {
    private struct RouteStatus: Hashable {
        var route: String
        var status: Int
    }

    /// Upper bounds of the request-latency histogram buckets, in seconds.
    static let requestSecondsBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]

    private let lock = NSLock()
    private var requests: [RouteStatus: UInt64] = [:]
    private var latencyCounts = [UInt64](repeating: 0, count: Metrics.requestSecondsBounds.count + 1)
    private var latencySum: Double = 0

    func record(route: String, status: Int, nanoseconds: UInt64) {
        let seconds = Double(nanoseconds) / 1e9
        let bucket = Self.requestSecondsBounds.firstIndex { seconds <= $0 } ?? Self.requestSecondsBounds.count
        lock.lock()
        requests[RouteStatus(route: route, status: status), default: 0] += 1
        latencyCounts[bucket] += 1
        latencySum += seconds
        lock.unlock()
    }

    public var requestsTotal: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return requests.values.reduce(0, +)
    }

    /// The Prometheus text exposition (version 0.0.4).
    func exposition(writer: WriterStatistics.Snapshot, queueDepth: Int, usage: Environment.Usage, connections: Int,
                    http: HTTPServerCounters) -> String {
        lock.lock()
        let requestCounts = requests.sorted { ($0.key.route, $0.key.status) < ($1.key.route, $1.key.status) }
        let latency = latencyCounts
        let latencySeconds = latencySum
        lock.unlock()

        var text = ""
        text += "# HELP settled_http_requests_total Requests answered, by route and status.\n"
        text += "# TYPE settled_http_requests_total counter\n"
        for (key, count) in requestCounts {
            text += "settled_http_requests_total{route=\"\(Self.escape(key.route))\",status=\"\(key.status)\"} \(count)\n"
        }
        text += histogram(name: "settled_http_request_seconds", help: "Time from a complete request to its answer.",
                          bounds: Self.requestSecondsBounds.map { String($0) }, counts: latency, sum: latencySeconds)
        text += single("settled_http_connections", "gauge", "Open client connections.", "\(connections)")
        text += single("settled_http_connections_accepted_total", "counter", "Connections accepted and served.",
                       "\(http.connectionsAccepted)")
        text += single("settled_http_connections_refused_total", "counter",
                       "Connections answered 503 too_many_connections and closed: the server held connections_max.",
                       "\(http.connectionsRefused)")
        text += single("settled_http_requests_refused_total", "counter",
                       "Requests refused by the transport before routing (malformed, too large, unsupported).",
                       "\(http.requestsRefused)")
        text += single("settled_http_event_loop_wakeups_total", "counter",
                       "Wake-ups of the connection event loops with something to do.", "\(http.eventLoopWakeups)")
        text += single("settled_writer_batches_total", "counter", "Write transactions committed by the writer.", "\(writer.batches)")
        text += single("settled_writer_requests_total", "counter", "Requests applied by the writer.", "\(writer.requests)")
        text += single("settled_writer_refused_total", "counter", "Requests refused because the writer queue was full.",
                       "\(writer.refusedRequests)")
        text += single("settled_writer_queue_depth", "gauge", "Requests waiting for the writer.", "\(queueDepth)")
        text += histogram(name: "settled_writer_batch_size", help: "Requests per committed write transaction.",
                          bounds: WriterStatistics.batchSizeBounds.map { String($0) }, counts: writer.batchSizeCounts,
                          sum: Double(writer.requests))
        text += histogram(name: "settled_writer_commit_seconds", help: "Time to apply and commit one batch, sync included.",
                          bounds: WriterStatistics.commitSecondsBounds.map { String($0) }, counts: writer.commitSecondsCounts,
                          sum: writer.commitSecondsSum)
        text += single("settled_writer_store_commit_seconds_total", "counter",
                       "Of the batches' time, the time in the store's commit itself: writing and syncing their pages.",
                       "\(writer.storeCommitSecondsSum)")
        text += single("settled_store_map_size_bytes", "gauge", "Size of the LMDB memory map.", "\(usage.mapSizeBytes)")
        text += single("settled_store_used_bytes", "gauge", "Bytes of the map in use.", "\(usage.usedBytes)")
        text += single("settled_store_map_growths_total", "counter", "Times the map was grown after MDB_MAP_FULL.", "\(writer.mapGrowths)")
        text += single("settled_store_full_batches_total", "counter", "Writes refused because the store is at map_size_max (a request that does not fit, or a batch whose commit does not; answered 507 store_full).", "\(writer.storeFullBatches)")
        text += single("settled_store_readers", "gauge", "Reader slots in use.", "\(usage.readersUsed)")
        return text
    }

    /// A metric with one sample: its HELP and TYPE lines and its value.
    private func single(_ name: String, _ type: String, _ help: String, _ value: String) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
    }

    private func histogram(name: String, help: String, bounds: [String], counts: [UInt64], sum: Double) -> String {
        var text = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (index, bound) in bounds.enumerated() {
            cumulative += counts[index]
            text += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += counts[bounds.count]
        text += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n"
        text += "\(name)_sum \(sum)\n"
        text += "\(name)_count \(cumulative)\n"
        return text
    }

    private static func escape(_ label: String) -> String {
        label.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}
