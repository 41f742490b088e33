import Foundation
import Glibc
import SettledCore
import SettledHTTP

/// Starts the real `settled` binary on a temporary directory and talks to it through its socket.
///
/// Each harness has its own directory (state, socket, config). The binaries are the ones built
/// next to the test bundle (`swift build --build-tests` builds them).
final class DaemonHarness: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let configPath: String
    private(set) var process: Process?
    private var logHandle: FileHandle?
    let logPath: String

    /// The directory holding the built products (`settled`, `settlectl`).
    static let productsDirectory: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // On Linux the test runner is .build/<triple>/debug/<package>PackageTests.xctest.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("settled").path) && directory.path != "/" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.path
    }()

    static var settledPath: String { productsDirectory + "/settled" }
    static var settlectlPath: String { productsDirectory + "/settlectl" }

    /// The repository root (for conf/ and systemd/).
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url = url.deletingLastPathComponent() }
        return url.path
    }()

    /// `config` is appended to a base configuration; sections may repeat keys of the base
    /// only by being given in full here (`base: false`).
    init(sync: Bool = false, extraConfiguration: String = "", base: Bool = true) throws {
        var template = "/tmp/settled-test-XXXXXX".utf8CString
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw HarnessError.setup("mkdtemp failed") }
        directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        chmod(directory, 0o755)
        socketPath = directory + "/settled.sock"
        configPath = directory + "/settled.conf"
        logPath = directory + "/settled.log"
        let configuration = (base ? """
            [daemon]
            state_dir = \(directory)/state
            socket = \(socketPath)
            sync = \(sync ? "on" : "off")
            map_size_bytes = 16 MiB
            map_size_max_bytes = 1 GiB
            log_level = info
            watchdog = no

            [business]
            calendar = \(Self.repositoryRoot)/conf/calendar

            """ : "") + extraConfiguration
        try configuration.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts the daemon and waits until it answers /v1/health.
    func start(timeoutSeconds: Double = 15) throws {
        precondition(process?.isRunning != true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.settledPath)
        process.arguments = ["--config", configPath]
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.process = process
        self.logHandle = log
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if !process.isRunning { throw HarnessError.setup("settled exited at start: \(self.log())") }
            if let response = try? request("GET", "/v1/health"), response.status == 200 { return }
            usleep(20_000)
        }
        throw HarnessError.setup("settled did not answer within \(timeoutSeconds) s: \(self.log())")
    }

    /// Sends `signal` and waits for the exit; returns the exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeoutSeconds: Double = 30) throws -> Int32 {
        guard let process else { throw HarnessError.setup("not running") }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw HarnessError.setup("settled did not stop within \(timeoutSeconds) s after signal \(signal)")
        }
        self.process = nil
        try? logHandle?.close()
        return process.terminationStatus
    }

    func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var json: JSONValue? { try? JSONParser.parse(body) }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One request on a new connection.
    func request(_ method: String, _ path: String, body: String? = nil, headers: [(name: String, value: String)] = []) throws -> Response {
        let client = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 30)
        defer { client.close() }
        let response = try client.send(method: method, path: path, headers: headers, body: body.map { Array($0.utf8) })
        return Response(status: response.status, headers: response.headers, body: response.body)
    }

    struct CommandResult {
        var exitCode: Int32
        var standardOutput: String
        var standardError: String
    }

    /// Runs a program to completion (curl, settlectl, ...).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    input: String? = nil) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        let inputPipe = Pipe()
        process.standardInput = inputPipe
        try process.run()
        if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try? inputPipe.fileHandleForWriting.close()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(exitCode: process.terminationStatus,
                             standardOutput: String(decoding: outputData, as: UTF8.self),
                             standardError: String(decoding: errorData, as: UTF8.self))
    }

    func settlectl(_ arguments: [String], input: String? = nil) throws -> CommandResult {
        try Self.run(Self.settlectlPath, ["--socket", socketPath] + arguments, input: input)
    }

    func curl(_ arguments: [String]) throws -> CommandResult {
        try Self.run("/usr/bin/curl", ["-sS", "--unix-socket", socketPath] + arguments)
    }
}

enum HarnessError: Error, CustomStringConvertible {
    case setup(String)
    var description: String {
        switch self {
        case .setup(let message): return message
        }
    }
}
