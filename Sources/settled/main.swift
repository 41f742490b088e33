// settled: the settlement daemon.
//
//   settled --config PATH                  run in the foreground (systemd Type=notify)
//   settled --check-config --config PATH   check the configuration and exit
//
// Start order: configuration, signals, store, writer, socket, timers, server, READY=1.
// SIGTERM or SIGINT stops in reverse: STOPPING=1, stop accepting, answer what is in flight,
// the writer commits what it has queued, timers stop, the store is synced and closed, exit 0.

import CSystemd
@preconcurrency import Dispatch
import Foundation
import Glibc
import SettledConfig
import SettledCore
import SettledHTTP
import SettledService
import SettledStore

let usage = """
    usage: settled --config PATH [--check-config]
           settled --version

      --config PATH     the INI configuration (see conf/settled.conf)
      --check-config    check the configuration (file, line and key of each problem) and exit:
                        0 when it is good, 1 otherwise
      --version         print the version and exit

    """

/// Logs one event a line to stderr with an sd-daemon priority prefix, which journald reads.
final class Logger: @unchecked Sendable {
    let levelMax: Int32
    private let lock = NSLock()

    init(levelMax: Int32) { self.levelMax = levelMax }

    func log(_ priority: Int32, _ message: String) {
        guard priority <= levelMax else { return }
        let line = "<\(priority)>" + message.replacingOccurrences(of: "\n", with: " ") + "\n"
        lock.lock()
        writeStandardError(line)
        lock.unlock()
    }
}

/// Writes to descriptor 2 directly: one write a line, so lines from threads do not interleave.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}

func fail(_ message: String, exitCode: Int32 = 1) -> Never {
    writeStandardError("<3>settled: \(message)\n")
    exit(exitCode)
}

func notify(_ state: String) {
    _ = sd_notify(0, state)
}

// MARK: arguments

var configPath: String?
var checkOnly = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--config":
        guard let path = arguments.popFirst() else { fail("--config needs a path\n" + usage, exitCode: 2) }
        configPath = path
    case "--check-config": checkOnly = true
    case "--version":
        print("settled \(SettledService.version)")
        exit(0)
    case "--help", "-h":
        print(usage, terminator: "")
        exit(0)
    default:
        fail("unknown argument '\(argument)'\n" + usage, exitCode: 2)
    }
}
guard let configPath else { fail("--config is required\n" + usage, exitCode: 2) }

// MARK: configuration

let configuration: SettledConfiguration
let groups: (gateway: [UInt32], operator: [UInt32], auditor: [UInt32], socketGroup: UInt32?)
do {
    configuration = try SettledConfiguration.load(path: configPath, resolveGroups: true)
    groups = try configuration.resolvedGroupIDs()
    _ = try configuration.calendar()
} catch {
    if checkOnly {
        print(error.description)
        exit(1)
    }
    fail("configuration refused:\n" + error.description)
}
if checkOnly {
    print("configuration OK")
    exit(0)
}

/// Runs the daemon. A function, not top-level code, so that the closures it hands to Dispatch
/// are not bound to the main actor: they run on Dispatch's threads.
func run(configuration: SettledConfiguration, groups: (gateway: [UInt32], operator: [UInt32], auditor: [UInt32], socketGroup: UInt32?)) -> Never {
    let logger = Logger(levelMax: Int32(configuration.logLevel))
    let log: @Sendable (Int32, String) -> Void = { priority, message in logger.log(priority, message) }

    // MARK: signals (registered first, kept alive for the life of the process)

    signal(SIGPIPE, SIG_IGN)
    // A file past RLIMIT_FSIZE fails with EFBIG (a spooled upload answers 507) instead of
    // killing the daemon.
    signal(SIGXFSZ, SIG_IGN)
    let termination = Termination()

    // MARK: store and writer

    notify("STATUS=opening the store")
    let store: Store
    do {
        store = try Store(directory: configuration.stateDirectory, mapSizeBytes: configuration.mapSizeBytes,
                          mapSizeMaxBytes: configuration.mapSizeMaxBytes, sync: configuration.sync == .on)
    } catch {
        fail("cannot open the store in \(configuration.stateDirectory): \(error)")
    }
    let deadReaders = store.environment.checkReaders()
    if deadReaders > 0 { log(4, "cleared \(deadReaders) stale reader slots") }
    if configuration.sync == .off { log(4, "sync = off: commits are not synced to disk (tests only)") }

    let writer = StoreWriter(store: store, queueMax: configuration.writerQueueMax, batchMax: configuration.writerBatchMax)
    if configuration.logLevel >= 7 {
        writer.batchObserver = { requests, batchNanoseconds, storeCommitNanoseconds in
            log(7, "batch of \(requests) committed in \(SettledService.milliseconds(batchNanoseconds)) ms (store commit \(SettledService.milliseconds(storeCommitNanoseconds)) ms)")
        }
    }
    writer.start()

    let access = AccessPolicy(gatewayGroupIDs: Set(groups.gateway), operatorGroupIDs: Set(groups.operator),
                              auditorGroupIDs: Set(groups.auditor),
                              operatorUIDs: Set(configuration.operatorUIDs + (configuration.trustOwnUID ? [getuid()] : [])))
    let service = SettledService(configuration: configuration, store: store, writer: writer, access: access, log: log)

    // MARK: socket

    let ownSocket: (path: String, identity: SocketFileIdentity)?
    let listeningDescriptor: Int32
    let passedDescriptors = sd_listen_fds(1)
    if passedDescriptors > 1 {
        fail("systemd passed \(passedDescriptors) sockets; settled.socket must listen on exactly one")
    } else if passedDescriptors == 1 {
        listeningDescriptor = SD_LISTEN_FDS_START
        ownSocket = nil
        guard sd_is_socket_unix(listeningDescriptor, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0 else {
            fail("the socket systemd passed is not a listening Unix stream socket")
        }
        log(6, "listening on the socket passed by systemd")
    } else {
        do {
            listeningDescriptor = try HTTPServer.listen(path: configuration.socketPath, mode: 0o660, groupID: groups.socketGroup)
        } catch {
            fail("cannot listen on \(configuration.socketPath): \(error)")
        }
        guard let identity = HTTPServer.socketFileIdentity(path: configuration.socketPath) else {
            fail("the socket \(configuration.socketPath) vanished as it was made")
        }
        ownSocket = (configuration.socketPath, identity)
        log(6, "listening on \(configuration.socketPath)")
    }

    var limits = HTTPServerLimits(headerBytesMax: configuration.headerBytesMax, bodyBytesMax: configuration.bodyBytesMax,
                                  connectionsMax: configuration.connectionsMax, idleTimeoutSeconds: configuration.idleTimeoutSeconds)
    limits.connectionsPerUIDMax = configuration.connectionsPerUIDMax
    limits.requestReadTimeoutSeconds = configuration.requestReadTimeoutSeconds
    limits.largeBodiesMax = configuration.uploadsInFlightMax
    let server = HTTPServer(listeningDescriptor: listeningDescriptor, limits: limits,
                            bodyLimit: { method, pathSegments, peer in service.bodyLimit(method: method, pathSegments: pathSegments, peer: peer) },
                            spoolBody: { method, pathSegments, peer in service.spoolTarget(method: method, pathSegments: pathSegments, peer: peer) },
                            log: log,
                            handler: { request, peer, responder in service.handle(request, peer: peer, responder: responder) })
    service.connectionCount = { server.connectionCount }
    service.httpCounters = { server.counters }
    // MARK: timers (before the server serves, so that the first answer of /v1/status lists them)

    service.timers.every("reader_check", intervalSeconds: configuration.readerCheckSeconds) {
        let cleared = store.environment.checkReaders()
        return cleared == 0 ? "ok" : "cleared \(cleared) stale readers"
    }
    service.startMaintenanceTimers()
    service.startOrderTimers()
    service.startAutoDebitTimers()
    service.resumeStatementImports()
    service.resumeBankStatementImports()
    service.resumeBillerWriteoffImports()
    // The clearing of each business date on T+1, the same run as `POST /v1/clearing/runs`.
    service.registerClearingJob { [service] date in try service.runClearing(businessDate: date) }
    service.startJobTimer()

    do {
        try server.start()
    } catch {
        fail("cannot start serving connections: \(error)")
    }

    var watchdogMicroseconds: UInt64 = 0
    var watchdogTimer: DispatchSourceTimer?
    if configuration.watchdog != false && sd_watchdog_enabled(0, &watchdogMicroseconds) > 0 && watchdogMicroseconds > 0 {
        // Ping at half the interval, and only while the writer shows signs of life: a stuck
        // writer stops the pings and systemd restarts the daemon.
        let interval = DispatchTimeInterval.microseconds(Int(watchdogMicroseconds / 2))
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "settled.watchdog"))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler {
            let ageNanoseconds = DispatchTime.now().uptimeNanoseconds - writer.snapshot().heartbeatUptimeNanoseconds
            if ageNanoseconds < watchdogMicroseconds * 1000 / 2 {
                notify("WATCHDOG=1")
            } else {
                log(2, "writer shows no sign of life for \(ageNanoseconds / 1_000_000) ms: withholding the watchdog ping")
            }
        }
        timer.resume()
        watchdogTimer = timer
    }

    // MARK: ready; then wait for a termination signal

    let usageAtStart = store.environment.usage()
    notify("READY=1\nSTATUS=serving on \(ownSocket?.path ?? "the systemd socket"); map \(usageAtStart.usedBytes * 100 / max(usageAtStart.mapSizeBytes, 1))% used")
    log(6, "settled \(SettledService.version) ready (pid \(getpid()), state \(configuration.stateDirectory))")
    // A signal that came while starting stops the daemon now.
    termination.whenSignalled { [watchdogTimer] in
        notify("STOPPING=1\nSTATUS=stopping: answering requests in flight")
        log(6, "stopping")
        server.shutdown(graceSeconds: 20) {
            watchdogTimer?.cancel()
            writer.stop()
            service.timers.stop()
            service.jobs.stop()
            if configuration.sync == .off { try? store.environment.sync() }
            if let ownSocket, !HTTPServer.removeSocketFile(path: ownSocket.path, ifStill: ownSocket.identity) {
                log(4, "left \(ownSocket.path) in place: it is no longer the socket this daemon made")
            }
            log(6, "stopped")
            // `_exit`, not `exit`: the store is committed and synced, and `exit` would run the
            // process's destructors while other threads (connections, a job's run) may still
            // be using what they destroy, turning a clean stop into a crash.
            _exit(0)
        }
    }
    dispatchMain()
}

/// SIGTERM and SIGINT, caught from the first moment of `run`: a signal that comes while the
/// daemon is still starting is kept, and stopping begins as soon as there is something to stop
/// (an ignored signal would be lost, and systemd would kill the daemon at `TimeoutStopSec`).
final class Termination: @unchecked Sendable {
    private let queue = DispatchQueue(label: "settled.signals")
    private var sources: [any DispatchSourceSignal] = []
    // Touched on `queue` only.
    private var stop: (@Sendable () -> Void)?
    private var signalled = false

    init() {
        // Blocked in this thread and so in every thread made after it: a signal that comes
        // before the sources are registered stays pending until Dispatch takes it (from a
        // signalfd), and their default action (ending the process at once) is never taken.
        // Not ignored: an ignored signal is discarded when it comes, and one pending when
        // SIG_IGN is set is discarded too.
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGTERM)
        sigaddset(&mask, SIGINT)
        let blocked = pthread_sigmask(SIG_BLOCK, &mask, nil)
        precondition(blocked == 0, "pthread_sigmask: \(blocked)")
        sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
        for source in sources {
            // The source holds its handler and the handler this object: both live as long as
            // the process.
            source.setEventHandler { self.caught() }
            source.resume()
        }
    }

    private func caught() {
        guard !signalled else { return }
        signalled = true
        for source in sources { source.cancel() }
        stop?()
    }

    /// What a signal does from now on; done at once when a signal came before.
    func whenSignalled(_ body: @escaping @Sendable () -> Void) {
        queue.sync {
            stop = body
            if signalled { queue.async(execute: body) }
        }
    }
}

run(configuration: configuration, groups: groups)

