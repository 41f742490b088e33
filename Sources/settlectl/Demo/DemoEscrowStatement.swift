import SettledCore

/// The escrow account's statement as its bank delivers it, ISO 20022 camt.053.001.08: one
/// `Stmt` of the account in CNY, opening and closing balances, one booked `Ntry` per entry with
/// its bank transaction code, the bank's reference, the transactions it carries (`TxDtls`: an
/// `EndToEndId`, an amount when the entry is a batch booking, remittance text) and free text.
/// Pure: text out, nothing written.
struct DemoEscrowStatement {
    struct Transaction {
        var endToEndID: String
        var amountFen: Int64
        /// Remittance information (`RmtInf/Ustrd`): what the payer wrote.
        var remittance = ""
    }

    struct Entry {
        var credit: Bool
        var amountFen: Int64
        /// The bank's own reference (`AcctSvcrRef`).
        var bankReference: String
        /// ISO bank transaction code: family and sub-family under domain PMNT.
        var family: String
        var subFamily: String
        var transactions: [Transaction]
        /// `AddtlNtryInf`.
        var text = ""
    }

    var statementID: String
    var accountNo: String
    var date: BusinessDate
    /// "2026-12-07T18:00:00+08:00".
    var createdAt: String
    var openingFen: Int64
    var entries: [Entry] = []

    var closingFen: Int64 { entries.reduce(openingFen) { $0 + ($1.credit ? $1.amountFen : -$1.amountFen) } }

    /// `text` with XML's five special characters escaped.
    static func escaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }

    func balance(_ code: String, _ fen: Int64) -> String {
        "<Bal><Tp><CdOrPrtry><Cd>\(code)</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">\(DemoStatementWriters.yuan(fen < 0 ? -fen : fen))</Amt>"
            + "<CdtDbtInd>\(fen < 0 ? "DBIT" : "CRDT")</CdtDbtInd><Dt><Dt>\(date)</Dt></Dt></Bal>\n"
    }

    var xml: String {
        var text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
            <GrpHdr><MsgId>\(Self.escaped(statementID))</MsgId><CreDtTm>\(createdAt)</CreDtTm></GrpHdr>
            <Stmt><Id>\(Self.escaped(statementID))</Id><CreDtTm>\(createdAt)</CreDtTm>
            <Acct><Id><Othr><Id>\(Self.escaped(accountNo))</Id></Othr></Id><Ccy>CNY</Ccy></Acct>

            """
        text += balance("OPBD", openingFen) + balance("CLBD", closingFen)
        for entry in entries {
            text += "<Ntry><Amt Ccy=\"CNY\">\(DemoStatementWriters.yuan(entry.amountFen))</Amt><CdtDbtInd>\(entry.credit ? "CRDT" : "DBIT")</CdtDbtInd>"
            text += "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>\(date)</Dt></BookgDt><ValDt><Dt>\(date)</Dt></ValDt>"
            text += "<AcctSvcrRef>\(Self.escaped(entry.bankReference))</AcctSvcrRef>"
            text += "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>\(entry.family)</Cd><SubFmlyCd>\(entry.subFamily)</SubFmlyCd></Fmly></Domn></BkTxCd>\n"
            text += "<NtryDtls>"
            if entry.transactions.count > 1 {
                text += "<Btch><NbOfTxs>\(entry.transactions.count)</NbOfTxs></Btch>"
            }
            for transaction in entry.transactions {
                text += "<TxDtls><Refs><EndToEndId>\(Self.escaped(transaction.endToEndID))</EndToEndId></Refs>"
                text += "<Amt Ccy=\"CNY\">\(DemoStatementWriters.yuan(transaction.amountFen))</Amt>"
                if !transaction.remittance.isEmpty { text += "<RmtInf><Ustrd>\(Self.escaped(transaction.remittance))</Ustrd></RmtInf>" }
                text += "</TxDtls>"
            }
            text += "</NtryDtls>"
            if !entry.text.isEmpty { text += "<AddtlNtryInf>\(Self.escaped(entry.text))</AddtlNtryInf>" }
            text += "</Ntry>\n"
        }
        return text + "</Stmt></BkToCstmrStmt></Document>\n"
    }
}
