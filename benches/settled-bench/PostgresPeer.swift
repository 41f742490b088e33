import CShims
import Foundation
import Glibc

/// PostgreSQL 15 doing the `orders` bench's two transactions, the peer it is measured against in
/// the same run: a throwaway cluster in a temporary directory (fsync and synchronous commit on,
/// as PostgreSQL ships), driven by `pgbench` at the same client counts.
///
/// The two transactions are PL/pgSQL functions, one round trip each: `create_order` takes the
/// idempotency key, locks and reserves the three bills, reserves the red packet, deducts the
/// points, and writes the order and its items; `capture` records the notification (a duplicate
/// changes nothing), marks the order paid with its business date, writes the journal transaction
/// and its entries, adds them to the balances (channel receivable, the two marketing accounts,
/// three biller payables: rows every capture updates) and queues the write-offs.
///
/// Each balance is kept in `balanceRows` rows (the balance is their sum; a capture adds to the
/// row its order number picks): with one row, every capture waits for the row locks of the one
/// before it until that one's commit is on disk; spread over more rows, captures wait less,
/// as a PostgreSQL design for hot balances would have them.
final class PostgresPeer {
    static let binDirectoryCandidates = ["/usr/lib/postgresql/15/bin"]
    /// Per-transaction logs of one pgbench run, and the cluster itself, live here.
    let directory: String
    private let binDirectory: String
    /// The server runs as this user when the bench runs as root (PostgreSQL refuses root).
    private let serverUser: (uid: uid_t, gid: gid_t)?
    private var started = false
    /// What the server says of its version ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)").
    private(set) var version = ""

    init() throws {
        let binDirectory = ProcessInfo.processInfo.environment["SETTLED_BENCH_PG_BINDIR"]
            ?? Self.binDirectoryCandidates.first { FileManager.default.isExecutableFile(atPath: $0 + "/postgres") }
        guard let binDirectory, FileManager.default.isExecutableFile(atPath: binDirectory + "/pgbench") else {
            throw BenchError("PostgreSQL 15, the peer of this bench, is not installed (apt-get install postgresql-15), "
                + "or give its bin directory in SETTLED_BENCH_PG_BINDIR; --peer none measures settled alone")
        }
        self.binDirectory = binDirectory
        if geteuid() == 0 {
            guard let entry = getpwnam("postgres") else {
                throw BenchError("running as root, the PostgreSQL peer needs the user 'postgres' to run its server")
            }
            serverUser = (entry.pointee.pw_uid, entry.pointee.pw_gid)
        } else {
            serverUser = nil
        }
        directory = try makeTemporaryDirectory(named: "settled-bench-pg")
        // A cluster that fails half-way is stopped; its directory and log are kept to be read.
        do {
            if let serverUser, chown(directory, serverUser.uid, serverUser.gid) != 0 {
                throw BenchError("cannot give \(directory) to the user postgres: \(String(cString: strerror(errno)))")
            }
            version = try runCapturing(binDirectory + "/postgres", ["--version"]).trimmingCharacters(in: .whitespacesAndNewlines)
            try runAsServer("initdb", ["-D", directory + "/data", "-U", "bench", "--auth=trust", "-E", "UTF8", "--locale=C"])
            // PostgreSQL's shipped durability (fsync, synchronous_commit, full_page_writes all on);
            // memory and checkpoints set as for a dedicated server, so that neither limits the run.
            let settings = [
                "listen_addresses=''", "unix_socket_directories='\(directory)'", "max_connections=600",
                "shared_buffers=2GB", "wal_buffers=64MB", "max_wal_size=16GB", "checkpoint_timeout=30min",
                "fsync=on", "synchronous_commit=on", "full_page_writes=on", "timezone='Asia/Shanghai'",
            ].map { "-c " + $0 }.joined(separator: " ")
            try runAsServer("pg_ctl", ["-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60", "-o", settings, "start"])
            started = true
            try psql("CREATE DATABASE bench")
            try Self.pgbenchScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        } catch {
            stopServer()
            throw BenchError("\(error)\n(the cluster's directory and server log are kept at \(directory))")
        }
    }

    /// The pgbench script of one paid order (`pgbenchScript`).
    private var scriptPath: String { directory + "/paid-order.sql" }

    /// The cluster stopped and its directory removed.
    func stop() {
        stopServer()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func stopServer() {
        guard started else { return }
        try? runAsServer("pg_ctl", ["-D", directory + "/data", "-m", "fast", "-w", "stop"])
        started = false
    }

    /// A fresh schema with the same billers, bills, customers, points and red packets as
    /// `PaidOrdersBench.prepare` gives the daemon: `customers` customers, `ordersPerCustomer`
    /// orders' worth of each.
    func prepare(customers: Int, ordersPerCustomer: Int, balanceRows: Int) throws {
        precondition(balanceRows >= 1)
        try psql(Self.schema(balanceRows: balanceRows), database: "bench")
        try psql("""
            INSERT INTO bills SELECT 'b-' || c || '-' || i || '-' || k, (ARRAY['sgcc-js','water-sh','gas-bj'])[k + 1], 'a' || c,
                '2026-10', 5000 + k * 100, 'open', NULL
              FROM generate_series(0, \(customers - 1)) c, generate_series(0, \(ordersPerCustomer - 1)) i, generate_series(0, 2) k;
            INSERT INTO customers SELECT 'c' || c, \(100 * ordersPerCustomer) FROM generate_series(0, \(customers - 1)) c;
            INSERT INTO red_packets SELECT 'rp-' || c || '-' || i, 'c' || c, 300, 1000, '2099-01-01T00:00:00Z', 'issued', NULL
              FROM generate_series(0, \(customers - 1)) c, generate_series(0, \(ordersPerCustomer - 1)) i;
            -- Statistics for the tables loaded; the tables still empty are left unanalysed:
            -- analysed empty, the planner would scan them whole once they have grown.
            VACUUM ANALYZE billers, accounts, bills, customers, red_packets;
            CHECKPOINT;
            """, database: "bench")
    }

    /// `clients` pgbench clients (two pgbench threads, as the machine has cores), each paying
    /// `ordersPerClient` orders; fails unless every order was created and captured and the
    /// balances sum to zero.
    func run(clients: Int, ordersPerClient: Int) throws -> ClientRunResult {
        let logPrefix = directory + "/latency-\(clients)"
        let output = try runCapturing(binDirectory + "/pgbench", [
            "-h", directory, "-U", "bench", "-n", "-M", "prepared", "-c", String(clients), "-j", String(min(clients, 2)),
            "-t", String(ordersPerClient), "-D", "i=-1", "-f", scriptPath, "-l", "--log-prefix=" + logPrefix, "bench",
        ])
        let total = clients * ordersPerClient
        guard output.contains("number of transactions actually processed: \(total)/\(total)") else {
            throw BenchError("pgbench did not pay every order:\n\(output)")
        }
        var latencies: [Double] = []
        latencies.reserveCapacity(total)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where (directory + "/" + name).hasPrefix(logPrefix + ".") {
            let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            for line in text.split(separator: "\n") {
                // client_id transaction_no latency_us script_no epoch_s epoch_us
                let fields = line.split(separator: " ")
                guard fields.count >= 3, let microseconds = Double(fields[2]) else { throw BenchError("pgbench log line '\(line)'") }
                latencies.append(microseconds / 1e6)
            }
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        guard latencies.count == total else { throw BenchError("pgbench logged \(latencies.count) of \(total) orders") }
        let check = try psql("SELECT (SELECT count(*) FROM orders WHERE status = 'paid') || ' ' || (SELECT sum(balance_fen) FROM accounts)",
                             database: "bench", quiet: true)
        guard check == "\(total) 0" else { throw BenchError("after pgbench, paid orders and trial balance: '\(check)', not '\(total) 0'") }
        guard let ordersPerSecond = Self.number(after: "tps = ", in: output) else {
            throw BenchError("no tps in pgbench's output:\n\(output)")
        }
        return ClientRunResult(operations: total, seconds: Double(total) / ordersPerSecond, latenciesSeconds: latencies, failures: 0)
    }

    private static func number(after label: String, in text: String) -> Double? {
        guard let range = text.range(of: label) else { return nil }
        return Double(text[range.upperBound...].prefix { $0.isNumber || $0 == "." })
    }

    @discardableResult
    private func psql(_ sql: String, database: String = "postgres", quiet: Bool = false) throws -> String {
        let file = directory + "/statement.sql"
        try sql.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let output = try runCapturing(binDirectory + "/psql", ["-h", directory, "-U", "bench", "-d", database, "-v", "ON_ERROR_STOP=1",
                                                               "-X", "-q", "-A", "-t", "-f", file])
        return quiet ? output.trimmingCharacters(in: .whitespacesAndNewlines) : output
    }

    /// A server program run as the server's user; fails with its output unless it exits 0.
    private func runAsServer(_ program: String, _ arguments: [String]) throws {
        if let serverUser {
            try runCapturing("/usr/bin/setpriv", ["--reuid=\(serverUser.uid)", "--regid=\(serverUser.gid)", "--clear-groups", "--",
                                                  binDirectory + "/" + program] + arguments)
        } else {
            try runCapturing(binDirectory + "/" + program, arguments)
        }
    }

    /// Runs `executable` and waits for it; its output and errors, read from a file, are the
    /// result, or the error's text unless it exits 0. Spawned directly with every other
    /// descriptor closed: pg_ctl leaves a server running, and a server that inherited a pipe
    /// of this process (Foundation's `Process` watches one to learn of an exit) would keep
    /// the wait from ever ending.
    @discardableResult
    private func runCapturing(_ executable: String, _ arguments: [String]) throws -> String {
        let outputPath = directory + "/command.out"
        defer { unlink(outputPath) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: Int32 = 0
        let spawned = settled_spawn(executable, argv, directory, outputPath, &pid)
        guard spawned == 0 else { throw BenchError("cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw BenchError("waitpid: \(String(cString: strerror(errno)))") }
        }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED and WEXITSTATUS, which do not reach Swift.
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            throw BenchError("\(executable) \(arguments.joined(separator: " ")) failed (wait status \(status)):\n\(output)")
        }
        return output
    }

    /// One pgbench transaction is one paid order: `i` counts each client's orders from 0, as
    /// the daemon's clients do.
    static let pgbenchScript = """
        \\set i :i + 1
        SELECT order_id, channel_fen FROM create_order('k-' || :client_id || '-' || :i, 'c' || :client_id, ARRAY['b-' || :client_id || '-' || :i || '-0', 'b-' || :client_id || '-' || :i || '-1', 'b-' || :client_id || '-' || :i || '-2'], 'rp-' || :client_id || '-' || :i, 100, 'alipay') \\gset
        SELECT capture('alipay', 't-' || :client_id || '-' || :i, :order_id, :channel_fen, '2026-11-24T10:00:00+08:00');

        """

    static func schema(balanceRows: Int) -> String { """
        DROP SCHEMA IF EXISTS public CASCADE;
        CREATE SCHEMA public;
        CREATE TABLE billers (id text PRIMARY KEY, utility text NOT NULL);
        INSERT INTO billers VALUES ('sgcc-js', 'electricity'), ('water-sh', 'water'), ('gas-bj', 'gas');
        CREATE TABLE accounts (name text NOT NULL, part int NOT NULL, balance_fen bigint NOT NULL, PRIMARY KEY (name, part));
        INSERT INTO accounts SELECT name, part, 0
          FROM unnest(ARRAY['channel_receivable:alipay', 'marketing:redpacket', 'marketing:points',
                            'biller_payable:sgcc-js', 'biller_payable:water-sh', 'biller_payable:gas-bj']) name,
               generate_series(0, \(balanceRows - 1)) part;
        CREATE TABLE bills (bill_id text PRIMARY KEY, biller_id text NOT NULL REFERENCES billers, account_no text NOT NULL,
            period text NOT NULL, amount_fen bigint NOT NULL CHECK (amount_fen > 0), status text NOT NULL, order_id bigint);
        CREATE INDEX bills_by_account ON bills (biller_id, account_no);
        CREATE TABLE customers (id text PRIMARY KEY, points bigint NOT NULL CHECK (points >= 0));
        CREATE TABLE red_packets (id text PRIMARY KEY, customer_id text NOT NULL, value_fen bigint NOT NULL,
            min_order_fen bigint NOT NULL, expires_at timestamptz NOT NULL, status text NOT NULL, order_id bigint);
        CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id text NOT NULL, status text NOT NULL, total_fen bigint NOT NULL,
            red_packet_fen bigint NOT NULL, points_fen bigint NOT NULL, channel text NOT NULL, channel_fen bigint NOT NULL,
            created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, paid_at timestamptz, channel_txn_id text, business_date date);
        CREATE INDEX orders_pending_by_expiry ON orders (expires_at) WHERE status = 'pending';
        CREATE TABLE order_items (order_id bigint NOT NULL, item_no int NOT NULL, bill_id text NOT NULL, biller_id text NOT NULL,
            amount_fen bigint NOT NULL, PRIMARY KEY (order_id, item_no));
        CREATE TABLE idempotency_keys (key text PRIMARY KEY, fingerprint text NOT NULL, order_id bigint NOT NULL, created_at timestamptz NOT NULL);
        CREATE TABLE notifications (channel text NOT NULL, channel_txn_id text NOT NULL, order_id bigint NOT NULL,
            amount_fen bigint NOT NULL, outcome text NOT NULL, PRIMARY KEY (channel, channel_txn_id));
        CREATE TABLE journal (id bigserial PRIMARY KEY, kind text NOT NULL, reference text NOT NULL, business_date date NOT NULL,
            created_at timestamptz NOT NULL);
        CREATE TABLE entries (journal_id bigint NOT NULL, line int NOT NULL, account text NOT NULL, amount_fen bigint NOT NULL,
            PRIMARY KEY (journal_id, line));
        CREATE INDEX entries_by_account ON entries (account, journal_id);
        CREATE TABLE writeoffs_pending (biller_id text NOT NULL, bill_id text NOT NULL, order_id bigint NOT NULL,
            amount_fen bigint NOT NULL, PRIMARY KEY (biller_id, bill_id));

        CREATE FUNCTION create_order(p_key text, p_customer text, p_bills text[], p_red_packet text, p_points bigint, p_channel text,
                                     OUT order_id bigint, OUT channel_fen bigint) AS $$
        DECLARE
            v_count int;
            v_total bigint;
            v_red_packet bigint;
        BEGIN
            SELECT o.id, o.channel_fen INTO order_id, channel_fen
              FROM idempotency_keys k JOIN orders o ON o.id = k.order_id WHERE k.key = p_key;
            IF FOUND THEN RETURN; END IF;
            SELECT count(*), sum(b.amount_fen) INTO v_count, v_total
              FROM (SELECT amount_fen FROM bills WHERE bill_id = ANY (p_bills) AND status = 'open' ORDER BY bill_id FOR UPDATE) b;
            IF v_count <> cardinality(p_bills) THEN RAISE EXCEPTION 'bill_reserved'; END IF;
            SELECT value_fen INTO v_red_packet FROM red_packets
             WHERE id = p_red_packet AND customer_id = p_customer AND status = 'issued' AND expires_at > now() AND min_order_fen <= v_total
               FOR UPDATE;
            IF NOT FOUND THEN RAISE EXCEPTION 'red_packet_unusable'; END IF;
            UPDATE customers SET points = points - p_points WHERE id = p_customer AND points >= p_points;
            IF NOT FOUND THEN RAISE EXCEPTION 'insufficient_points'; END IF;
            channel_fen := v_total - v_red_packet - p_points;
            INSERT INTO orders (customer_id, status, total_fen, red_packet_fen, points_fen, channel, channel_fen, created_at, expires_at)
                 VALUES (p_customer, 'pending', v_total, v_red_packet, p_points, p_channel, channel_fen, now(), now() + interval '15 minutes')
              RETURNING id INTO order_id;
            UPDATE bills SET status = 'reserved', order_id = create_order.order_id WHERE bill_id = ANY (p_bills);
            UPDATE red_packets SET status = 'reserved', order_id = create_order.order_id WHERE id = p_red_packet;
            INSERT INTO order_items SELECT create_order.order_id, row_number() OVER (ORDER BY b.bill_id), b.bill_id, b.biller_id, b.amount_fen
              FROM bills b WHERE b.bill_id = ANY (p_bills);
            INSERT INTO idempotency_keys VALUES (p_key, md5(array_to_string(p_bills, ',') || p_red_packet || p_points), order_id, now());
        END $$ LANGUAGE plpgsql;

        CREATE FUNCTION capture(p_channel text, p_txn text, p_order bigint, p_amount bigint, p_paid_at timestamptz) RETURNS text AS $$
        DECLARE
            v_order orders%ROWTYPE;
            v_journal bigint;
            v_line record;
        BEGIN
            INSERT INTO notifications VALUES (p_channel, p_txn, p_order, p_amount, 'captured') ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN RETURN 'duplicate'; END IF;
            SELECT * INTO v_order FROM orders WHERE id = p_order FOR UPDATE;
            IF NOT FOUND THEN RAISE EXCEPTION 'not_found'; END IF;
            IF v_order.channel <> p_channel THEN RAISE EXCEPTION 'channel_mismatch'; END IF;
            IF v_order.channel_fen <> p_amount THEN RAISE EXCEPTION 'amount_mismatch'; END IF;
            IF v_order.status <> 'pending' THEN RAISE EXCEPTION 'order % is %', p_order, v_order.status; END IF;
            UPDATE orders SET status = 'paid', paid_at = p_paid_at, channel_txn_id = p_txn,
                   business_date = (p_paid_at AT TIME ZONE 'Asia/Shanghai')::date WHERE id = p_order;
            INSERT INTO journal (kind, reference, business_date, created_at)
                 VALUES ('capture', p_order::text, (p_paid_at AT TIME ZONE 'Asia/Shanghai')::date, now()) RETURNING id INTO v_journal;
            INSERT INTO entries
                 SELECT v_journal, 1, 'channel_receivable:' || p_channel, v_order.channel_fen
                 UNION ALL SELECT v_journal, 2, 'marketing:redpacket', v_order.red_packet_fen
                 UNION ALL SELECT v_journal, 3, 'marketing:points', v_order.points_fen
                 UNION ALL SELECT v_journal, 3 + item_no, 'biller_payable:' || biller_id, -amount_fen FROM order_items WHERE order_id = p_order;
            IF (SELECT sum(amount_fen) FROM entries WHERE journal_id = v_journal) <> 0 THEN RAISE EXCEPTION 'unbalanced journal'; END IF;
            INSERT INTO writeoffs_pending SELECT biller_id, bill_id, p_order, amount_fen FROM order_items WHERE order_id = p_order;
            -- The balances last, so that their row locks are held as briefly as the commit
            -- allows, and in the order of their names, so that two captures never deadlock.
            FOR v_line IN SELECT account, sum(amount_fen) AS amount_fen FROM entries WHERE journal_id = v_journal GROUP BY account ORDER BY account LOOP
                UPDATE accounts SET balance_fen = balance_fen + v_line.amount_fen
                 WHERE name = v_line.account AND part = p_order % \(balanceRows);
                IF NOT FOUND THEN RAISE EXCEPTION 'no account %', v_line.account; END IF;
            END LOOP;
            RETURN 'captured';
        END $$ LANGUAGE plpgsql;
        """
    }
}
