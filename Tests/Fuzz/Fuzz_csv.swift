import SettledCore

let fuzzProfiles: [BankCSVProfile] = [
    BankCSVProfile(skipLines: 6, endMarker: "合计", footerTotals: true, dateColumn: "交易日期",
                   amount: .creditDebit(credit: "记账金额(收入)", debit: "记账金额(支出)"), orderIdColumn: "对方户名"),
    BankCSVProfile(encoding: .gb18030, dateColumn: "交易日期", timeColumn: "交易时间",
                   amount: .direction(amount: "交易金额", direction: "借贷", creditWords: ["贷", "Cr"], debitWords: ["借", "Dr"]),
                   txnIdColumn: "序号", orderIdColumn: "摘要", feeColumn: "手续费"),
    BankCSVProfile(dateColumn: "交易日期", dateFormat: "yyyyMMdd", timeColumn: "交易时间", timeFormat: "HHmmss",
                   amount: .signed(column: "交易金额"), txnIdColumn: "日 志 号"),
    BankCSVProfile(skipLines: 1, dateColumn: "记账日", dateFormat: "MM/dd", amount: .signed(column: "人民币金额"), positiveIsDebit: true),
]

/// Bank CSV exports, each input read by one of the profiles (chosen by its last byte).
func fuzzBankCSV(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    guard let data, size > 0 else { return }
    let profile = fuzzProfiles[Int(data[size - 1]) % fuzzProfiles.count]
    fuzzStatement(data, size, .csv(profile), date: BusinessDate(year: 2024, month: 1, day: 31))
}
