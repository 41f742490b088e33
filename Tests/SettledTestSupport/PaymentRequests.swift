/// Bodies of payment requests, as a client writes them.
public enum PaymentRequests {
    /// The body of POST /v1/orders.
    public static func orderBody(customer: String? = nil, bills: [String] = [],
                                 topups: [(biller: String, account: String, amountFen: Int64)] = [],
                                 walletTopupFen: Int64? = nil, redPackets: [String] = [], points: Int64 = 0, walletFen: Int64 = 0,
                                 channel: String? = "alipay") -> String {
        var items = bills.map { #"{"kind":"bill","bill_id":"\#($0)"}"# }
        items += topups.map { #"{"kind":"topup","biller_id":"\#($0.biller)","account_no":"\#($0.account)","amount_fen":\#($0.amountFen)}"# }
        if let walletTopupFen { items.append(#"{"kind":"wallet_topup","amount_fen":\#(walletTopupFen)}"#) }
        var funding: [String] = []
        if !redPackets.isEmpty { funding.append(#""red_packet_ids":[\#(redPackets.map { "\"\($0)\"" }.joined(separator: ","))]"#) }
        if points > 0 { funding.append(#""points":\#(points)"#) }
        if walletFen > 0 { funding.append(#""wallet_fen":\#(walletFen)"#) }
        if let channel { funding.append(#""channel":"\#(channel)""#) }
        let customerField = customer.map { #""customer_id":"\#($0)","# } ?? ""
        return #"{\#(customerField)"items":[\#(items.joined(separator: ","))],"funding":{\#(funding.joined(separator: ","))}}"#
    }
}
