import Dispatch
import SettledHTTP
import SettledTestSupport
import Synchronization
import Testing

@Suite struct BatchRefusalTests {
    /// Many concurrent requests on one customer, some refused after writing (a points deduction
    /// past the balance claims its reference first), some refused before: whatever batches they
    /// share, the ledger verifies and the wallet is what the successful answers add up to.
    @Test func refusedRequestsLeaveNothingForTheirNeighbours() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        #expect(try harness.call("POST", "/v1/customers/c-1/wallet/credits", #"{"amount_fen":1000,"reference":"w0"}"#).status == 201)
        let socket = harness.service.configuration.socketPath
        let results = Mutex<[(Int, Int, String)]>([])
        DispatchQueue.concurrentPerform(iterations: 60) { index in
            guard let client = try? UnixHTTPClient(socketPath: socket, timeoutSeconds: 30) else { return }
            defer { client.close() }
            let request: (String, String, String, String?)
            switch index % 4 {
            case 0: request = ("POST", "/v1/customers/c-1/wallet/credits", #"{"amount_fen":10,"reference":"dup"}"#, nil)
            case 1: request = ("POST", "/v1/customers/c-1/points", #"{"points":-5,"reference":"p\#(index)"}"#, nil)
            case 2: request = ("POST", "/v1/orders", PaymentRequests.orderBody(customer: "c-1", topups: [("b-1", "a\(index)", 100)], walletFen: 100, channel: nil), "k\(index)")
            default: request = ("POST", "/v1/ledger/adjustments",
                                #"{"reference":"adj\#(index)","note":"n","entries":[{"account":"customer_wallet:c-1","amount_fen":5000},{"account":"escrow_bank","amount_fen":-5000}]}"#, nil)
            }
            var headers: [(name: String, value: String)] = []
            if let key = request.3 { headers.append((name: "Idempotency-Key", value: key)) }
            guard let response = try? client.send(method: request.0, path: request.1, headers: headers, body: Array(request.2.utf8)) else { return }
            results.withLock { $0.append((index % 4, response.status, String(decoding: response.body, as: UTF8.self))) }
        }
        let all = results.withLock { $0 }
        #expect(all.count == 60)
        let credits = all.filter { $0.0 == 0 && $0.1 == 201 }.count
        let orders = all.filter { $0.0 == 2 && $0.1 == 201 }.count
        #expect(credits == 1)
        #expect(all.filter { $0.0 == 1 }.allSatisfy { $0.1 == 409 })
        #expect(all.filter { $0.0 == 3 }.allSatisfy { $0.1 == 409 })
        let wallet = try harness.call("GET", "/v1/customers/c-1/wallet").json
        #expect(wallet?["wallet_fen"]?.int64 == 1000 + Int64(credits) * 10 - Int64(orders) * 100)
        #expect(wallet?["points"]?.int64 == 0)
        // The references the refused deductions claimed are free.
        #expect(try harness.call("POST", "/v1/customers/c-1/points", #"{"points":5,"reference":"p1"}"#).status == 200)
        #expect(try harness.verified())
    }
}
