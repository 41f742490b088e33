import Foundation
import Glibc
import Testing

// What the daemon does with what it finds at its socket path and in its state directory:
// a stale socket is replaced, anything else at the path is refused, and a second daemon on
// the same socket or the same store is refused with a message saying why.

@Suite("Socket and state directory hygiene")
struct SocketHygieneTests {
    static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
    }

    /// What tells one file at a path from another made there later: its inode number (which
    /// the file system may give again to a new file) and its change time.
    static func inode(_ path: String) -> [Int]? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return [Int(info.st_ino), Int(info.st_ctim.tv_sec), Int(info.st_ctim.tv_nsec)]
    }

    @Test("a stale socket left by a killed daemon is replaced at the next start")
    func staleSocketFromKilledDaemon() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let first = Self.inode(daemon.socketPath)
        try daemon.stop(signal: SIGKILL)
        #expect(Self.isSocket(daemon.socketPath), "kill -9 leaves the socket file behind")
        #expect(throws: (any Error).self, "nobody answers on the stale socket") { try daemon.request("GET", "/v1/health") }

        try daemon.start()
        #expect(Self.isSocket(daemon.socketPath))
        #expect(Self.inode(daemon.socketPath) != first, "a new socket replaced the stale one")
        #expect(try daemon.request("GET", "/v1/health").status == 200)
        #expect(try daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "an orderly stop removes the socket")
    }

    @Test("a socket file nobody listens on is replaced")
    func staleSocketFile() throws {
        let daemon = try DaemonHarness()
        // Bind a socket at the path and close it without listening: a dead socket file.
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(daemon.socketPath.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(descriptor)
        try #require(bound == 0 && Self.isSocket(daemon.socketPath))
        try daemon.start()
        #expect(try daemon.request("GET", "/v1/health").status == 200)
    }

    @Test("a regular file or a directory at the socket path stops the start with a clear message", arguments: ["file", "directory"])
    func notASocket(kind: String) throws {
        let daemon = try DaemonHarness()
        let contents = "not a socket: keep me\n"
        if kind == "file" {
            try contents.write(toFile: daemon.socketPath, atomically: false, encoding: .utf8)
        } else {
            try FileManager.default.createDirectory(atPath: daemon.socketPath, withIntermediateDirectories: false)
        }
        let result = try daemon.runToExit()
        #expect(!result.timedOut, "the daemon started although a \(kind) is at its socket path")
        #expect(result.exitCode == 1)
        #expect(result.output.contains("\(daemon.socketPath) exists and is not a socket"), "\(result.output)")
        if kind == "file" {
            #expect(try String(contentsOfFile: daemon.socketPath, encoding: .utf8) == contents, "the file is left alone")
        } else {
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: daemon.socketPath, isDirectory: &isDirectory) && isDirectory.boolValue)
        }
    }

    @Test("a second daemon on the same socket is refused, and the first keeps serving on it")
    func secondDaemonOnTheSameSocket() throws {
        let first = try DaemonHarness()
        try first.start()
        #expect(try first.json("PUT", "/v1/billers/sgcc-js", billerBody()).status == 201)
        let inode = Self.inode(first.socketPath)

        let second = try DaemonHarness()
        try second.setDaemonKey("socket", first.socketPath)
        let result = try second.runToExit()
        #expect(!result.timedOut, "the second daemon started on a socket in use")
        #expect(result.exitCode == 1)
        #expect(result.output.contains("a server already answers on \(first.socketPath)"), "\(result.output)")

        #expect(Self.inode(first.socketPath) == inode, "the first daemon's socket is untouched")
        #expect(try first.request("GET", "/v1/billers/sgcc-js").status == 200, "the first daemon still answers")
    }

    @Test("a second daemon on the same state directory is refused; after the first stops it may start")
    func secondDaemonOnTheSameStore() throws {
        let first = try DaemonHarness()
        try first.start()
        #expect(try first.json("PUT", "/v1/billers/sgcc-js", billerBody()).status == 201)
        let pid = first.process!.processIdentifier

        let second = try DaemonHarness()
        try second.setDaemonKey("state_dir", first.directory + "/state")
        let result = try second.runToExit()
        #expect(!result.timedOut, "the second daemon started on a store another daemon has open")
        #expect(result.exitCode == 1)
        #expect(result.output.contains(first.directory + "/state"), "the refusal names the state directory: \(result.output)")
        #expect(result.output.contains("pid \(pid)"), "the refusal names the daemon holding the store: \(result.output)")
        #expect(!Self.isSocket(second.socketPath), "a refused daemon leaves no socket")
        #expect(try first.request("GET", "/v1/billers/sgcc-js").status == 200, "the first daemon still answers")

        // A killed daemon holds nothing: the store is free at once.
        try first.stop(signal: SIGKILL)
        try second.start()
        #expect(try second.request("GET", "/v1/billers/sgcc-js").status == 200)
        #expect(try second.stop() == 0)
        try first.start()
        #expect(try first.request("GET", "/v1/ledger/verify").json?["ok"]?.bool == true)
    }
}
