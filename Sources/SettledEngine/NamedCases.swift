/// An enum whose cases have the names the API speaks (`awaiting_funding`): read back from a
/// name by looking through its cases.
package protocol NamedCases: CaseIterable {
    var name: String { get }
}

extension NamedCases {
    /// The case named `name`, or nil.
    package init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }
}
