import SettledConfig
import Testing

/// `[escrow]`: the escrow account, debtor of the payout instructions.
@Suite struct EscrowConfigurationTests {
    static let complete = """
        [escrow]
        account_no = 6222020012345678901
        account_name = 统一缴费中心 Escrow & Co
        bank_name = Industrial and Commercial Bank of China
        bic = ICBKCNBJ
        currency = CNY

        """

    @Test func withoutTheSectionNoEscrowIsConfigured() throws {
        let configuration = try load("[business]\ncutoff = 00:00\n").result.get()
        #expect(!configuration.escrow.isConfigured)
        #expect(configuration.escrow == EscrowConfiguration())
        #expect(configuration.escrow.currency == "CNY")
    }

    @Test func valuesLandWhereTheyBelong() throws {
        let escrow = try load(Self.complete).result.get().escrow
        #expect(escrow.isConfigured)
        #expect(escrow.accountNo == "6222020012345678901")
        #expect(escrow.accountName == "统一缴费中心 Escrow & Co")
        #expect(escrow.bankName == "Industrial and Commercial Bank of China")
        #expect(escrow.bic == "ICBKCNBJ")
        #expect(escrow.currency == "CNY")
    }

    @Test func bicAndCurrencyMayBeLeftOut() throws {
        let escrow = try load("[escrow]\naccount_no = 1001\naccount_name = Escrow\nbank_name = ICBC\nbic =\n").result.get().escrow
        #expect(escrow.bic == nil)
        #expect(escrow.currency == EscrowConfiguration.currencyDefault)
    }

    @Test func theProductionExampleHasAnEscrowAccount() throws {
        let configuration = try SettledConfiguration.load(path: repositoryRoot().appendingPathComponent("conf/settled.conf").path)
        #expect(configuration.escrow.isConfigured)
        #expect(configuration.escrow.currency == EscrowConfiguration.currencyDefault)
        #expect(configuration.escrow.bic == "ICBKCNBJ")
    }

    /// `[channel.<id>] escrow_reference`: the text that names a channel's settlement credit on
    /// the escrow statement; any format takes it, and it is not a CSV profile key.
    @Test func aChannelsEscrowReferenceIsTakenAndChecked() throws {
        let configuration = try load("[channel.icbc]\nformat = csv\nescrow_reference = ICBC 收单清算\n[channel.wechat]\nformat = wechat\n")
            .result.get()
        #expect(configuration.channel(id: "icbc")?.escrowReference == "ICBC 收单清算")
        #expect(configuration.channel(id: "icbc")?.csvProfile["escrow_reference"] == nil)
        #expect(configuration.channel(id: "wechat")?.escrowReference == nil)
        let long = String(repeating: "x", count: ChannelConfiguration.escrowReferenceCharactersMax + 1)
        let found = try problems("[channel.wechat]\nformat = wechat\nescrow_reference = \(long)\n")
        #expect(found.map(\.key) == ["escrow_reference"], "\(found)")
        let shipped = try SettledConfiguration.load(path: repositoryRoot().appendingPathComponent("conf/settled.conf").path)
        #expect(shipped.channel(id: "wechat")?.escrowReference == "TENPAY")
    }

    @Test func aSectionWithoutItsRequiredKeysNamesEachMissingOne() throws {
        let found = try problems("# escrow\n[escrow]\nbank_name = ICBC\n")
        #expect(found.map(\.key) == ["account_no", "account_name"])
        #expect(found.allSatisfy { $0.line == 2 && $0.section == "escrow" && $0.message.hasPrefix("missing") })
    }

    static let badValues: [(String, String, String)] = [
        ("account_no", "", "1 to 34 characters"),
        ("account_no", "6222 0200 1234", "1 to 34 characters"),
        ("account_no", String(repeating: "1", count: 35), "1 to 34 characters"),
        ("account_name", String(repeating: "n", count: 141), "1 to 140 characters"),
        ("account_name", "   ", "1 to 140 characters"),
        ("bank_name", "", "1 to 140 characters"),
        ("bic", "ICBKCNB", "BIC"),
        ("bic", "icbkcnbj", "BIC"),
        ("bic", "ICBK12BJ", "BIC"),
        ("currency", "cny", "ISO 4217"),
        ("currency", "YUAN", "ISO 4217"),
    ]

    @Test(arguments: badValues.indices)
    func badValueIsNamedWithItsKey(_ index: Int) throws {
        let (key, value, message) = Self.badValues[index]
        var lines = ["[escrow]", "account_no = 1001", "account_name = Escrow", "bank_name = ICBC"].filter { !$0.hasPrefix(key + " ") }
        lines.append("\(key) = \(value)")
        let found = try problems(lines.joined(separator: "\n") + "\n")
        try #require(found.count == 1, "\(found)")
        #expect(found[0].section == "escrow" && found[0].key == key && found[0].line == lines.count)
        #expect(found[0].message.contains(message), "\(found[0].message)")
    }

    @Test func anUnknownKeyIsRefused() throws {
        let found = try problems(Self.complete + "iban = CN00\n")
        #expect(found.count == 1 && found.first?.key == "iban" && found.first?.message == "unknown key")
    }
}
