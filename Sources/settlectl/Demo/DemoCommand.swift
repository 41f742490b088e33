import Glibc
import SettledCore

/// `settlectl demo`: a whole business day played against a running daemon through its API,
/// as the gateway, the channels and an operator would: sample billers, households, customers
/// and bills; orders through every funding mix with their notifications; the channels'
/// statements written in their own formats (a lost notification and a short payment planted)
/// and imported; the date's clearing; then the figures and where to look.
enum DemoCommand {
    static let options: [OptionSpec] = [
        .value("dir", "DIR", "where the statements, pain.001 files and the report are written (default var/demo/DATE-RUN when ./var exists, else ./settled-demo-DATE-RUN)"),
        .value("date", "YYYY-MM-DD", "the business date to play (default: the latest past date the daemon has neither cleared nor seen a statement of)"),
    ]

    static let description = """
        Plays one business day against the running daemon through its API, in under a minute:

          - nine sample billers (electricity, water, gas in Jiangsu, Zhejiang and Shanghai, each
            with its bank account; the same billers every run), 18 households with two bills
            each (POST /v1/bills/import), six customers who bind them, a wallet credit, points
            and a red packet;
          - 17 orders through every funding mix, as the gateway (POST /v1/orders, then the
            channel's notification): wechat, alipay and unionpay alone, the wallet, a red packet
            with a channel, points with a channel, wallet with points, one order of three billers
            in three provinces with a top-up, a partial and a full refund;
          - the day's statements of the three channels in their own formats, written to the
            output directory: WeChat Pay's trade bill (UTF-8 with BOM, backticks), Alipay's
            business bill (GBK, # header and footer), UnionPay's INN…ZM file (fixed width, zipped).
            Two discrepancies are planted: a lost notification (a unionpay payment the daemon
            never heard of: reconciliation captures it) and a short payment (a wechat line
            1.00 yuan short of the capture: an open amount_mismatch, its order held from
            clearing). Fees are written at 60, 60 and 50 basis points, as conf/settled-dev.conf
            expects. Each statement is imported (POST /v1/statements);
          - the date's clearing (POST /v1/clearing/runs) and each payout's pain.001 file;
          - auto-debit: three customers sign an agreement for a household each (wallet, an
            alipay withholding, one paused at once) and a bill of this month is imported for
            each; the demo waits, at most 30 s, reading GET /v1/autodebit/requests, until the
            daemon has paid the wallet's debit, listed the withholding for the gateway and skipped
            the paused one ([autodebit] delay_seconds must be short: conf/settled-dev.conf sets
            2), then collects the withholding as the gateway (the channel's success, paid now).
            These orders take today's business date (their capture or paid_at): cleared by the
            job on T+1;
          - a disbursement: Jiangsu's electricity biller submits a PV feed-in subsidy batch
            (光伏上網電費補貼) of three lines and a bad one (a household it never billed,
            unknown_account); the escrow account's camt.053 with the biller's transfer naming
            the batch is written and imported (POST /v1/bank-statements): the batch is funded
            and instructed; its pain.001 is fetched; a second camt.053 with the bank's debit of
            the instruction and one line returned is imported;
          - the morning report (HTML), written to the output directory with the rest.

        It prints the figures (orders, paid fen per channel, matched and discrepancies, payouts
        per biller with their net fen, the debits and their orders' business date, the batch's
        lines by status) and the settlectl commands to try next; --json prints
        them as one JSON document.

        The business date. A channel payment's business date is that of its paid_at, and a date
        is cleared once (the daemon's own jobs clear each date on T+1). So the demo plays a past
        date that has no clearing run and no statement of wechat, alipay or unionpay yet: the
        latest such date before the date the clearing job runs next (dates before that are
        either cleared by the job or earlier than the daemon's first start, which the jobs never
        clear), and pays with paid_at in it. A second run on the same daemon finds the date
        before, so each run reconciles and clears its own day. Orders paid without a channel
        (wallet, points) take the date of their capture, today, and are cleared by the job.
        Ids carry the date and a random run number: runs never collide.
        """

    /// A statement import or the clearing may take longer than an ordinary answer.
    static let timeoutSecondsDefault = 120
    /// How many dates before the first candidate are looked at for a free one.
    static let searchDaysMax = 400
    /// The channels the demo pays through, with the fee rate its statements charge.
    static let channels: [(id: String, feeBps: Int)] = [("wechat", 60), ("alipay", 60), ("unionpay", 50)]
    /// The short payment: the statement shows the capture less this.
    static let shortFen: Int64 = 100

    static func run(_ context: Context) throws(Failure) {
        _ = try context.arguments.positionals(named: [])
        var requestedDate: BusinessDate?
        if let text = context.arguments.value("date") {
            guard let date = BusinessDate(text) else { throw .usage("--date must be a date YYYY-MM-DD, not '\(text)'") }
            requestedDate = date
        }
        if let dir = context.arguments.value("dir"), dir.isEmpty { throw .usage("--dir needs a directory") }
        var day = try DemoDay(context: context)
        try day.pickDate(requested: requestedDate)
        try day.makeDirectory(context.arguments.value("dir"))
        try day.setUp()
        try day.payTheDay()
        try day.writeAndImportStatements()
        try day.clear()
        try day.startAutoDebits()
        try day.disburse()
        try day.finishAutoDebits()
        try day.fetchReportAndBalance()
        Output.out(context.json ? day.summaryJSON() : day.summaryText(socket: (try? context.socketPath()) ?? Defaults.socketPath))
    }
}

/// One run of the demo: its requests and what it learnt on the way.
struct DemoDay {
    let context: Context
    var today = BusinessDate(year: 2000, month: 1, day: 1)
    var plan = DemoPlan(date: BusinessDate(year: 2000, month: 1, day: 1), runNumber: "000000")
    var directory = ""
    /// The offset of the times the demo's gateway sends (paid_at), the daemon's.
    var zoneOffset = "+08:00"

    struct PlacedOrder {
        var id: String
        var mix: String
        var customer: String
        var totalFen: Int64
        var channel: String?
        var channelFen: Int64
        var itemIDs: [String]
        var billers: [String]
    }

    var orders: [PlacedOrder] = []
    /// Statement lines per channel, in the order the channel saw them.
    var lines: [String: [DemoStatementLine]] = [:]
    var statementFiles: [String: String] = [:]
    var imports: [String: JSONValue] = [:]
    var reconciliation: JSONValue = .null
    /// The date's discrepancies left open for an operator.
    var openDiscrepancies: [JSONValue] = []
    var clearingRun: JSONValue = .null
    var instructionFiles: [String: String] = [:]
    var instructionNote: String?
    var reportFile = ""
    var trialBalance: JSONValue = .null
    var lostNotification: (order: String, txn: String, amountFen: Int64)?
    var shortPayment: (order: String, txn: String, capturedFen: Int64, statementFen: Int64)?
    var refunds: [(refundID: String, order: String, channel: String, amountFen: Int64)] = []
    var sequence = 0
    var autoDebit = DemoAutoDebitRun()
    var disbursement = DemoDisbursementRun()
    /// The escrow account the daemon pays from, as its payouts' pain.001 name it (nil: none configured).
    var escrowAccount: String?

    /// `context`'s socket and timeout; its requests never print an answer themselves, not
    /// even with --json (the demo's own figures are its output; a refusal goes to stderr).
    init(context: Context) throws(Failure) {
        var globals = context.globals
        globals.json = false
        self.context = Context(command: context.command, arguments: context.arguments, globals: globals, environment: context.environment)
    }

    // MARK: requests

    @discardableResult
    func call(_ method: String, _ path: String, _ body: String? = nil, key: String? = nil,
              contentType: String = ContentType.json) throws(Failure) -> JSONValue {
        var headers: [(name: String, value: String)] = []
        if let key { headers.append((name: "Idempotency-Key", value: key)) }
        let answer = try context.request(method, path, body: body.map { Array($0.utf8) }, contentType: contentType, headers: headers)
        if answer.body.isEmpty { return .null }
        return try answer.document()
    }

    func get(_ path: String) throws(Failure) -> JSONValue { try call("GET", path) }

    /// The JSON of an object built by `build`.
    static func object(_ build: (inout JSONWriter) -> Void) -> String {
        var json = JSONWriter()
        json.beginObject()
        build(&json)
        json.endObject()
        return String(decoding: json.bytes, as: UTF8.self)
    }

    // MARK: the date

    /// `requested`, or the latest past date with no clearing run and no statement of the
    /// demo's channels, before the date the clearing job runs next.
    mutating func pickDate(requested: BusinessDate?) throws(Failure) {
        let status = try get("/v1/status")
        guard let todayText = status["business_date"]?.string, let today = BusinessDate(todayText) else {
            throw .failed("the daemon's status names no business date")
        }
        self.today = today
        // The daemon's own zone offset now (its status's "now"), so that paid_at falls on the date.
        if let now = status["now"]?.string {
            let suffix = String(now.suffix(6))
            if now.hasSuffix("Z") {
                zoneOffset = "Z"
            } else if suffix.count == 6, suffix.first == "+" || suffix.first == "-", Array(suffix)[3] == ":" {
                zoneOffset = suffix
            }
        }
        var candidate = today.adding(days: -1)
        if let next = status["jobs"]?.array?.first(where: { $0["name"]?.string == "clearing" })?["next_business_date"]?.string,
           let nextDate = BusinessDate(next) {
            candidate = min(candidate, nextDate.adding(days: -1))
        }
        let date: BusinessDate
        if let requested {
            guard requested < today else { throw .usage("--date \(requested) is not in the past (today is \(today))") }
            if let reason = try taken(requested) {
                throw .failed("\(requested) cannot be played: \(reason); leave out --date to find a free one")
            }
            date = requested
        } else {
            var found: BusinessDate?
            for _ in 0..<DemoCommand.searchDaysMax {
                if try taken(candidate) == nil {
                    found = candidate
                    break
                }
                candidate = candidate.adding(days: -1)
            }
            guard let found else {
                throw .failed("no date in the \(DemoCommand.searchDaysMax) days before \(candidate.adding(days: DemoCommand.searchDaysMax)) is free of a clearing run and statements")
            }
            date = found
        }
        var generator = SystemRandomNumberGenerator()
        let number = String(UInt32.random(in: 0..<1_000_000, using: &generator))
        plan = DemoPlan(date: date, runNumber: String(repeating: "0", count: 6 - number.count) + number)
    }

    /// Why `date` cannot be the demo's, nil when it can.
    func taken(_ date: BusinessDate) throws(Failure) -> String? {
        do {
            _ = try get("/v1/clearing/runs/\(date)")
            return "it has a clearing run"
        } catch {
            guard case .refused(404, _, _, _) = error else { throw error }
        }
        let day = try get("/v1/reconciliation/\(date)")
        let channels = day["channels"]?.array ?? []
        for (channel, _) in DemoCommand.channels {
            guard let entry = channels.first(where: { $0["channel"]?.string == channel }) else {
                throw .failed("the daemon has no channel \(channel) configured (a [channel.\(channel)] section): the demo pays through wechat, alipay and unionpay")
            }
            if let statement = entry["statement"], statement != .null { return "it has a statement of \(channel)" }
        }
        return nil
    }

    mutating func makeDirectory(_ given: String?) throws(Failure) {
        var status = stat()
        let path = given ?? (stat("var", &status) == 0 && (status.st_mode & 0o170000) == 0o040000
                             ? "var/demo/\(plan.tag)" : "settled-demo-\(plan.tag)")
        var built = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o755) != 0 && errno != EEXIST {
                throw .input("cannot make the directory \(built): \(String(cString: strerror(errno)))")
            }
        }
        directory = path
    }

    // MARK: the world

    mutating func setUp() throws(Failure) {
        for biller in DemoPlan.billers {
            try call("PUT", "/v1/billers/\(biller.id)", Self.object { json in
                json.field("name", biller.name)
                json.field("utility", biller.utility)
                json.field("province", biller.province)
                json.beginObject("settlement_account")
                json.field("bank", biller.bank)
                json.field("account_no", biller.accountNo)
                json.field("account_name", biller.name)
                json.endObject()
                json.field("fee_bearer", biller.feeBearer)
            })
        }
        let imported = try call("POST", "/v1/bills/import", plan.billsNDJSON, contentType: ContentType.ndjson)
        if let rejected = imported["rejected"]?.array, !rejected.isEmpty {
            throw .failed("the daemon rejected \(rejected.count) of the demo's bills: \(rejected.map(\.display).joined(separator: "; "))")
        }
        for customer in plan.customers {
            for household in customer.households {
                let biller = plan.biller(of: household)
                try call("PUT", Target.make(["v1", "customers", customer.id, "accounts", biller.id, plan.households[household].accountNo]))
            }
        }
    }

    // MARK: the orders

    func billItems(_ households: [Int]) -> [String] { households.flatMap { plan.households[$0].bills.map(\.id) } }

    /// Places one order as the gateway; answers it as placed.
    mutating func order(_ mix: String, customer: Int, households: [Int], topup: (household: Int, fen: Int64)? = nil,
                        redPacket: String? = nil, points: Int64 = 0, walletFen: Int64 = 0, channel: String?) throws(Failure) -> PlacedOrder {
        sequence += 1
        let customerID = plan.customers[customer].id
        let bills = billItems(households)
        let body = Self.object { json in
            json.field("customer_id", customerID)
            json.beginArray("items")
            for bill in bills {
                json.beginObject()
                json.field("kind", "bill")
                json.field("bill_id", bill)
                json.endObject()
            }
            if let topup {
                json.beginObject()
                json.field("kind", "topup")
                json.field("biller_id", plan.biller(of: topup.household).id)
                json.field("account_no", plan.households[topup.household].accountNo)
                json.field("amount_fen", topup.fen)
                json.endObject()
            }
            json.endArray()
            json.beginObject("funding")
            if let redPacket {
                json.beginArray("red_packet_ids")
                json.value(redPacket)
                json.endArray()
            }
            if points > 0 { json.field("points", points) }
            if walletFen > 0 { json.field("wallet_fen", walletFen) }
            if let channel { json.field("channel", channel) }
            json.endObject()
        }
        let answer = try call("POST", "/v1/orders", body, key: "demo-\(plan.tag)-order-\(sequence)")
        guard let id = answer["order_id"]?.string, let total = answer["total_fen"]?.int64,
              let channelFen = answer["funding"]?["channel_fen"]?.int64 else {
            throw .failed("the order's answer has no order_id, total_fen or funding.channel_fen")
        }
        var billers: [String] = []
        for item in answer["items"]?.array ?? [] {
            if let biller = item["biller_id"]?.string, !billers.contains(biller) { billers.append(biller) }
        }
        let placed = PlacedOrder(id: id, mix: mix, customer: customerID, totalFen: total, channel: channel, channelFen: channelFen,
                                 itemIDs: (answer["items"]?.array ?? []).compactMap { $0["item_id"]?.string }, billers: billers)
        orders.append(placed)
        return placed
    }

    /// The channel's transaction id of the run's `number`th payment, in the channel's own style.
    func channelTxnID(_ channel: String, _ number: Int, refund: Bool = false) -> String {
        let serial = String(repeating: "0", count: 4 - String(number).count) + String(number)
        let day = DemoPlan.compact(plan.date)
        switch channel {
        case "wechat": return (refund ? "5030" : "4200") + "00" + day + plan.runNumber + serial
        case "alipay": return day + "22001" + plan.runNumber + serial
        default: return day + plan.runNumber + (refund ? "9" : "1") + serial  // UnionPay's queryId: 19 of its 21
        }
    }

    static func fee(_ fen: Int64, bps: Int) -> Int64 { Int64((Int128(fen) * Int128(bps) + 5_000) / 10_000) }

    static func feeBps(_ channel: String) -> Int { DemoCommand.channels.first { $0.id == channel }?.feeBps ?? 0 }

    /// The time of the run's `number`th payment on the date: from 08:00, every 37 minutes.
    static func clock(_ number: Int) -> (Int, Int, Int) {
        let minutes = 8 * 60 + number * 37
        return (minutes / 60 % 24, minutes % 60, (number * 13) % 60)
    }

    /// The gateway relays the channel's success (paid at the demo's date) unless the
    /// notification is lost; the channel's statement shows the payment either way,
    /// `statementFen` where it differs from what the channel was asked.
    mutating func pay(_ placed: PlacedOrder, lost: Bool = false, statementFen: Int64? = nil) throws(Failure) {
        guard let channel = placed.channel, placed.channelFen > 0 else { return }
        let number = orders.count
        let txn = channelTxnID(channel, number)
        let (hour, minute, second) = Self.clock(number)
        if !lost {
            let two = DemoStatementWriters.two
            let paidAt = "\(plan.date)T\(two(hour)):\(two(minute)):\(two(second))\(zoneOffset)"
            try call("POST", "/v1/notifications", Self.object { json in
                json.field("channel", channel)
                json.field("order_id", placed.id)
                json.field("channel_txn_id", txn)
                json.field("amount_fen", placed.channelFen)
                json.field("status", "success")
                json.field("paid_at", paidAt)
            })
        }
        let fen = statementFen ?? placed.channelFen
        lines[channel, default: []].append(DemoStatementLine(kind: .payment, channelTxnID: txn, orderID: placed.id, amountFen: fen,
                                                             feeFen: Self.fee(fen, bps: Self.feeBps(channel)),
                                                             hour: hour, minute: minute, second: second))
        if lost { lostNotification = (placed.id, txn, fen) }
        if let statementFen { shortPayment = (placed.id, txn, placed.channelFen, statementFen) }
    }

    /// Refunds `items` of the order (all when nil) as the gateway; the channel's statement
    /// shows the refund at the end of the day.
    mutating func refund(_ placed: PlacedOrder, items: [String]?) throws(Failure) {
        guard let channel = placed.channel,
              let payment = lines[channel]?.first(where: { $0.orderID == placed.id && $0.kind == .payment }) else {
            preconditionFailure("the demo refunds only orders it paid through a channel")
        }
        let refundID = "demo-\(plan.tag)-rf\(refunds.count + 1)"
        let answer = try call("POST", "/v1/orders/\(placed.id)/refunds", Self.object { json in
            json.field("refund_id", refundID)
            if let items {
                json.beginArray("item_ids")
                for item in items { json.value(item) }
                json.endArray()
            }
            json.field("reason", "the customer paid this bill at the counter too")
        })
        guard let channelFen = answer["returned"]?["channel_fen"]?.int64 else {
            throw .failed("the refund's answer has no returned.channel_fen")
        }
        refunds.append((refundID, placed.id, channel, channelFen))
        guard channelFen > 0 else { return }
        lines[channel, default: []].append(DemoStatementLine(
            kind: .refund, channelTxnID: payment.channelTxnID, refundTxnID: channelTxnID(channel, 100 + refunds.count, refund: true),
            orderID: placed.id, refundID: refundID, amountFen: channelFen, feeFen: 0, hour: 21, minute: 10 * refunds.count, second: 0))
    }

    mutating func payTheDay() throws(Failure) {
        let customers = plan.customers
        func household(_ customer: Int, _ index: Int) -> Int { customers[customer].households[index] }
        let expires = "\(today.adding(days: 30))T23:59:59\(zoneOffset)"

        // The customers' own money and the platform's gifts.
        let walletCustomer = 3, pointsCustomer = 5, packetCustomer = 4
        try call("POST", Target.make(["v1", "customers", customers[walletCustomer].id, "wallet", "credits"]), Self.object { json in
            json.field("amount_fen", Int64(300_000))
            json.field("reference", "demo-\(plan.tag)-credit")
        }, key: "demo-\(plan.tag)-credit")
        for (customer, points) in [(pointsCustomer, Int64(5_000)), (walletCustomer, Int64(2_000))] {
            try call("POST", Target.make(["v1", "customers", customers[customer].id, "points"]), Self.object { json in
                json.field("points", points)
                json.field("reference", "demo-\(plan.tag)-points-\(customer)")
            }, key: "demo-\(plan.tag)-points-\(customer)")
        }
        let packet = "demo-\(plan.tag)-rp1"
        let packetHousehold = household(packetCustomer, 0)
        try call("POST", "/v1/red-packets", Self.object { json in
            json.field("red_packet_id", packet)
            json.field("customer_id", customers[packetCustomer].id)
            json.field("value_fen", Int64(800))
            json.field("min_order_fen", Int64(1_000))
            json.field("expires_at", expires)
            json.beginArray("utilities")
            json.value(plan.biller(of: packetHousehold).utility)
            json.endArray()
        }, key: "demo-\(plan.tag)-rp1")

        // Each channel alone.
        try pay(try order("wechat", customer: 0, households: [household(0, 0)], channel: "wechat"))
        try pay(try order("alipay", customer: 1, households: [household(1, 0)], channel: "alipay"))
        try pay(try order("unionpay", customer: 2, households: [household(2, 0)], channel: "unionpay"))
        // The wallet alone (no channel: captured at once, today's business date).
        let walletHousehold = household(walletCustomer, 0)
        _ = try order("wallet", customer: walletCustomer, households: [walletHousehold],
                      walletFen: plan.households[walletHousehold].totalFen, channel: nil)
        // A red packet and a channel; points and a channel; wallet and points.
        try pay(try order("red_packet+wechat", customer: packetCustomer, households: [packetHousehold], redPacket: packet, channel: "wechat"))
        let pointsHousehold = household(pointsCustomer, 0)
        try pay(try order("points+alipay", customer: pointsCustomer, households: [pointsHousehold],
                          points: min(3_000, plan.households[pointsHousehold].totalFen / 2), channel: "alipay"))
        let mixedHousehold = household(walletCustomer, 1)
        let mixedPoints = min(2_000, plan.households[mixedHousehold].totalFen / 2)
        _ = try order("wallet+points", customer: walletCustomer, households: [mixedHousehold], points: mixedPoints,
                      walletFen: plan.households[mixedHousehold].totalFen - mixedPoints, channel: nil)
        // One order of three billers in three provinces: two households' bills and a top-up
        // of the customer's prepaid meter.
        try pay(try order("multi_biller+unionpay", customer: 0, households: [household(0, 1), household(0, 2)],
                          topup: (household(0, 0), 5_000), channel: "unionpay"))
        // Paid, then refunded: one bill of two, and a whole order.
        let partly = try order("wechat", customer: 1, households: [household(1, 1)], channel: "wechat")
        try pay(partly)
        try refund(partly, items: [partly.itemIDs[0]])
        let wholly = try order("alipay", customer: 2, households: [household(2, 2)], channel: "alipay")
        try pay(wholly)
        try refund(wholly, items: nil)
        // The planted discrepancies: a payment whose notification never came, and one the
        // channel's statement shows short.
        try pay(try order("unionpay", customer: packetCustomer, households: [household(packetCustomer, 1)], channel: "unionpay"), lost: true)
        let short = try order("wechat", customer: pointsCustomer, households: [household(pointsCustomer, 1)], channel: "wechat")
        try pay(short, statementFen: short.channelFen - DemoCommand.shortFen)
        // The rest of the day's bills, through each channel in turn.
        let rest: [(Int, Int, String)] = [(1, 2, "unionpay"), (2, 1, "wechat"), (3, 2, "alipay"), (4, 2, "wechat"), (5, 2, "unionpay")]
        for (customer, index, channel) in rest {
            try pay(try order(channel, customer: customer, households: [household(customer, index)], channel: channel))
        }
    }

    // MARK: statements, clearing, report

    mutating func writeAndImportStatements() throws(Failure) {
        let date = plan.date
        let exported = "\(date.adding(days: 1).year)年\(DemoStatementWriters.two(date.adding(days: 1).month))月\(DemoStatementWriters.two(date.adding(days: 1).day))日 09:12:52"
        for (channel, bps) in DemoCommand.channels {
            // In the order of their times, as a channel lists the day.
            let channelLines = (lines[channel] ?? []).sorted { ($0.hour, $0.minute, $0.second) < ($1.hour, $1.minute, $1.second) }
            let name: String, bytes: [UInt8]
            switch channel {
            case "wechat":
                name = "wechat_1900000109_\(DemoPlan.compact(date))_ALL.csv"
                bytes = DemoStatementWriters.weChat(channelLines, date: date, feeBps: bps)
            case "alipay":
                name = "\(DemoStatementWriters.alipayAccount)_\(DemoPlan.compact(date))_业务明细.csv"
                bytes = try DemoStatementWriters.gbk(DemoStatementWriters.alipayText(channelLines, date: date, exportedAt: exported))
            default:
                // Delivered zipped, the INN file inside.
                let inner = DemoStatementWriters.unionPayName(date)
                name = inner + ".zip"
                bytes = DemoStatementWriters.zip(name: inner, DemoStatementWriters.unionPay(channelLines, date: date))
            }
            let path = directory + "/" + name
            try ReportCommands.write(bytes, to: path)
            statementFiles[channel] = path
            let answer = try context.request("POST", Target.make(["v1", "statements"], query: [("channel", channel), ("business_date", date.description)]),
                                             body: bytes, contentType: ContentType.octetStream)
            imports[channel] = try answer.document()
        }
        reconciliation = try get("/v1/reconciliation/\(date)")
        openDiscrepancies = try get(Target.make(["v1", "discrepancies"], query: [("status", "open"), ("business_date", date.description)]))["discrepancies"]?.array ?? []
    }

    mutating func clear() throws(Failure) {
        clearingRun = try call("POST", "/v1/clearing/runs", Self.object { json in json.field("business_date", plan.date.description) },
                               key: "demo-\(plan.tag)-clearing")
        for payout in clearingRun["payouts"]?.array ?? [] {
            guard let id = payout["payout_id"]?.string, payout["status"]?.string != "nothing_due" else { continue }
            do {
                let answer = try context.request("GET", Target.make(["v1", "payouts", id, "instruction"], query: [("format", "pain.001")]))
                let path = directory + "/\(id).pain.001.xml"
                try ReportCommands.write(answer.body, to: path)
                instructionFiles[id] = path
                if escrowAccount == nil { escrowAccount = Self.debtorAccount(in: String(decoding: answer.body, as: UTF8.self)) }
            } catch {
                guard case .refused(409, "escrow_not_configured", let detail, _) = error else { throw error }
                instructionNote = detail
                break
            }
        }
    }

    /// The first account number of a pain.001's `DbtrAcct` (`Othr/Id` or `IBAN`).
    static func debtorAccount(in xml: String) -> String? {
        let bytes = Array(xml.utf8)
        func find(_ needle: String, from: Int) -> Int? {
            let pattern = Array(needle.utf8)
            guard bytes.count >= pattern.count, from <= bytes.count - pattern.count else { return nil }
            for index in from...(bytes.count - pattern.count) where bytes[index..<index + pattern.count].elementsEqual(pattern) { return index }
            return nil
        }
        guard let start = find("<DbtrAcct>", from: 0), let end = find("</DbtrAcct>", from: start) else { return nil }
        let inner = String(decoding: bytes[(start + 10)..<end], as: UTF8.self)
        for part in inner.split(separator: "<") {
            guard let close = part.firstIndex(of: ">"), !part.hasPrefix("/") else { continue }
            let text = part[part.index(after: close)...].filter { !$0.isWhitespace }
            if !text.isEmpty { return String(text) }
        }
        return nil
    }

    mutating func fetchReportAndBalance() throws(Failure) {
        let answer = try context.request("GET", Target.make(["v1", "reports", plan.date.description]),
                                         headers: [(name: "Accept", value: "text/html")])
        reportFile = directory + "/morning-report-\(plan.date).html"
        try ReportCommands.write(answer.body, to: reportFile)
        trialBalance = try get("/v1/ledger/trial-balance")
    }

    // MARK: the summary

    struct ChannelFigures {
        var orders = 0
        var paymentsCount = 0
        var paymentsFen: Int64 = 0
        var refundsCount = 0
        var refundsFen: Int64 = 0
        var feesFen: Int64 = 0
    }

    /// What the demo's channel took and gave back, as its statement says.
    func figures(_ channel: String) -> ChannelFigures {
        var figures = ChannelFigures()
        figures.orders = orders.filter { $0.channel == channel && $0.channelFen > 0 }.count
        for line in lines[channel] ?? [] {
            switch line.kind {
            case .payment:
                figures.paymentsCount += 1
                figures.paymentsFen += line.amountFen
                figures.feesFen += line.feeFen
            case .refund:
                figures.refundsCount += 1
                figures.refundsFen += line.amountFen
                figures.feesFen -= line.feeFen
            }
        }
        return figures
    }

    func reconciled(_ channel: String) -> JSONValue? {
        reconciliation["channels"]?.array?.first { $0["channel"]?.string == channel }
    }

    var nextCommands: [String] {
        let date = plan.date
        var commands = [
            "settlectl report \(date) --html report.html",
            "settlectl discrepancies --open --date \(date)",
            "settlectl clearing show \(date)",
            "settlectl payouts --status instructed",
            "settlectl trace --order \(shortPayment?.order ?? orders.first?.id ?? "ORDER")",
            "settlectl arrears \(plan.customers[0].id)",
            "settlectl wallet \(plan.customers[3].id)",
            "settlectl trial-balance",
        ]
        if let short = shortPayment, let open = openDiscrepancies.first(where: { $0["order_id"]?.string == short.order })?["discrepancy_id"]?.string {
            commands.append("settlectl resolve \(open) --action write_off --note \"short by \(Text.yuan(DemoCommand.shortFen)) yuan, below the dispute threshold\"")
        }
        if let payout = clearingRun["payouts"]?.array?.first(where: { $0["status"]?.string != "nothing_due" })?["payout_id"]?.string {
            commands.append("settlectl payouts lines \(payout)")
        }
        if let debit = autoDebit.debits.first {
            commands.append("settlectl autodebit list \(debit.customer)")
            commands.append("settlectl autodebit requests")
        }
        if disbursement.skipped == nil, !disbursement.batchID.isEmpty {
            commands.append("settlectl disbursements show \(disbursement.batchID)")
            commands.append("settlectl disbursements lines \(disbursement.batchID)")
            commands.append("settlectl disbursements reinstruct \(disbursement.batchID) \(disbursement.returnedID) --bank BOC --account-no 6013821000000001 --account-name 王芳")
        }
        return commands
    }

    func summaryJSON() -> String {
        var json = JSONWriter(capacity: 8192)
        json.beginObject()
        json.field("business_date", plan.date.description)
        json.field("run", plan.tag)
        json.field("directory", directory)
        json.beginObject("orders")
        json.field("count", orders.count)
        json.field("total_fen", orders.reduce(Int64(0)) { $0 + $1.totalFen })
        json.beginArray("list")
        for order in orders {
            json.beginObject()
            json.field("order_id", order.id)
            json.field("mix", order.mix)
            json.field("customer_id", order.customer)
            json.field("total_fen", order.totalFen)
            json.field("channel", order.channel)
            json.field("channel_fen", order.channelFen)
            json.beginArray("billers")
            for biller in order.billers { json.value(biller) }
            json.endArray()
            json.endObject()
        }
        json.endArray()
        json.endObject()
        json.beginArray("channels")
        for (channel, _) in DemoCommand.channels {
            let written = figures(channel)
            json.beginObject()
            json.field("channel", channel)
            json.field("orders", written.orders)
            json.field("paid_fen", written.paymentsFen)
            json.field("statement_file", statementFiles[channel])
            json.beginObject("statement")
            json.field("payments_count", written.paymentsCount)
            json.field("payments_fen", written.paymentsFen)
            json.field("refunds_count", written.refundsCount)
            json.field("refunds_fen", written.refundsFen)
            json.field("fees_fen", written.feesFen)
            json.endObject()
            if let answer = imports[channel] {
                if let id = answer["statement_id"] { json.member("statement_id", id) }
                if let reconciliation = answer["reconciliation"] { json.member("import", reconciliation) }
            }
            if let day = reconciled(channel) {
                let names: [StaticString] = ["matched", "auto_repaired", "carried", "open", "open_by_kind"]
                for name in names {
                    if let value = day[name.description] { json.member(name, value) }
                }
            }
            json.endObject()
        }
        json.endArray()
        json.beginObject("planted")
        if let lost = lostNotification {
            json.beginObject("lost_notification")
            json.field("channel", "unionpay")
            json.field("order_id", lost.order)
            json.field("channel_txn_id", lost.txn)
            json.field("amount_fen", lost.amountFen)
            json.endObject()
        }
        if let short = shortPayment {
            json.beginObject("short_payment")
            json.field("channel", "wechat")
            json.field("order_id", short.order)
            json.field("channel_txn_id", short.txn)
            json.field("captured_fen", short.capturedFen)
            json.field("statement_fen", short.statementFen)
            json.endObject()
        }
        json.endObject()
        json.beginArray("open_discrepancies")
        for discrepancy in openDiscrepancies {
            json.beginObject()
            let names: [StaticString] = ["discrepancy_id", "kind", "channel", "order_id", "channel_txn_id", "internal_fen", "channel_fen"]
            for name in names {
                if let value = discrepancy[name.description] { json.member(name, value) }
            }
            json.endObject()
        }
        json.endArray()
        json.beginArray("refunds")
        for refund in refunds {
            json.beginObject()
            json.field("refund_id", refund.refundID)
            json.field("order_id", refund.order)
            json.field("channel", refund.channel)
            json.field("channel_fen", refund.amountFen)
            json.endObject()
        }
        json.endArray()
        json.beginObject("clearing")
        json.field("status", clearingRun["status"]?.string)
        json.field("held_count", clearingRun["held_count"]?.int64 ?? 0)
        json.beginArray("payouts")
        for payout in clearingRun["payouts"]?.array ?? [] {
            json.beginObject()
            let names: [StaticString] = ["payout_id", "biller_id", "gross_fen", "refunds_fen", "clawback_fen", "fees_fen", "net_fen",
                                         "item_count", "status"]
            for name in names {
                if let value = payout[name.description] { json.member(name, value) }
            }
            if let id = payout["payout_id"]?.string, let file = instructionFiles[id] { json.field("pain001_file", file) }
            json.endObject()
        }
        json.endArray()
        json.field("instruction_note", instructionNote)
        json.endObject()
        autoDebitJSON(&json)
        disbursementJSON(&json)
        json.beginObject("report")
        json.field("url", "http://localhost/v1/reports/\(plan.date)")
        json.field("html_file", reportFile)
        json.endObject()
        json.member("trial_balance", trialBalance)
        json.beginArray("next")
        for command in nextCommands { json.value(command) }
        json.endArray()
        json.endObject()
        return String(decoding: json.bytes, as: UTF8.self) + "\n"
    }

    func summaryText(socket: String) -> String {
        let date = plan.date
        var text = "settled demo: business date \(date) (run \(plan.tag)), files in \(directory)\n\n"
        let internalOnly = orders.filter { $0.channelFen == 0 }
        text += "orders: \(orders.count), \(Text.yuan(orders.reduce(Int64(0)) { $0 + $1.totalFen })) yuan"
        text += " (\(internalOnly.count) paid from the wallet and points alone, business date \(today): cleared by the job on T+1)\n"
        var mixes = Table([("funding", .left), ("orders", .right), ("total yuan", .right)])
        var seen: [String] = []
        for order in orders where !seen.contains(order.mix) { seen.append(order.mix) }
        for mix in seen {
            let of = orders.filter { $0.mix == mix }
            mixes.add([mix, "\(of.count)", Text.yuan(of.reduce(Int64(0)) { $0 + $1.totalFen })])
        }
        text += mixes.rendered + "\n"

        var channels = Table([("channel", .left), ("orders", .right), ("paid yuan", .right), ("refunded", .right), ("fees", .right),
                              ("matched", .right), ("auto-repaired", .right), ("open", .right), ("open kinds", .left)])
        for (channel, _) in DemoCommand.channels {
            let written = figures(channel)
            let day = reconciled(channel)
            let kinds = day?["open_by_kind"]?.object?.members.map { "\($0.key) \($0.value["count"].display)" }.joined(separator: ", ") ?? ""
            channels.add([channel, "\(written.orders)", Text.yuan(written.paymentsFen), Text.yuan(written.refundsFen), Text.yuan(written.feesFen),
                          day?["matched"]?["count"].display ?? "-", day?["auto_repaired"]?["count"].display ?? "-",
                          day?["open"]?["count"].display ?? "-", kinds.isEmpty ? "-" : kinds])
        }
        text += "channels (statements as written; matched and discrepancies as the daemon reconciled them):\n" + channels.rendered + "\n"
        if let lost = lostNotification {
            text += "planted: lost notification, unionpay \(lost.txn) for order \(lost.order), \(Text.yuan(lost.amountFen)) yuan\n"
        }
        if let short = shortPayment {
            text += "planted: short payment, wechat \(short.txn) for order \(short.order): captured \(Text.yuan(short.capturedFen)), statement \(Text.yuan(short.statementFen)) yuan\n"
        }
        for discrepancy in openDiscrepancies {
            text += "open for an operator: \(discrepancy["discrepancy_id"].display) \(discrepancy["kind"].display) \(discrepancy["channel"].display)"
            text += " order \(discrepancy["order_id"].display): ours \(discrepancy["internal_fen"].yuan), the channel's \(discrepancy["channel_fen"].yuan) yuan\n"
        }
        text += "\n"

        var payouts = Table([("payout", .left), ("biller", .left), ("gross", .right), ("refunds", .right), ("fees", .right),
                             ("clawback", .right), ("net yuan", .right), ("items", .right), ("status", .left)])
        for payout in clearingRun["payouts"]?.array ?? [] {
            payouts.add([payout["payout_id"].display, payout["biller_id"].display, payout["gross_fen"].yuan, payout["refunds_fen"].yuan,
                         payout["fees_fen"].yuan, payout["clawback_fen"].yuan, payout["net_fen"].yuan, payout["item_count"].display,
                         payout["status"].display])
        }
        text += "clearing of \(date): \(clearingRun["status"].display), \(clearingRun["held_count"].display) items held\n" + payouts.rendered
        if let note = instructionNote {
            text += "no pain.001 files: \(note)\n"
        } else {
            text += "pain.001 files: \(instructionFiles.count) in \(directory)\n"
        }
        text += "\n" + autoDebitText() + "\n" + disbursementText() + "\n"
        let balanced = trialBalance["balanced"]?.bool == true
        text += "trial balance: \(balanced ? "zero" : "NOT zero") (debits \(trialBalance["debits_fen"].yuan), credits \(trialBalance["credits_fen"].yuan) yuan)\n\n"

        text += "where to look:\n"
        text += "  morning report   \(reportFile)\n"
        text += "                   curl --unix-socket \(socket) -H 'Accept: text/html' http://localhost/v1/reports/\(date)\n"
        for (channel, _) in DemoCommand.channels {
            let label = "\(channel) statement"
            text += "  " + label + String(repeating: " ", count: max(1, 17 - label.count)) + (statementFiles[channel] ?? "-") + "\n"
        }
        text += "\ntry next:\n" + nextCommands.map { "  \($0)\n" }.joined()
        return text
    }
}

extension JSONWriter {
    /// A member whose value is a parsed JSON value, passed on as it came.
    mutating func member(_ name: StaticString, _ value: JSONValue) {
        var inner = JSONWriter()
        inner.value(value)
        field(name, rawJSON: inner.bytes)
    }
}
