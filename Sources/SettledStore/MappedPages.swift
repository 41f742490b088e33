import Glibc
import Synchronization

/// The release of the store's map pages, after the writer's batches.
///
/// A page read through LMDB's map stays in the process's resident set (`RssFile`) after the
/// read is done. A statement's import reads an order, its notification and the index keys of
/// every line, all over a store of gigabytes, and a day's order intake reads and writes pages
/// all over it too, so the daemon would keep gigabytes resident: memory the kernel counts
/// against it (a cgroup's limit, the OOM killer's score). After a batch the writer looks at the
/// resident map and, past a threshold, lets the map's pages go (`madvise(MADV_DONTNEED)`):
/// they stay in the kernel's page cache, and the next read maps them again from there.
///
/// - While an import runs (`whileImporting`): at most every `importCheckIntervalNanoseconds`,
///   past `residentBytesMax`. The import lets them go when it begins and when it ends too.
/// - Otherwise (order intake, the readers' reports and listings), when no clearing runs: at
///   most every `intakeCheckIntervalNanoseconds`, past `intakeResidentBytesMax`. Intake maps a
///   few MiB a second at most, so a look a second keeps the map near the threshold, and a
///   release refaults only intake's working set (the B-trees' upper levels, the recent pages).
/// - Never while a clearing runs (`whileClearing`) and no import does: a clearing walks the
///   orders biller by biller, so it reads each page again for every biller once its pages are
///   let go (each fault maps its neighbours too); the release doubled its time (benches/README.md,
///   "## clearing"). Its pages go at the first look after it ends.
public final class MappedPageRelease: Sendable {
    let environment: Environment
    /// Imports running now (`whileImporting`): the import's release applies while there is one.
    private let importsRunning = Atomic<Int>(0)
    /// Clearing runs now (`whileClearing`): outside imports, nothing is let go while there is one.
    private let clearingsRunning = Atomic<Int>(0)
    /// The resident bytes of the map past which the writer lets them go during an import.
    private let thresholdBytes: Atomic<Int>
    /// The resident bytes of the map past which the writer lets them go outside imports and clearings.
    private let intakeThresholdBytes: Atomic<Int>
    /// The least time between two looks outside imports, in nanoseconds.
    private let intakeIntervalNanoseconds: Atomic<UInt64>
    /// When the writer last looked at the map (monotonic nanoseconds; the writer's thread only
    /// writes it).
    private let lastLookNanoseconds = Atomic<UInt64>(0)
    /// The process's file-backed resident bytes (`/proc/self/statm`: shared pages) right after
    /// the last release, or at start: the program's own text and libraries, which
    /// `mappedResidentBytes` subtracts.
    private let fileResidentBaselineBytes = Atomic<Int>(0)
    /// Releases made, and the bytes they let go (for `/v1/status`-like reports and tests).
    private let releasesCount = Atomic<Int>(0)
    private let releasedBytesTotal = Atomic<Int>(0)

    /// The map's resident bytes kept at most during an import, about: the release lets all of
    /// them go once past this, so the daemon's resident map stays between nothing and this plus
    /// what one writer batch maps (a slice of an import).
    public static let residentBytesMaxDefault = 64 << 20

    /// The map's resident bytes kept at most outside imports and clearings, about: above the
    /// import's, so that intake's working set is not refaulted often (intake maps a few MiB a
    /// second), and with the import's own peak (the map at this, plus what a slice maps, plus
    /// the anonymous memory) within the daemon's 256 MiB.
    public static let intakeResidentBytesMaxDefault = 128 << 20

    /// The least time between two looks of the writer at the resident map during an import:
    /// reading `/proc/self/statm` costs a few microseconds, a batch may take less, and an
    /// import's slice maps tens of MiB.
    public static let importCheckIntervalNanoseconds: UInt64 = 10_000_000
    /// The least time between two looks outside imports: order intake maps a few MiB a second
    /// at most, and its batches come every millisecond or so.
    public static let intakeCheckIntervalNanosecondsDefault: UInt64 = 1_000_000_000

    init(environment: Environment, residentBytesMax: Int = MappedPageRelease.residentBytesMaxDefault,
         intakeResidentBytesMax: Int = MappedPageRelease.intakeResidentBytesMaxDefault) {
        self.environment = environment
        self.thresholdBytes = Atomic(residentBytesMax)
        self.intakeThresholdBytes = Atomic(intakeResidentBytesMax)
        self.intakeIntervalNanoseconds = Atomic(Self.intakeCheckIntervalNanosecondsDefault)
        fileResidentBaselineBytes.store(Self.fileResidentBytes() ?? 0, ordering: .relaxed)
    }

    /// The resident bytes of the map past which it is let go during an import.
    public var residentBytesMax: Int {
        get { thresholdBytes.load(ordering: .relaxed) }
        set { thresholdBytes.store(newValue, ordering: .relaxed) }
    }

    /// The resident bytes of the map past which it is let go outside imports and clearings.
    public var intakeResidentBytesMax: Int {
        get { intakeThresholdBytes.load(ordering: .relaxed) }
        set { intakeThresholdBytes.store(newValue, ordering: .relaxed) }
    }

    /// The least time between two looks outside imports, in nanoseconds.
    public var intakeCheckIntervalNanoseconds: UInt64 {
        get { intakeIntervalNanoseconds.load(ordering: .relaxed) }
        set { intakeIntervalNanoseconds.store(newValue, ordering: .relaxed) }
    }

    /// Whether an import runs now.
    public var isImporting: Bool { importsRunning.load(ordering: .relaxed) > 0 }

    /// Whether a clearing runs now.
    public var isClearing: Bool { clearingsRunning.load(ordering: .relaxed) > 0 }

    /// The releases made so far and the bytes they let go.
    public var releases: (count: Int, bytes: Int) {
        (releasesCount.load(ordering: .relaxed), releasedBytesTotal.load(ordering: .relaxed))
    }

    /// Runs `body` (an import: a statement's, a biller's write-off records') with the release
    /// on. The map's pages are let go when the first import begins (what order intake left
    /// resident before it) and once more when the last ends (what the import left).
    public func whileImporting<Result>(_ body: () throws -> Result) rethrows -> Result {
        if importsRunning.add(1, ordering: .relaxed).newValue == 1 { _ = environment.lockedRelease(into: self, ifAbove: residentBytesMax) }
        defer {
            if importsRunning.subtract(1, ordering: .relaxed).newValue == 0 { _ = environment.lockedRelease(into: self, ifAbove: residentBytesMax) }
        }
        return try body()
    }

    /// Runs `body` (a clearing run) with the release outside imports off: the writer lets the
    /// map go after a batch only while an import runs too.
    public func whileClearing<Result>(_ body: () throws -> Result) rethrows -> Result {
        clearingsRunning.add(1, ordering: .relaxed)
        defer { clearingsRunning.subtract(1, ordering: .relaxed) }
        return try body()
    }

    /// After a writer batch, on the writer's thread, at `nowNanoseconds` (monotonic): while an
    /// import runs, lets the map's pages go when more than `residentBytesMax` are resident, at
    /// most every `importCheckIntervalNanoseconds`; otherwise, when no clearing runs, past
    /// `intakeResidentBytesMax`, at most every `intakeCheckIntervalNanoseconds`. Answers the
    /// bytes released, nil when it let nothing go.
    @discardableResult
    public func releaseAfterBatch(nowNanoseconds: UInt64) -> Int? {
        let importing = isImporting
        guard importing || !isClearing else { return nil }
        let interval = importing ? Self.importCheckIntervalNanoseconds : intakeCheckIntervalNanoseconds
        let last = lastLookNanoseconds.load(ordering: .relaxed)
        guard nowNanoseconds >= last, nowNanoseconds - last >= interval else { return nil }
        lastLookNanoseconds.store(nowNanoseconds, ordering: .relaxed)
        return environment.lockedRelease(into: self, ifAbove: importing ? residentBytesMax : intakeResidentBytesMax)
    }

    /// The bytes of the map this process has resident now, about: its file-backed resident
    /// set, less what it was right after the last release. Nil where `/proc` cannot be read.
    public func mappedResidentBytes() -> Int? {
        guard let shared = Self.fileResidentBytes() else { return nil }
        return max(shared - fileResidentBaselineBytes.load(ordering: .relaxed), 0)
    }

    func recordRelease(before: Int, after: Int) {
        fileResidentBaselineBytes.store(after, ordering: .relaxed)
        releasesCount.add(1, ordering: .relaxed)
        releasedBytesTotal.add(max(before - after, 0), ordering: .relaxed)
    }

    /// The third field of `/proc/self/statm` (resident file-backed and shared pages), in bytes.
    static func fileResidentBytes() -> Int? {
        guard let text = try? BoundedProcFile.read("/proc/self/statm", bytesMax: 256) else { return nil }
        let fields = text.split(separator: UInt8(ascii: " "))
        guard fields.count >= 3, let pages = Int(String(decoding: fields[2], as: UTF8.self)) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

extension Environment {
    /// Lets go of the map's pages when more than `bytesMax` are resident (as `release` counts
    /// them); answers the bytes released, nil when it let nothing go.
    fileprivate func lockedRelease(into release: MappedPageRelease, ifAbove bytesMax: Int) -> Int? {
        guard let residentBytes = release.mappedResidentBytes(), residentBytes > bytesMax else { return nil }
        // The map must not move (grow) meanwhile.
        lockShared()
        defer { unlockShared() }
        let before = MappedPageRelease.fileResidentBytes() ?? 0
        releaseMappedPages()
        let after = MappedPageRelease.fileResidentBytes() ?? 0
        release.recordRelease(before: before, after: after)
        return max(before - after, 0)
    }

    /// Lets go of every page of the map this process has resident (`madvise(MADV_DONTNEED)`
    /// over the map): the map is read-only (no `MDB_WRITEMAP`), so its pages are clean copies
    /// of the file; they stay in the kernel's page cache, and a later read, in any transaction,
    /// open or not, maps them again from there. The caller holds the growth lock shared.
    func releaseMappedPages() {
        if let region = mappedRegion(), let address = UnsafeMutableRawPointer(bitPattern: region.startAddress) {
            _ = madvise(address, region.byteCount, MADV_DONTNEED)
        }
    }

    /// Where the map is in this process's address space: the line of `/proc/self/maps` that
    /// maps the store's data file (LMDB tells where the map is only for `MDB_FIXEDMAP`).
    /// Nil where `/proc` cannot be read.
    public func mappedRegion() -> (startAddress: UInt, byteCount: Int)? {
        guard let resolved = realpath(path, nil) else { return nil }
        let dataFile = Array((String(cString: resolved) + "/data.mdb").utf8)
        free(resolved)
        guard let text = try? BoundedProcFile.read("/proc/self/maps", bytesMax: Self.procMapsBytesMax) else { return nil }
        let suffix = [UInt8(ascii: " ")] + dataFile
        for line in text.split(separator: UInt8(ascii: "\n")) where line.count > suffix.count && line.suffix(suffix.count).elementsEqual(suffix) {
            let range = line.prefix { $0 != UInt8(ascii: " ") }.split(separator: UInt8(ascii: "-"))
            guard range.count == 2, let start = UInt(String(decoding: range[0], as: UTF8.self), radix: 16),
                  let end = UInt(String(decoding: range[1], as: UTF8.self), radix: 16), end > start else { continue }
            return (start, Int(end - start))
        }
        return nil
    }

    /// The most of `/proc/self/maps` read to find the map: a few hundred lines of libraries
    /// and threads' stacks take a few tens of KiB.
    static let procMapsBytesMax = 4 << 20
}

/// A file of `/proc` read whole (its size is not known before it is read), at most `bytesMax`.
enum BoundedProcFile {
    struct Unreadable: Error {}

    static func read(_ path: String, bytesMax: Int) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Unreadable() }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < bytesMax {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, min($0.count, bytesMax - bytes.count)) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw Unreadable() }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
        throw Unreadable()
    }
}
