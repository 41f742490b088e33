import SettledCore
import SettledStore

/// One run of a scheduled job for one business date (`jobs`, Store.swift): written `running`
/// before the job and `done` or `failed` after it.
public struct JobRow: Sendable, Equatable {
    /// Stored as explicit u8 codes (Encoding.swift): running 1, done 2, failed 3.
    public enum Status: UInt8, Sendable, Equatable {
        case running = 1
        case done = 2
        case failed = 3

        public var name: String {
            switch self {
            case .running: "running"
            case .done: "done"
            case .failed: "failed"
            }
        }
    }

    public var job: JobKind
    public var date: BusinessDate
    public var status: Status
    public var startedUnixMillis: Int64
    /// Nil while running.
    public var finishedUnixMillis: Int64?
    /// Runs begun, this one included.
    public var attempts: Int
    public var outcome: String

    public init(job: JobKind, date: BusinessDate, status: Status, startedUnixMillis: Int64, finishedUnixMillis: Int64?,
                attempts: Int, outcome: String) {
        self.job = job
        self.date = date
        self.status = status
        self.startedUnixMillis = startedUnixMillis
        self.finishedUnixMillis = finishedUnixMillis
        self.attempts = attempts
        self.outcome = outcome
    }

    /// What the schedule needs of it.
    public var progress: JobProgress {
        switch status {
        case .running: .running
        case .done: .done
        case .failed: .failed(attempts: attempts, finishedUnixMillis: finishedUnixMillis ?? startedUnixMillis)
        }
    }
}

/// The first date and instant the schedule covers (meta `jobs_schedule`).
public struct JobScheduleStart: Sendable, Equatable {
    public var firstDate: BusinessDate
    public var startUnixMillis: Int64

    public init(firstDate: BusinessDate, startUnixMillis: Int64) {
        self.firstDate = firstDate
        self.startUnixMillis = startUnixMillis
    }
}

/// The layout of the `jobs` table: business date u32 (sign bit flipped) ++ job u8, so that the
/// rows of a date are together and a backward scan lists the newest dates first.
public enum JobTable {
    public static let formatVersion: UInt8 = 1
    /// The longest outcome kept: a longer one is cut (at a character boundary).
    public static let outcomeBytesMax = 2048
    static let keyBytes = 5
    static let scheduleKey = Key.string("jobs_schedule")

    static func key(_ job: JobKind, _ date: BusinessDate) -> [UInt8] {
        CaptureIndex.dateBytes(date) + [job.code]
    }

    static func encode(_ row: JobRow) -> [UInt8] {
        var writer = ByteWriter(capacity: 32 + row.outcome.utf8.count)
        writer.u8(formatVersion)
        writer.u8(row.status.rawValue)
        writer.i64(row.startedUnixMillis)
        writer.i64(row.finishedUnixMillis ?? -1)
        writer.u32(UInt32(clamping: row.attempts))
        writer.string(cut(row.outcome))
        return writer.bytes
    }

    static func cut(_ text: String) -> String {
        guard text.utf8.count > outcomeBytesMax else { return text }
        var result = ""
        var bytes = 0
        for character in text {
            let count = String(character).utf8.count
            if bytes + count > outcomeBytesMax { break }
            result.append(character)
            bytes += count
        }
        return result
    }

    static func decode(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws -> JobRow {
        guard key.count == keyBytes, let job = JobKind(code: key[4]) else { throw DecodingError(what: "job row key") }
        let flipped = UInt32(key[0]) << 24 | UInt32(key[1]) << 16 | UInt32(key[2]) << 8 | UInt32(key[3])
        guard let date = BusinessDate(checkedDaysSinceEpoch: Int32(bitPattern: flipped ^ 0x8000_0000)) else {
            throw DecodingError(what: "job row date")
        }
        var reader = ByteReader(value)
        _ = try reader.version(current: formatVersion, record: "job row")
        guard let status = JobRow.Status(rawValue: try reader.u8()) else { throw DecodingError(what: "job row status") }
        let started = try reader.i64()
        let finished = try reader.i64()
        let attempts = Int(try reader.u32())
        let outcome = try reader.string()
        return JobRow(job: job, date: date, status: status, startedUnixMillis: started,
                      finishedUnixMillis: finished < 0 ? nil : finished, attempts: attempts, outcome: outcome)
    }

    public static func row(_ job: JobKind, _ date: BusinessDate, tables: Tables, in transaction: Transaction) throws -> JobRow? {
        let key = key(job, date)
        return try key.withUnsafeBytes { keyBytes in
            try transaction.withValue(tables.jobs, key: keyBytes) { value in try decode(key: keyBytes, value: value) }
        }
    }

    public static func put(_ row: JobRow, tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.jobs, key: key(row.job, row.date), value: encode(row), options: .overwrite)
    }

    /// Up to `limit` rows, the newest date first (and on a date, the later job first).
    public static func newestFirst(limit: Int, tables: Tables, in transaction: Transaction) throws -> [JobRow] {
        var rows: [JobRow] = []
        guard limit > 0 else { return rows }
        try transaction.scan(tables.jobs, direction: .backward) { key, value in
            rows.append(try decode(key: key, value: value))
            return rows.count < limit
        }
        return rows
    }

    /// The latest row of each job among the newest `scanRowsMax` rows.
    public static func latestByJob(scanRowsMax: Int, tables: Tables, in transaction: Transaction) throws -> [JobKind: JobRow] {
        var latest: [JobKind: JobRow] = [:]
        var seen = 0
        try transaction.scan(tables.jobs, direction: .backward) { key, value in
            let row = try decode(key: key, value: value)
            if latest[row.job] == nil { latest[row.job] = row }
            seen += 1
            return seen < scanRowsMax && latest.count < JobKind.allCases.count
        }
        return latest
    }

    public static func scheduleStart(tables: Tables, in transaction: Transaction) throws -> JobScheduleStart? {
        guard let bytes = try transaction.get(tables.meta, key: scheduleKey) else { return nil }
        return try bytes.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            _ = try reader.version(current: formatVersion, record: "job schedule")
            let flipped = try reader.u32()
            guard let date = BusinessDate(checkedDaysSinceEpoch: Int32(bitPattern: flipped ^ 0x8000_0000)) else {
                throw DecodingError(what: "job schedule first date")
            }
            return JobScheduleStart(firstDate: date, startUnixMillis: try reader.i64())
        }
    }

    public static func setScheduleStart(_ start: JobScheduleStart, tables: Tables, in transaction: Transaction) throws {
        var writer = ByteWriter(capacity: 13)
        writer.u8(formatVersion)
        writer.u32(UInt32(bitPattern: start.firstDate.daysSinceEpoch) ^ 0x8000_0000)
        writer.i64(start.startUnixMillis)
        try transaction.put(tables.meta, key: scheduleKey, value: writer.bytes, options: .overwrite)
    }
}
