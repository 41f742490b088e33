#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SettledCore

extension SettledConfiguration {
    /// The gids of the groups named in [access] and of `socket_group` (getgrnam_r).
    /// Every group that does not exist is a problem on the line of its key.
    public func resolvedGroupIDs() throws(ConfigurationError) -> (gateway: [UInt32], operator: [UInt32], auditor: [UInt32], socketGroup: UInt32?) {
        var problems: [ConfigurationProblem] = []
        func resolve(_ names: [String], section: String, key: String) -> [UInt32] {
            var gids: [UInt32] = []
            for name in names {
                switch Self.groupID(named: name) {
                case .found(let gid): gids.append(gid)
                case .failed(let message):
                    problems.append(ConfigurationProblem(file: path, line: lineOfKey[section + "." + key] ?? 0,
                                                         section: section, key: key, message: "group '\(name)': \(message)"))
                }
            }
            return gids
        }
        let gateway = resolve(gatewayGroups, section: "access", key: "gateway_groups")
        let operators = resolve(operatorGroups, section: "access", key: "operator_groups")
        let auditor = resolve(auditorGroups, section: "access", key: "auditor_groups")
        let socket = socketGroup.map { resolve([$0], section: "daemon", key: "socket_group") }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
        return (gateway, operators, auditor, socket?.first)
    }

    /// The business calendar from `calendarPath`; the empty calendar (weekends only) when none
    /// is configured. A file that cannot be read is a problem on the `calendar` key's line;
    /// a bad entry is a problem on its own line of the calendar file.
    public func calendar() throws(ConfigurationError) -> BusinessCalendar {
        guard let calendarPath else { return .empty }
        if let checked = checkedCalendar, checked.path == calendarPath { return checked.calendar }
        let bytes: [UInt8]
        do {
            bytes = try readBoundedFile(path: calendarPath, bytesMax: Self.calendarFileBytesMax)
        } catch {
            throw ConfigurationError(problems: [
                ConfigurationProblem(file: path, line: lineOfKey["business.calendar"] ?? 0, section: "business",
                                     key: "calendar", message: "cannot read \(calendarPath): \(error.message)"),
            ])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError(problems: [
                ConfigurationProblem(file: calendarPath, line: 0, section: "", key: "", message: "not valid UTF-8"),
            ])
        }
        do {
            return try BusinessCalendar.parse(text)
        } catch {
            throw ConfigurationError(problems: error.problems.map {
                ConfigurationProblem(file: calendarPath, line: $0.line, section: "", key: "", message: $0.message)
            })
        }
    }

    private enum GroupLookup {
        case found(UInt32)
        case failed(String)
    }

    /// The largest buffer getgrnam_r is given: a group with thousands of members fits.
    private static let groupBufferBytesMax = 1 << 20

    private static func groupID(named name: String) -> GroupLookup {
        var size = max(1024, sysconf(Int32(_SC_GETGR_R_SIZE_MAX)))
        while true {
            var group = group()
            var result: UnsafeMutablePointer<group>?
            var buffer = [CChar](repeating: 0, count: size)
            let code = getgrnam_r(name, &group, &buffer, size, &result)
            if code == ERANGE && size < groupBufferBytesMax {
                size *= 2
                continue
            }
            if code != 0 { return .failed(String(cString: strerror(code))) }
            guard let result else { return .failed("no such group") }
            return .found(result.pointee.gr_gid)
        }
    }
}
