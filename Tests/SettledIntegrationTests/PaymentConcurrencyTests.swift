import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

/// Many clients, each on its own thread and connection, racing for the same bills and red packets.
@Suite("Payment center: races between clients through the real socket")
struct PaymentConcurrencyTests {
    typealias D = PaymentDaemon

    static let clientsCount = 12
    static let billsCount = 24
    static let redPacketsCount = 8

    /// Outcomes gathered from the client threads.
    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(target: String, status: Int, code: String?, json: JSONValue?)] = []
        private var failures: [String] = []

        func add(_ target: String, _ response: HTTPClientResponse) {
            let json = try? JSONParser.parse(response.body)
            lock.lock()
            entries.append((target, response.status, json?["code"]?.string, json))
            lock.unlock()
        }

        func fail(_ message: String) {
            lock.lock()
            failures.append(message)
            lock.unlock()
        }

        var all: [(target: String, status: Int, code: String?, json: JSONValue?)] {
            lock.lock()
            defer { lock.unlock() }
            return entries
        }

        var errors: [String] {
            lock.lock()
            defer { lock.unlock() }
            return failures
        }
    }

    /// Runs `body(client, clientIndex)` on `clientsCount` threads at once, each with its own connection.
    static func race(_ socketPath: String, clients: Int = clientsCount, outcomes: Outcomes,
                     _ body: @escaping @Sendable (UnixHTTPClient, Int) throws -> Void) {
        let ready = DispatchSemaphore(value: 0)
        let go = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for index in 0..<clients {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                let client: UnixHTTPClient
                do {
                    client = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 60)
                } catch {
                    outcomes.fail("client \(index): \(error)")
                    ready.signal()
                    return
                }
                ready.signal()
                go.wait()
                do {
                    try body(client, index)
                } catch {
                    outcomes.fail("client \(index): \(error)")
                }
                client.close()
            }
            thread.start()
        }
        for _ in 0..<clients { ready.wait() }
        for _ in 0..<clients { go.signal() }
        done.wait()
    }

    static func post(_ client: UnixHTTPClient, _ path: String, _ body: String, key: String? = nil) throws -> HTTPClientResponse {
        var headers: [(name: String, value: String)] = []
        if let key { headers.append((name: "Idempotency-Key", value: key)) }
        return try client.send(method: "POST", path: path, headers: headers, body: Array(body.utf8))
    }

    @Test("exactly one order wins each bill and each red packet; the others are refused; the state stays consistent")
    func racesForBillsAndRedPackets() throws {
        let daemon = try PaymentDaemon()
        let bills = (0..<Self.billsCount).map { "RB\($0)" }
        try daemon.importGood(bills.enumerated().map { D.billLine($1, "sgcc-js", "10\($0 % 5)", amountFen: Int64(1000 + $0)) })
        let packets = (0..<Self.redPacketsCount).map { "RRP\($0)" }
        for packet in packets { try daemon.createRedPacket(packet, customer: "c-race", valueFen: 300) }

        // Round 1: every client orders every bill, each in its own order of the bills.
        let orders = Outcomes()
        Self.race(daemon.socketPath, outcomes: orders) { client, index in
            var generator = SystemRandomNumberGenerator()
            for bill in bills.shuffled(using: &generator) {
                let body = PaymentRequests.orderBody(bills: [bill], channel: index % 2 == 0 ? "alipay" : "wechat")
                orders.add(bill, try Self.post(client, "/v1/orders", body, key: "k-\(index)-\(bill)"))
            }
        }
        // Round 2: every client spends every red packet on a top-up.
        Self.race(daemon.socketPath, outcomes: orders) { client, index in
            for packet in packets.shuffled() {
                let body = PaymentRequests.orderBody(customer: "c-race", topups: [("gas-bj", "3003", 1000)], redPackets: [packet])
                orders.add(packet, try Self.post(client, "/v1/orders", body, key: "k-\(index)-\(packet)"))
            }
        }
        #expect(orders.errors.isEmpty, "\(orders.errors)")

        var winners: [String: (order: String, channelFen: Int64, channel: String)] = [:]
        for target in bills + packets {
            let outcomes = orders.all.filter { $0.target == target }
            #expect(outcomes.count == Self.clientsCount)
            let won = outcomes.filter { $0.status == 201 }
            #expect(won.count == 1, "\(target): \(won.count) winners")
            let lost = outcomes.filter { $0.status != 201 }
            let expected = target.hasPrefix("RB") ? (409, "bill_reserved") : (422, "red_packet_unusable")
            #expect(lost.allSatisfy { $0.status == expected.0 && $0.code == expected.1 },
                    "\(target): \(lost.map { "\($0.status) \($0.code ?? "")" })")
            if let json = won.first?.json, let id = json["order_id"]?.string {
                winners[target] = (id, json["funding"]?["channel_fen"]?.int64 ?? -1, json["funding"]?["channel"]?.string ?? "")
            }
        }
        for bill in bills {
            let stored = try daemon.getBill(bill)
            #expect(stored["status"]?.string == "reserved")
            #expect(stored["order_id"]?.string == winners[bill]?.order)
        }
        for packet in packets {
            #expect(try daemon.redPacketStatus("c-race", packet) == "reserved")
            #expect(try daemon.getOrder(winners[packet]!.order)["funding"]?["red_packets_fen"]?.int64 == 300)
        }

        // Round 3: for each winner, clients race the same success notification, and for the
        // first half of the bills a cancel races the success too.
        let targets = bills + packets
        let winnersFound = winners
        let cancelRaced = Set(bills.prefix(Self.billsCount / 2))
        let notices = Outcomes()
        Self.race(daemon.socketPath, outcomes: notices) { client, index in
            for target in targets.shuffled() {
                let winner = winnersFound[target]!
                if cancelRaced.contains(target) && index % 4 == 0 {
                    notices.add("cancel:" + target, try Self.post(client, "/v1/orders/\(winner.order)/cancel", ""))
                } else {
                    let body = D.notificationBody(channel: winner.channel, order: winner.order, txn: "txn-" + winner.order,
                                                  amountFen: winner.channelFen)
                    notices.add(target, try Self.post(client, "/v1/notifications", body))
                }
            }
        }
        #expect(notices.errors.isEmpty, "\(notices.errors)")
        var expectedReceivable: [String: Int64] = ["alipay": 0, "wechat": 0]
        var expectedSuspense: [String: Int64] = ["alipay": 0, "wechat": 0]
        for target in targets {
            let winner = winners[target]!
            let answers = notices.all.filter { $0.target == target }
            #expect(answers.allSatisfy { $0.status == 200 }, "\(target): \(answers.map(\.status))")
            #expect(answers.filter { $0.json?["duplicate"]?.bool == false }.count == 1, "\(target): one first notification")
            let cancels = notices.all.filter { $0.target == "cancel:" + target }
            let stored = try daemon.getOrder(winner.order)
            let status = stored["status"]?.string
            expectedReceivable[winner.channel, default: 0] += winner.channelFen
            if status == "cancelled" {
                // The cancel came first: the success went to suspense and the bill is free again.
                #expect(cancels.filter { $0.status == 200 }.count == 1)
                #expect(stored["suspense_fen"]?.int64 == winner.channelFen)
                expectedSuspense[winner.channel, default: 0] += winner.channelFen
                #expect(try daemon.getBill(target)["status"]?.string == "open")
            } else {
                #expect(status == "paid", "\(target): \(status ?? "?")")
                #expect(cancels.allSatisfy { $0.status == 409 && $0.code == "order_not_pending" })
                if target.hasPrefix("RB") {
                    #expect(try daemon.getBill(target)["status"]?.string == "paid")
                    #expect(try daemon.getBill(target)["order_id"]?.string == winner.order)
                } else {
                    #expect(try daemon.redPacketStatus("c-race", target) == "used")
                }
            }
        }
        for channel in ["alipay", "wechat"] {
            #expect(try daemon.balance("channel_receivable:\(channel)") == expectedReceivable[channel])
            #expect(try daemon.balance("suspense:\(channel)") == -(expectedSuspense[channel] ?? 0))
        }
        let billerTotal = try daemon.balances(prefix: "biller_payable:").values.reduce(0, +)
        let paidTotal = try targets.filter { try daemon.getOrder(winners[$0]!.order)["status"]?.string == "paid" }
            .map { try daemon.getOrder(winners[$0]!.order)["total_fen"]?.int64 ?? 0 }.reduce(0, +)
        #expect(billerTotal == -paidTotal)
        #expect(try daemon.balance("marketing:redpacket") == 300 * Int64(Self.redPacketsCount))
        try daemon.expectLedgerOK()
    }

    @Test("the same Idempotency-Key sent by many clients at once creates one order")
    func idempotencyKeyRace() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood([D.billLine("IK1", "water-sh", "2002", amountFen: 4200)])
        let outcomes = Outcomes()
        let body = PaymentRequests.orderBody(bills: ["IK1"])
        Self.race(daemon.socketPath, outcomes: outcomes) { client, _ in
            for _ in 0..<5 { outcomes.add("IK1", try Self.post(client, "/v1/orders", body, key: "the-one-key")) }
        }
        #expect(outcomes.errors.isEmpty)
        let answers = outcomes.all
        #expect(answers.count == Self.clientsCount * 5)
        #expect(answers.allSatisfy { $0.status == 201 })
        #expect(Set(answers.compactMap { $0.json?["order_id"]?.string }).count == 1)
        #expect(try daemon.getBill("IK1")["order_id"]?.string == answers.first?.json?["order_id"]?.string)
        try daemon.expectLedgerOK()
    }
}
