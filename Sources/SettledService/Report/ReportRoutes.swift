import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// The media types `GET /v1/reports/{business_date}` answers in, chosen by the request's
/// `Accept` (RFC 9110 §12.5.1): the type with the highest `q`, the page on a tie; `text/*` and
/// `*/*` match both, and no `Accept` at all accepts anything. Nothing acceptable is a 406.
package enum ReportMediaType: Sendable, Equatable {
    case html, csv

    package var contentType: String {
        switch self {
        case .html: "text/html; charset=utf-8"
        case .csv: "text/csv; charset=utf-8; header=present"
        }
    }

    /// The most media ranges of one `Accept` that are read; an `Accept` longer than that is
    /// read up to there.
    static let rangesMax = 64

    /// nil: neither type is acceptable (or the header cannot be read).
    package static func negotiate(_ accept: String?) -> ReportMediaType? {
        guard let accept else { return .html }
        // The weight of each type: that of its most specific matching range, in thousandths.
        var html: (specificity: Int, q: Int)?
        var csv: (specificity: Int, q: Int)?
        for element in accept.split(separator: ",", omittingEmptySubsequences: true).prefix(rangesMax) {
            let parts = element.split(separator: ";", omittingEmptySubsequences: false)
            let range = parts[0].trimmingBlanks.lowercased()
            var q = 1000
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard pair.count == 2, pair[0].trimmingBlanks.lowercased() == "q" else { continue }
                guard let weight = qValue(pair[1].trimmingBlanks) else { return nil }
                q = weight
            }
            let specificity: Int
            var matches: [ReportMediaType] = []
            switch range {
            case "text/html": specificity = 2; matches = [.html]
            case "text/csv": specificity = 2; matches = [.csv]
            case "text/*": specificity = 1; matches = [.html, .csv]
            case "*/*": specificity = 0; matches = [.html, .csv]
            default: continue
            }
            for type in matches {
                switch type {
                case .html: if html == nil || html!.specificity < specificity { html = (specificity, q) }
                case .csv: if csv == nil || csv!.specificity < specificity { csv = (specificity, q) }
                }
            }
        }
        let htmlQ = html?.q ?? 0, csvQ = csv?.q ?? 0
        if htmlQ == 0 && csvQ == 0 { return nil }
        return htmlQ >= csvQ ? .html : .csv
    }

    /// "1", "0.8", "0.125", "1.000" as thousandths; anything else (RFC 9110's `qvalue`) nil.
    static func qValue(_ text: Substring) -> Int? {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "0") || first == UInt8(ascii: "1") else { return nil }
        if bytes.count == 1 { return first == UInt8(ascii: "1") ? 1000 : 0 }
        guard bytes[1] == UInt8(ascii: "."), bytes.count <= 5 else { return nil }
        var value = 0, scale = 100
        for byte in bytes[2...] {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value += Int(byte - UInt8(ascii: "0")) * scale
            scale /= 10
        }
        if first == UInt8(ascii: "1") { return value == 0 ? 1000 : nil }
        return value
    }
}

extension Substring {
    /// Without the spaces and tabs around it (optional whitespace of a header value).
    fileprivate var trimmingBlanks: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}

extension SettledService {
    /// The most characters of a refused `Accept` repeated in the 406's detail.
    static let acceptEchoedMax = 200

    func reportRoutes() -> [Route] {
        [
            // Read in one read transaction, rendered after it ends, off the event loop.
            Route("GET", "/v1/reports/{business_date}", .readers, .custom { context, answer in
                answer(self.morningReport(context))
            }),
        ]
    }

    func morningReport(_ context: RequestContext) -> HTTPResponse {
        do {
            guard let date = BusinessDate(context.parameters[0]) else {
                throw APIError.invalid("business_date", "must be a date YYYY-MM-DD")
            }
            // Several Accept fields are one list (RFC 9110 §5.3).
            let accepts = context.request.headers.values("Accept")
            let accept = accepts.isEmpty ? nil : accepts.joined(separator: ", ")
            guard let type = ReportMediaType.negotiate(accept) else {
                throw APIError(406, "not_acceptable", "the report is served as text/html or text/csv; Accept allows neither: "
                               + String((accept ?? "").prefix(Self.acceptEchoedMax)))
            }
            let report = try loadMorningReport(date)
            let body: String
            switch type {
            case .html: body = ReportHTML.render(report, time: localTime)
            case .csv: body = ReportCSV.render(report, time: localTime)
            }
            var headers: [(name: String, value: String)] = [(name: "Vary", value: "Accept")]
            switch type {
            case .html:
                // The page needs nothing from anywhere: a browser is told to load nothing.
                headers.append((name: "Content-Security-Policy", value: "default-src 'none'; style-src 'unsafe-inline'"))
            case .csv:
                headers.append((name: "Content-Disposition", value: "attachment; filename=\"reconciliation-\(date).csv\""))
            }
            return HTTPResponse(status: 200, contentType: type.contentType, body: Array(body.utf8), headers: headers)
        } catch {
            return problem(for: error, in: context)
        }
    }

    /// The date's reconciliation, the suspense balances and the date's clearing, read in one
    /// read transaction.
    func loadMorningReport(_ date: BusinessDate) throws -> MorningReport {
        let channelIDs = configuration.channels.map(\.id)
        let tables = store.tables
        let now = writer.clock.wallUnixMillis()
        let madeAt = localTime.text(now)
        let time = localTime
        let schedule = jobs.schedule, clearingRegistered = jobs.isRegistered(.clearing)
        return try store.environment.read { transaction in
            let day = try ReconciliationDay.load(businessDate: date, channelIDs: channelIDs, transaction: transaction, tables: tables)
            var suspense: [String: Int128] = [:]
            for channel in day.channels {
                // A liability: money held is a credit balance, shown positive.
                let balance = try LedgerReader.balanceFen(of: AccountName.suspense(channel.channel), tables: tables, in: transaction)
                suspense[channel.channel] = -Int128(balance)
            }
            let clearing = try ClearingReport.load(date, schedule: schedule, registered: clearingRegistered, nowUnixMillis: now,
                                                   tables: tables, in: transaction)
            let disbursements = try DisbursementReport.load(date, time: time, tables: tables, in: transaction)
            return MorningReport(day: day, suspenseFen: suspense, madeAt: madeAt, clearing: clearing, disbursements: disbursements)
        }
    }
}
