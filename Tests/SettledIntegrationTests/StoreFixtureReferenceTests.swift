import Foundation
import Glibc
import SettledCore
import Testing

/// The store of the previous version holds a wallet credit `credit-1` and a points grant
/// `grant-1` of customer c-1 (scripts/make-store-fixture). A retry of either after the upgrade
/// is a second credit or grant with the same reference: refused (`409 reference_used`), as it
/// would be had this version applied the first.
@Suite struct StoreFixtureReferenceTests {
    @Test func referencesUsedBeforeTheUpgradeAreNotAppliedAgain() throws {
        let daemon = try StoreFixtureTests.daemon()
        let walletBefore = try #require(try daemon.request("GET", "/v1/customers/c-1/wallet").json)
        let credit = try daemon.request("POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":20000,"reference":"credit-1"}"#)
        #expect(credit.status == 409 && credit.json?["code"]?.string == "reference_used", "\(credit.text)")
        let grant = try daemon.request("POST", "/v1/customers/c-1/points", body: #"{"points":3000,"reference":"grant-1"}"#)
        #expect(grant.status == 409 && grant.json?["code"]?.string == "reference_used", "\(grant.text)")
        let walletAfter = try #require(try daemon.request("GET", "/v1/customers/c-1/wallet").json)
        #expect(walletAfter["wallet_fen"]?.int64 == walletBefore["wallet_fen"]?.int64)
        #expect(walletAfter["points"]?.int64 == walletBefore["points"]?.int64)
    }
}
