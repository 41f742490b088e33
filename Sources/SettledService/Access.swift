import SettledHTTP

/// The roles of the contract. A peer may hold several (through several groups).
public struct Roles: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let gateway = Roles(rawValue: 1 << 0)
    public static let `operator` = Roles(rawValue: 1 << 1)
    public static let auditor = Roles(rawValue: 1 << 2)

    public static let any: Roles = [.gateway, .operator, .auditor]
    /// Every GET: the auditor reads everything, the operator does everything.
    public static let readers: Roles = [.auditor, .operator]
    public static let gatewayAndReaders: Roles = [.gateway, .auditor, .operator]
    public static let operatorOnly: Roles = [.operator]
    public static let gatewayAndOperator: Roles = [.gateway, .operator]

    /// The most privileged role held, for the audit log.
    public var name: String {
        if contains(.operator) { return "operator" }
        if contains(.gateway) { return "gateway" }
        if contains(.auditor) { return "auditor" }
        return "none"
    }
}

/// Maps a peer's credentials to roles, from the configured groups.
public struct AccessPolicy: Sendable {
    public var gatewayGroupIDs: Set<UInt32>
    public var operatorGroupIDs: Set<UInt32>
    public var auditorGroupIDs: Set<UInt32>
    /// uids that are operators besides uid 0 (which always is).
    public var operatorUIDs: Set<UInt32>

    public init(gatewayGroupIDs: Set<UInt32>, operatorGroupIDs: Set<UInt32>, auditorGroupIDs: Set<UInt32>, operatorUIDs: Set<UInt32>) {
        self.gatewayGroupIDs = gatewayGroupIDs
        self.operatorGroupIDs = operatorGroupIDs
        self.auditorGroupIDs = auditorGroupIDs
        self.operatorUIDs = operatorUIDs
    }

    public func roles(of peer: PeerCredentials) -> Roles {
        var roles: Roles = []
        if peer.uid == 0 || operatorUIDs.contains(peer.uid) { roles.insert(.operator) }
        let groups = peer.groups.isEmpty ? [peer.gid] : peer.groups + [peer.gid]
        for group in groups {
            if operatorGroupIDs.contains(group) { roles.insert(.operator) }
            if gatewayGroupIDs.contains(group) { roles.insert(.gateway) }
            if auditorGroupIDs.contains(group) { roles.insert(.auditor) }
        }
        return roles
    }
}
