import Glibc
import SettledCore

/// `<state_dir>/inbox/<channel>/`: where banks and channels drop statement files (by SFTP), one
/// directory per configured channel, made at start (0770, so that a delivery account in the
/// daemon's group may write there).
///
/// The reconciliation timer picks the files up (`run`). A file is taken when it is complete:
/// a regular file whose name does not begin with `.` and does not end in `.part`, `.tmp` or
/// `.filepart` (the names SFTP clients write under before they rename), and whose last change
/// is at least `quietSeconds` old by the daemon's clock (a client that writes in place). Each
/// one is moved (a rename: the inbox must be on the state directory's filesystem) into the
/// spool, hashed there, and handed to the import for its channel and business date: the date
/// its name begins with (`YYYY-MM-DD…`), else the day before the local date of the scheduled
/// run. Imported, it is removed from the spool; refused, it goes to `<channel>/failed/` under
/// its own name (`.1`, `.2`, … added if taken) with a `<name>.reason` file beside it; after a
/// fault mid-import it stays in the spool, where the statement's resume at start reads it.
struct InboxPickup: Sendable {
    /// A file changed more recently than this (by the daemon's clock) may still be written.
    static let quietSeconds: Int64 = 10
    static let failedDirectory = "failed"
    /// Name endings of files still being written.
    static let partialSuffixes = [".part", ".tmp", ".filepart"]
    /// Names tried in `failed/` before one is free.
    static let failedNamesMax = 1000

    let path: String
    let spool: SpoolDirectory
    let channels: [String]
    let log: @Sendable (Int32, String) -> Void

    /// One file taken by a run.
    struct Pickup: Sendable, Equatable {
        var channel: String
        var fileName: String
        var businessDate: BusinessDate
        /// Nil when the import took it; else why it was set aside in `failed/`, or left in
        /// the spool (`heldForResume`).
        var failure: String?
        /// The import failed midway: an unfinished statement reads the file when it resumes.
        var heldForResume = false
    }

    /// The handoff of a spooled file to the import: returns once the import has committed,
    /// throws its refusal.
    typealias Handoff = (_ channel: String, _ businessDate: BusinessDate, _ spooled: SpooledStatement) throws(APIError) -> Void

    func channelPath(_ channel: String) -> String { path + "/" + channel }

    /// Makes the inbox, a directory per channel and its `failed/` (0770).
    func prepare() throws(SpoolError) {
        try StateDirectories.make(path, mode: 0o770)
        for channel in channels {
            try StateDirectories.make(channelPath(channel), mode: 0o770)
            try StateDirectories.make(channelPath(channel) + "/" + Self.failedDirectory, mode: 0o770)
        }
    }

    /// The business date of a file: the date its name begins with, else `fallback`.
    static func businessDate(ofFileName name: String, fallback: BusinessDate) -> BusinessDate {
        BusinessDate(name.prefix(10)) ?? fallback
    }

    /// Whether a name is one a client writes under before the file is complete.
    static func isPartialName(_ name: String) -> Bool {
        name.hasPrefix(".") || partialSuffixes.contains { name.hasSuffix($0) }
    }

    /// The complete files of a channel's inbox now, by name.
    func completeFiles(channel: String, nowUnixMillis: Int64) -> [String] {
        let directory = channelPath(channel)
        return StateDirectories.names(in: directory).filter { name in
            guard !Self.isPartialName(name) else { return false }
            var info = stat()
            guard lstat(directory + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
            let changedMillis = max(Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000,
                                    Int64(info.st_ctim.tv_sec) * 1000 + Int64(info.st_ctim.tv_nsec) / 1_000_000)
            return changedMillis <= nowUnixMillis - Self.quietSeconds * 1000
        }
    }

    /// Takes every complete file of every channel's inbox, in name order, and hands each to
    /// `handoff`. `undatedBusinessDate`: the date of files whose names carry none.
    /// `isHeldForResume`: whether an unfinished statement reads a spool file (left there when
    /// its handoff failed).
    func run(nowUnixMillis: Int64, undatedBusinessDate: BusinessDate, handoff: Handoff,
             isHeldForResume: (String) -> Bool = { _ in false }) -> [Pickup] {
        var pickups: [Pickup] = []
        for channel in channels {
            for name in completeFiles(channel: channel, nowUnixMillis: nowUnixMillis) {
                let date = Self.businessDate(ofFileName: name, fallback: undatedBusinessDate)
                if let pickup = take(channel: channel, name: name, businessDate: date, handoff: handoff, isHeldForResume: isHeldForResume) {
                    pickups.append(pickup)
                }
            }
        }
        return pickups
    }

    /// Moves one file into the spool, hashes it, hands it over; nil when it could not even be
    /// moved (it stays in the inbox, and the next run tries again).
    private func take(channel: String, name: String, businessDate: BusinessDate, handoff: Handoff,
                      isHeldForResume: (String) -> Bool) -> Pickup? {
        let source = channelPath(channel) + "/" + name
        let spooledPath = spool.newPath(prefix: "inbox-\(channel)-")
        guard rename(source, spooledPath) == 0 else {
            log(3, "inbox: cannot move \(source) into the spool: \(String(cString: strerror(errno)))")
            return nil
        }
        var pickup = Pickup(channel: channel, fileName: name, businessDate: businessDate, failure: nil)
        let failure: String?
        do {
            var hash = SHA256()
            var bytes: Int64 = 0
            try SliceReader.read(spooledPath) { slice in
                hash.update(slice)
                bytes += Int64(slice.count)
            }
            try StateDirectories.sync(spooledPath)
            try StateDirectories.sync(spool.path)
            try StateDirectories.sync(channelPath(channel))
            let statement = SpooledStatement(path: spooledPath, bytes: bytes, sha256Hex: SHA256.hex(hash.finish()),
                                             source: .inbox(fileName: name))
            do throws(APIError) {
                try handoff(channel, businessDate, statement)
                failure = nil
            } catch {
                failure = error.description
            }
        } catch {
            failure = "\(error)"
        }
        if let failure, isHeldForResume(spooledPath) {
            pickup.failure = failure
            pickup.heldForResume = true
            log(3, "inbox: the import of \(name) of \(channel) failed midway (\(failure)); the file stays in the spool as \(spooledPath) for its resume at start")
        } else if let failure {
            pickup.failure = failure
            setAside(spooledPath, channel: channel, name: name, reason: failure, businessDate: businessDate)
        } else {
            spool.remove(spooledPath)
        }
        return pickup
    }

    /// Moves a refused file from the spool to `<channel>/failed/` with a `.reason` file.
    private func setAside(_ spooledPath: String, channel: String, name: String, reason: String, businessDate: BusinessDate) {
        let failed = channelPath(channel) + "/" + Self.failedDirectory
        var target = failed + "/" + name
        var suffix = 0
        while access(target, F_OK) == 0 || access(target + ".reason", F_OK) == 0 {
            suffix += 1
            guard suffix < Self.failedNamesMax else { break }
            target = failed + "/" + name + "." + String(suffix)
        }
        guard rename(spooledPath, target) == 0 else {
            log(3, "inbox: \(name) of \(channel) was refused (\(reason)) and stays in the spool as \(spooledPath): \(String(cString: strerror(errno)))")
            return
        }
        let text = "file: \(name)\nchannel: \(channel)\nbusiness_date: \(businessDate)\nreason: \(reason)\n"
        let descriptor = open(target + ".reason", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o660)
        if descriptor >= 0 {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
        }
        log(4, "inbox: \(name) of \(channel) set aside in \(failed): \(reason)")
    }
}
