import SettledCore

/// The sample world the demo builds: billers of three utilities in three provinces, their
/// households, the customers who bound them, and the bills. Pure: ids and amounts from the
/// run's date and number, nothing sent.
struct DemoPlan {
    struct Biller {
        var id: String
        var name: String
        var utility: String
        var province: String
        var bank: String
        var accountNo: String
        var feeBearer: String
    }

    struct Bill {
        var id: String
        var amountFen: Int64
        var period: String
    }

    struct Household {
        var biller: Int
        var accountNo: String
        var bills: [Bill]
        var totalFen: Int64 { bills.reduce(0) { $0 + $1.amountFen } }
    }

    struct Customer {
        var id: String
        /// Indexes into `households`.
        var households: [Int]
    }

    /// The same billers on every run (a second run adds its bills to them): electricity,
    /// water and gas in Jiangsu, Zhejiang and Shanghai; the gas companies bear the channels' fees.
    static let billers: [Biller] = [
        Biller(id: "demo-sgcc-js", name: "国网江苏省电力有限公司", utility: "electricity", province: "JS", bank: "icbc", accountNo: "4301010309001234567", feeBearer: "platform"),
        Biller(id: "demo-water-nj", name: "南京水务集团有限公司", utility: "water", province: "JS", bank: "ccb", accountNo: "32001594036052500123", feeBearer: "platform"),
        Biller(id: "demo-gas-nj", name: "南京港华燃气有限公司", utility: "gas", province: "JS", bank: "boc", accountNo: "471758212345", feeBearer: "biller"),
        Biller(id: "demo-sgcc-zj", name: "国网浙江省电力有限公司", utility: "electricity", province: "ZJ", bank: "abc", accountNo: "19005101040012345", feeBearer: "platform"),
        Biller(id: "demo-water-hz", name: "杭州市水务集团有限公司", utility: "water", province: "ZJ", bank: "icbc", accountNo: "1202021109900123456", feeBearer: "platform"),
        Biller(id: "demo-gas-hz", name: "杭州市燃气集团有限公司", utility: "gas", province: "ZJ", bank: "cmb", accountNo: "571902345610801", feeBearer: "biller"),
        Biller(id: "demo-sgcc-sh", name: "国网上海市电力公司", utility: "electricity", province: "SH", bank: "boc", accountNo: "437659231234", feeBearer: "platform"),
        Biller(id: "demo-water-sh", name: "上海城投水务（集团）有限公司", utility: "water", province: "SH", bank: "abc", accountNo: "03340300040012345", feeBearer: "platform"),
        Biller(id: "demo-gas-sh", name: "上海燃气有限公司", utility: "gas", province: "SH", bank: "ccb", accountNo: "31001550400050012345", feeBearer: "biller"),
    ]

    static let customerNames = ["zhang", "li", "wang", "zhao", "chen", "liu"]
    static let householdsPerBiller = 2
    static let billsPerHousehold = 2

    let date: BusinessDate
    /// Six digits chosen at random per run: with the date, every id of the run is its own.
    let runNumber: String
    private(set) var households: [Household] = []
    private(set) var customers: [Customer] = []

    /// "20261204-042517": in every id the run makes.
    var tag: String { "\(Self.compact(date))-\(runNumber)" }

    static func compact(_ date: BusinessDate) -> String {
        "\(date.year)\(DemoStatementWriters.two(date.month))\(DemoStatementWriters.two(date.day))"
    }

    init(date: BusinessDate, runNumber: String) {
        self.date = date
        self.runNumber = runNumber
        // Amounts from a small generator seeded by the run: each run's bills differ.
        var state = UInt64(runNumber) ?? 1
        func nextAmount() -> Int64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return 1_500 + Int64((state >> 33) % 48_500)
        }
        let lastMonth = date.adding(days: -date.day)
        let monthBefore = lastMonth.adding(days: -lastMonth.day)
        let periods = [monthBefore, lastMonth].map { "\($0.year)-\(DemoStatementWriters.two($0.month))" }
        for biller in Self.billers.indices {
            for household in 0..<Self.householdsPerBiller {
                let accountNo = "\(Self.compact(date))\(runNumber)\(biller)\(household)"
                let bills = (0..<Self.billsPerHousehold).map { index in
                    Bill(id: "demo-\(tag)-b\(biller)\(household)\(index)", amountFen: nextAmount(), period: periods[index])
                }
                households.append(Household(biller: biller, accountNo: accountNo, bills: bills))
            }
        }
        // Household n to customer (n + n / 6) % 6: each customer has three households of
        // different billers, utilities and provinces mixed.
        customers = Self.customerNames.map { Customer(id: "demo-\(tag)-\($0)", households: []) }
        for index in households.indices {
            customers[(index + index / Self.customerNames.count) % Self.customerNames.count].households.append(index)
        }
    }

    func biller(of household: Int) -> Biller { Self.billers[households[household].biller] }

    /// The bill import's NDJSON: every bill of the run, due twenty days after the date.
    var billsNDJSON: String {
        let due = date.adding(days: 20)
        var text = ""
        for household in households {
            for bill in household.bills {
                var json = JSONWriter()
                json.beginObject()
                json.field("bill_id", bill.id)
                json.field("biller_id", Self.billers[household.biller].id)
                json.field("account_no", household.accountNo)
                json.field("period", bill.period)
                json.field("amount_fen", bill.amountFen)
                json.field("due_date", due.description)
                json.endObject()
                text += String(decoding: json.bytes, as: UTF8.self) + "\n"
            }
        }
        return text
    }
}
