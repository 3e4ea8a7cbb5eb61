//! `hqx sql`: output formats, parameters, the read-only fences (the journal
//! file is hashed before and after every refusal), the example queries on a
//! journal written by a real `hqx run`, and the decimal functions against
//! the sqlite3 shell's decimal extension.

use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use sha2::Digest;

use crate::util::{Env, QUICK};

/// An environment whose journal holds one real run of `QUICK`.
fn quick() -> Env {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    env
}

fn sql(env: &Env) -> Command {
    let mut c = env.hqx();
    c.arg("sql");
    c
}

fn stdout_of(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "hqx sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `hqx sql --format json QUERY`, parsed.
fn json_rows(env: &Env, query: &str, params: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let mut c = sql(env);
    c.args(["--format", "json", query]);
    for (k, v) in params {
        c.args(["-p", k, v]);
    }
    serde_json::from_str(&stdout_of(&mut c)).unwrap()
}

fn sha256(p: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

const ORDERS: &str = "SELECT order_id, quantity, price, attempts FROM orders ORDER BY seq";

#[test]
fn each_format_prints_exactly_what_it_says() {
    let env = quick();
    let out = |format: &str| stdout_of(sql(&env).args(["--format", format, ORDERS]));
    assert_eq!(
        out("table"),
        "order_id  quantity  price     attempts\n\
         --------  --------  --------  --------\n\
         buy-1     2         24321.00         1\n\
         rest-1    0.5       20000.10         1\n\
         sell-eth  1.5                        1\n"
    );
    assert_eq!(
        stdout_of(sql(&env).arg(ORDERS)),
        out("table"),
        "table is the default"
    );
    assert_eq!(
        out("csv"),
        "order_id,quantity,price,attempts\r\n\
         buy-1,2,24321.00,1\r\n\
         rest-1,0.5,20000.10,1\r\n\
         sell-eth,1.5,,1\r\n"
    );
    assert_eq!(
        out("json"),
        "[{\"order_id\":\"buy-1\",\"quantity\":\"2\",\"price\":\"24321.00\",\"attempts\":1},\n \
         {\"order_id\":\"rest-1\",\"quantity\":\"0.5\",\"price\":\"20000.10\",\"attempts\":1},\n \
         {\"order_id\":\"sell-eth\",\"quantity\":\"1.5\",\"price\":null,\"attempts\":1}]\n"
    );
    assert_eq!(
        out("jsonl"),
        "{\"order_id\":\"buy-1\",\"quantity\":\"2\",\"price\":\"24321.00\",\"attempts\":1}\n\
         {\"order_id\":\"rest-1\",\"quantity\":\"0.5\",\"price\":\"20000.10\",\"attempts\":1}\n\
         {\"order_id\":\"sell-eth\",\"quantity\":\"1.5\",\"price\":null,\"attempts\":1}\n"
    );
    assert_eq!(
        out("markdown"),
        "| order_id | quantity | price    | attempts |\n\
         | -------- | -------- | -------- | -------- |\n\
         | buy-1    | 2        | 24321.00 | 1        |\n\
         | rest-1   | 0.5      | 20000.10 | 1        |\n\
         | sell-eth | 1.5      |          | 1        |\n"
    );
}

#[test]
fn awkward_values_survive_every_format() {
    let env = quick();
    let q =
        "SELECT 'a,b \"c\"' AS t, 'two\nlines|x' AS u, 2.5 AS r, NULL AS n, x'00ff' AS b, 7 AS t";
    let out = |format: &str| stdout_of(sql(&env).args(["--format", format, q]));
    assert_eq!(
        out("csv"),
        "t,u,r,n,b,t\r\n\"a,b \"\"c\"\"\",\"two\nlines|x\",2.5,,00ff,7\r\n"
    );
    assert_eq!(
        out("json"),
        "[{\"t\":\"a,b \\\"c\\\"\",\"u\":\"two\\nlines|x\",\"r\":2.5,\"n\":null,\"b\":\"00ff\",\"t_2\":7}]\n"
    );
    assert_eq!(
        out("markdown"),
        "| t       | u             | r   | n   | b    | t   |\n\
         | ------- | ------------- | --- | --- | ---- | --- |\n\
         | a,b \"c\" | two\\nlines\\|x | 2.5 |     | 00ff | 7   |\n"
    );
    assert_eq!(
        out("table"),
        "t        u             r    n  b     t\n\
         -------  ------------  ---  -  ----  -\n\
         a,b \"c\"  two\\nlines|x  2.5     00ff  7\n"
    );
    // No rows: the header alone, or an empty array.
    let none = "SELECT order_id FROM orders WHERE 0";
    assert_eq!(
        stdout_of(sql(&env).args(["--format", "json", none])),
        "[]\n"
    );
    assert_eq!(stdout_of(sql(&env).args(["--format", "jsonl", none])), "");
    assert_eq!(
        stdout_of(sql(&env).args(["--format", "csv", none])),
        "order_id\r\n"
    );
}

#[test]
fn named_parameters_bind_as_text() {
    let env = quick();
    let rows = json_rows(
        &env,
        "SELECT order_id, state, typeof(:batch) AS kind FROM orders WHERE batch_id = :batch AND order_id = @order AND $x = '1'",
        &[("batch", "quick-1"), ("order", "rest-1"), ("x", "1")],
    );
    assert_eq!(
        rows,
        vec![serde_json::json!({"order_id": "rest-1", "state": "open", "kind": "text"})]
    );
    // A name may be given with its sigil.
    let rows = json_rows(&env, "SELECT :v AS v", &[(":v", "0.10")]);
    assert_eq!(rows, vec![serde_json::json!({"v": "0.10"})]);
    // Values may start with a hyphen.
    let rows = json_rows(&env, "SELECT decimal_add(:q, '2') AS v", &[("q", "-1.5")]);
    assert_eq!(rows, vec![serde_json::json!({"v": "0.5"})]);

    sql(&env)
        .args(["SELECT :batch, :order", "-p", "batch", "quick-1"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "the query uses :order but no value was given: add -p order VALUE",
        ));
    sql(&env)
        .args(["SELECT :batch", "-p", "batch", "quick-1", "-p", "ordr", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "-p ordr: the query has no parameter",
        ));
    sql(&env)
        .args(["SELECT ?"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("positional parameter"));
}

#[test]
fn the_query_comes_from_a_file_or_standard_input() {
    let env = quick();
    let f = env.write(
        "q.sql",
        "-- count them\nSELECT count(*) AS n\nFROM orders;\n",
    );
    assert_eq!(
        stdout_of(sql(&env).args(["--format", "csv", "--file"]).arg(&f)),
        "n\r\n3\r\n"
    );
    assert_eq!(
        stdout_of(
            sql(&env)
                .args(["--format", "csv", "-f", "-"])
                .write_stdin("SELECT count(*) AS n FROM trades")
        ),
        "n\r\n2\r\n"
    );
    // Exactly one of the two.
    sql(&env)
        .args(["SELECT 1", "--file"])
        .arg(&f)
        .assert()
        .code(2);
    sql(&env).assert().code(2);
    sql(&env)
        .args(["--file", "no-such.sql"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the query from no-such.sql",
        ));
}

#[test]
fn writes_are_refused_and_the_journal_is_left_byte_for_byte() {
    let env = quick();
    let journal = env.journal_path();
    let before = sha256(&journal);
    let wal = env.path("hqx.db-wal");
    for (query, names) in [
        (
            "INSERT INTO runs (batch_id, command, started_ms) VALUES ('quick-1', 'x', 1)",
            "INSERT into runs",
        ),
        ("UPDATE orders SET state = 'open'", "UPDATE of orders.state"),
        ("DELETE FROM orders", "DELETE from orders"),
        ("DROP TABLE orders", "`DROP TABLE orders`"),
        ("CREATE TABLE t (x)", "`CREATE TABLE t (x)`"),
        ("CREATE TEMP TABLE t (x)", "`CREATE TEMP TABLE t"),
        ("ATTACH 'other.db' AS other", "ATTACH of 'other.db'"),
        ("DETACH main", "DETACH of main"),
        ("PRAGMA journal_mode=delete", "PRAGMA journal_mode = delete"),
        ("PRAGMA user_version=5", "PRAGMA user_version = 5"),
        ("PRAGMA query_only=0", "PRAGMA query_only = 0"),
        ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint"),
        ("VACUUM", "`VACUUM` (SQLite says it writes)"),
        ("VACUUM INTO 'copy.db'", "`VACUUM INTO 'copy.db'`"),
        ("BEGIN IMMEDIATE", "transaction control"),
        (
            "-- sneaky\nSELECT 1; DELETE FROM orders",
            "more than one statement",
        ),
    ] {
        sql(&env)
            .arg(query)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(names))
            .stderr(
                predicate::str::contains("read-only")
                    .or(predicate::str::contains("runs exactly one")),
            );
        assert_eq!(sha256(&journal), before, "{query} changed the journal");
        if wal.exists() {
            assert_eq!(
                std::fs::metadata(&wal).unwrap().len(),
                0,
                "{query} wrote to the WAL"
            );
        }
    }
    assert!(!env.path("other.db").exists());
    assert!(!env.path("copy.db").exists());
    // Reading still works, and sees everything.
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders"),
        3,
        "the orders are all there"
    );
    assert_eq!(
        env.one::<i64>("PRAGMA user_version"),
        hqx::journal::Journal::schema_version()
    );
    // Reads of the schema are not writes.
    let rows = json_rows(
        &env,
        "SELECT name FROM pragma_table_info('trades') WHERE pk > 0 ORDER BY pk",
        &[],
    );
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"name": "account_id"}),
            serde_json::json!({"name": "trade_id"})
        ]
    );
    assert_eq!(
        stdout_of(sql(&env).args(["--format", "csv", "PRAGMA user_version"])),
        format!(
            "user_version\r\n{}\r\n",
            hqx::journal::Journal::schema_version()
        )
    );
}

#[test]
fn a_reader_sees_what_other_writers_committed_and_does_not_wait_for_them() {
    let env = quick();
    let count =
        || stdout_of(sql(&env).args(["--format", "csv", "SELECT count(*) AS n FROM batches"]));
    let insert = |id: &str| {
        format!("INSERT INTO batches (id, file_path, file_sha256, base_url, api_key, created_ms) VALUES ('{id}', 'f', 'h', 'u', 'k', 1)")
    };
    // Another writer (as another hqx run would be) commits; while its
    // connection is open the commit lives in the WAL, which a reader opened
    // `immutable` would not see.
    let writer = env.db();
    writer.execute_batch(&insert("other")).unwrap();
    assert!(std::fs::metadata(env.path("hqx.db-wal")).unwrap().len() > 0);
    assert_eq!(count(), "n\r\n2\r\n");
    // A write transaction still open is neither seen nor waited for.
    writer
        .execute_batch(&format!("BEGIN IMMEDIATE; {};", insert("third")))
        .unwrap();
    assert_eq!(count(), "n\r\n2\r\n");
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(count(), "n\r\n3\r\n");
}

#[test]
fn two_read_statements_are_refused_too_but_a_trailing_semicolon_is_fine() {
    let env = quick();
    sql(&env)
        .arg("SELECT 1; SELECT 2")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "the query holds more than one statement; hqx sql runs exactly one",
        ));
    assert_eq!(
        stdout_of(sql(&env).args(["--format", "csv", "SELECT 1 AS one;  -- done\n"])),
        "one\r\n1\r\n"
    );
}

#[test]
fn a_bad_query_says_what_sqlite_says_and_where() {
    let env = quick();
    sql(&env)
        .arg("SELECT order_id,\n       nope\nFROM orders")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "no such column: nope (line 2, column 8)\n         nope\n         ^",
        ));
    sql(&env)
        .arg("SELEC 1")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("near \"SELEC\": syntax error"));
    // An error while running (here, a decimal function refusing a value)
    // prints no partial output.
    sql(&env)
        .args([
            "--format",
            "jsonl",
            "SELECT decimal(x) FROM (SELECT '1' x UNION ALL SELECT 'abc')",
        ])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "decimal(): argument 1: 'abc' is not a decimal number",
        ));
}

#[test]
fn a_missing_journal_is_not_created() {
    let env = Env::new();
    let journal = env.journal_path();
    sql(&env)
        .arg("SELECT 1")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no journal at"))
        .stderr(predicate::str::contains("hqx run"));
    assert!(!journal.exists());
    assert!(!env.path("hqx.db-wal").exists());
    // Nor is a `file:` URI taken as one: it is a file name.
    sql(&env)
        .args(["--journal", "file:hqx.db?mode=rwc", "SELECT 1"])
        .assert()
        .code(2);
    assert!(!journal.exists());
    // A file that is not a journal is named as such.
    let text = env.write(
        "notes.txt",
        "not a database, but long enough to have a header...\n",
    );
    sql(&env)
        .arg("--journal")
        .arg(&text)
        .arg("SELECT * FROM orders")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a SQLite journal"));
    // Even when the query reads no table; and an empty file (a database
    // with no schema) is named as no journal when a table is missing.
    sql(&env)
        .arg("--journal")
        .arg(&text)
        .arg("SELECT 1")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("is not a SQLite journal"));
    let empty = env.write("empty.db", "");
    sql(&env)
        .arg("--journal")
        .arg(&empty)
        .arg("SELECT * FROM orders")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("is not an hqx journal"));
}

/// The rows of `--format json` for a query file, each with `params`.
fn example(env: &Env, file: &Path, params: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let mut c = sql(env);
    c.args(["--format", "json", "--file"]).arg(file);
    for (k, v) in params {
        c.args(["-p", k, v]);
    }
    serde_json::from_str(&stdout_of(&mut c)).unwrap()
}

#[test]
fn every_example_query_answers_on_a_real_journal() {
    let env = quick();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let http_total = env.one::<i64>("SELECT count(*) FROM http_log");
    for f in &files {
        let name = f.file_stem().unwrap().to_str().unwrap();
        match name {
            "fees_per_batch" => {
                let rows = example(&env, f, &[]);
                assert_eq!(
                    rows,
                    vec![
                        serde_json::json!({"batch_id": "quick-1", "fee_currency": "USDC", "fills": 2, "orders": 2, "fees": "50.4228"})
                    ]
                );
            }
            "fills_per_order" => {
                let rows = example(&env, f, &[]);
                let got: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        (
                            r["order_id"].as_str().unwrap(),
                            r["fills"].as_i64().unwrap(),
                            r["filled"].as_str().unwrap(),
                            r["traded_value"].as_str().unwrap(),
                        )
                    })
                    .collect();
                // The sandbox fills at its quote: BTC 24000 × 1.0005, ETH 1600 × 0.9995.
                assert_eq!(
                    got,
                    vec![
                        ("buy-1", 1, "2", "48024"),
                        ("rest-1", 0, "0", "0"),
                        ("sell-eth", 1, "1.5", "2398.8"),
                    ]
                );
            }
            "order_history" => {
                let rows = example(&env, f, &[("batch", "quick-1"), ("order", "buy-1")]);
                let events: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        (
                            r["event"].as_str().unwrap(),
                            r["to_state"].as_str().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(
                    events,
                    vec![
                        ("journaled", "pending"),
                        ("send", "sending"),
                        ("acknowledged", "filled")
                    ]
                );
                assert!(rows[0]["at_utc"].as_str().unwrap().ends_with('Z'));
                // Without its parameters it says what is missing.
                sql(&env)
                    .arg("--file")
                    .arg(f)
                    .assert()
                    .code(2)
                    .stderr(predicate::str::contains("add -p batch VALUE"));
            }
            "requests_per_endpoint_day" => {
                let rows = example(&env, f, &[]);
                let total: i64 = rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum();
                assert_eq!(total, http_total);
                let post = rows
                    .iter()
                    .find(|r| r["method"] == "POST" && r["endpoint"] == "/trading/api/v1/order")
                    .expect("the placements");
                assert_eq!(post["requests"], 3);
                assert_eq!(post["failed"], 0);
                assert!(post["max_ms"].as_f64().unwrap() >= post["avg_ms"].as_f64().unwrap());
                assert!(rows
                    .iter()
                    .all(|r| !r["endpoint"].as_str().unwrap().contains('?')));
            }
            "positions" => {
                assert_eq!(
                    example(&env, f, &[]),
                    vec![
                        serde_json::json!({"account_id": 1, "pair": "BTC-USDC", "net_quantity": "2",
                                           "average_cost": "24012", "open_cost": "48024", "trades": 1}),
                        serde_json::json!({"account_id": 1, "pair": "ETH-USDC", "net_quantity": "-1.5",
                                           "average_cost": "1599.2", "open_cost": "2398.8", "trades": 1}),
                    ]
                );
            }
            "realized_pnl" => {
                let rows = example(&env, f, &[]);
                let got: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        (
                            r["pair"].as_str().unwrap(),
                            r["currency"].as_str().unwrap(),
                            r["realized_pnl"].as_str().unwrap(),
                            r["realized_pnl_less_fees"].as_str().unwrap(),
                        )
                    })
                    .collect();
                // Nothing closed yet: only the fees (0.1 % of each trade).
                assert_eq!(
                    got,
                    vec![
                        ("BTC-USDC", "USDC", "0", "-48.024"),
                        ("ETH-USDC", "USDC", "0", "-2.3988"),
                    ]
                );
            }
            "external_fills" => {
                // Every trade of this journal is a batch order's.
                assert_eq!(example(&env, f, &[]), Vec::<serde_json::Value>::new());
                let copy = env.path("external.db");
                std::fs::copy(env.journal_path(), &copy).unwrap();
                let db = rusqlite::Connection::open(&copy).unwrap();
                db.execute_batch(
                    "UPDATE trades SET exchange_order_id = 'O-elsewhere' WHERE side = 'sell'",
                )
                .unwrap();
                drop(db);
                let mut c = sql(&env);
                c.arg("--journal")
                    .arg(&copy)
                    .args(["--format", "json", "--file"])
                    .arg(f);
                let rows: Vec<serde_json::Value> =
                    serde_json::from_str(&stdout_of(&mut c)).unwrap();
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0]["exchange_order_id"], "O-elsewhere");
                assert!(rows[0]["traded_at"].as_str().unwrap().ends_with('Z'));
            }
            "latency_on_day" => {
                let today: String = env.one("SELECT date('now')");
                let rows = example(&env, f, &[("day", &today)]);
                let total: i64 = rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum();
                assert_eq!(total, http_total);
                for r in &rows {
                    assert!(r["p50_ms"].as_f64() <= r["p99_ms"].as_f64(), "{r}");
                    assert!(r["p99_ms"].as_f64() <= r["max_ms"].as_f64(), "{r}");
                }
                assert!(example(&env, f, &[("day", "2001-01-01")]).is_empty());
            }
            other => {
                panic!("examples/queries/{other}.sql has no test: add its expected answer here")
            }
        }
    }

    // Fees add up exactly, as decimals: give the two trades fees that
    // floats cannot add (0.1 + 0.2), in a copy of the journal.
    let copy = env.path("copy.db");
    std::fs::copy(env.journal_path(), &copy).unwrap();
    let db = rusqlite::Connection::open(&copy).unwrap();
    db.execute_batch("UPDATE trades SET fee = CASE side WHEN 'buy' THEN '0.1' ELSE '0.20' END")
        .unwrap();
    drop(db);
    let mut c = sql(&env);
    c.arg("--journal")
        .arg(&copy)
        .args(["--format", "json", "--file"]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&stdout_of(c.arg(dir.join("fees_per_batch.sql")))).unwrap();
    assert_eq!(rows[0]["fees"], "0.30");
    let mut c = sql(&env);
    c.arg("--journal").arg(&copy).args(["--format", "csv"]);
    assert_eq!(
        stdout_of(c.arg("SELECT sum(fee) AS float_sum, decimal_sum(fee) AS exact FROM trades")),
        "float_sum,exact\r\n0.30000000000000004,0.30\r\n"
    );
}

/// Decimal expressions whose results hqx and the sqlite3 shell agree on.
const SAME_AS_SQLITE3: &[&str] = &[
    "decimal('1.50')",
    "decimal('00012.3400')",
    "decimal('+3')",
    "decimal('.5')",
    "decimal('5.')",
    "decimal('  1.5  ')",
    "decimal('1e3')",
    "decimal('1.50e1')",
    "decimal('1.5e-2')",
    "decimal('0e-5')",
    "decimal(12)",
    "decimal(NULL)",
    "decimal_add('0.1', '0.2')",
    "decimal_add('1.50', '2')",
    "decimal_add('-1.25', '0.5')",
    "decimal_add(1, 2)",
    "decimal_add(NULL, '1')",
    "decimal_sub('2', '1.50')",
    "decimal_sub('1', '3')",
    "decimal_sub('0.000001', '1000000')",
    "decimal_mul('1.5', '2.00')",
    "decimal_mul('1.25', '2.0')",
    "decimal_mul('0.10', '0.10')",
    "decimal_mul('-0.5', '0.2')",
    "decimal_mul('24012', '0.25')",
    "decimal_mul('1599.2', '1.5')",
    "decimal_mul('12345.6789', '98765.4321')",
    "decimal_cmp('1', '2')",
    "decimal_cmp('-1', '-2')",
    "decimal_cmp('10', '9')",
    "decimal_cmp('2.5', '2.5')",
    "decimal_cmp(NULL, '1')",
    "(SELECT decimal_sum(x) FROM (SELECT '1.5' x UNION ALL SELECT '2.25'))",
    "(SELECT decimal_sum(x) FROM (SELECT '1' x WHERE 0))",
    "(SELECT decimal_sum(x) FROM (SELECT NULL x))",
    "(SELECT decimal_sum(x) FROM (SELECT '0.1' x UNION ALL SELECT NULL UNION ALL SELECT '-0.35'))",
    "(SELECT group_concat(s, ' ') FROM (SELECT decimal_sum(x) OVER (ORDER BY x ROWS 1 PRECEDING) s FROM (SELECT '1.5' x UNION ALL SELECT '2.25' UNION ALL SELECT '3')))",
];

/// The sqlite3 shell, if there is one with the decimal extension.
fn sqlite3_shell() -> Option<StdCommand> {
    let ok = StdCommand::new("sqlite3")
        .args([":memory:", "SELECT decimal_add('1', '1')"])
        .output()
        .map(|o| o.status.success() && o.stdout == b"2\n");
    match ok {
        Ok(true) => Some(StdCommand::new("sqlite3")),
        _ => {
            eprintln!("skipping the comparison with sqlite3: no sqlite3 shell with the decimal extension on PATH");
            None
        }
    }
}

/// One row of `SELECT e1 AS c0, e2 AS c1, …` as the shell's JSON.
fn shell_row(select: &str) -> Option<serde_json::Value> {
    let out = sqlite3_shell()?
        .args(["-json", ":memory:", select])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    Some(rows.into_iter().next().unwrap())
}

fn select_of(exprs: &[&str]) -> String {
    let cols: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS c{i}"))
        .collect();
    format!("SELECT {}", cols.join(", "))
}

#[test]
fn decimal_functions_answer_as_the_sqlite3_shell_does() {
    let env = Env::new();
    // An empty file is an empty SQLite database: enough to run expressions.
    let empty = env.write("empty.db", "");
    let select = select_of(SAME_AS_SQLITE3);
    let mut c = sql(&env);
    c.arg("--journal")
        .arg(&empty)
        .args(["--format", "json", &select]);
    let ours: Vec<serde_json::Value> = serde_json::from_str(&stdout_of(&mut c)).unwrap();
    // What hqx says, whether or not sqlite3 is here to compare.
    assert_eq!(ours[0]["c12"], "0.3");
    assert_eq!(ours[0]["c20"], "3.0");
    assert_eq!(ours[0]["c26"], "1219326311.12635269");
    assert_eq!(ours[0]["c33"], serde_json::Value::Null);
    assert_eq!(ours[0]["c34"], "0");
    let Some(theirs) = shell_row(&select) else {
        return;
    };
    for (i, e) in SAME_AS_SQLITE3.iter().enumerate() {
        let k = format!("c{i}");
        assert_eq!(ours[0][&k], theirs[&k], "{e}");
    }
}

#[test]
fn where_hqx_differs_from_the_shell_it_errs_on_the_side_of_refusing() {
    let env = Env::new();
    let empty = env.write("empty.db", "");
    let run = |q: &str| {
        let mut c = sql(&env);
        c.arg("--journal").arg(&empty).args(["--format", "csv", q]);
        c.assert()
    };
    // Text that is not a decimal: the shell reads '1.5x' as 1.5, 'abc' as 0.
    for bad in ["'1.5x'", "'abc'", "''", "'1.2.3'"] {
        run(&format!("SELECT decimal({bad})"))
            .code(2)
            .stderr(predicate::str::contains("is not a decimal number"));
    }
    // REALs have been rounded already.
    run("SELECT decimal_add(0.1, '1')")
        .code(2)
        .stderr(predicate::str::contains("argument 1 is a REAL"));
    // Beyond rust_decimal: an error, never a rounded number.
    run("SELECT decimal('1e40')")
        .code(2)
        .stderr(predicate::str::contains("out of range"));
    run("SELECT decimal_mul('0.000000000000001', '0.000000000000001')")
        .code(2)
        .stderr(predicate::str::contains("out of range"));
    run("SELECT decimal_add('79228162514264337593543950335', '1')")
        .code(2)
        .stderr(predicate::str::contains("out of range"));
    // Zero has no sign; equal values compare equal whatever their zeros.
    run("SELECT decimal('-0.00') AS a, decimal_add('-1.5', '1.5') AS b, decimal_cmp('1.0', '1') AS c")
        .code(0)
        .stdout("a,b,c\r\n0.00,0.0,0\r\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// decimal_sum over decimal text equals rust_decimal's own sum, and
    /// shows as many digits after the point as the finest term.
    #[test]
    fn decimal_sum_is_the_exact_sum(
        terms in prop::collection::vec((any::<bool>(), 0u64..10_000_000_000_000, 0u32..9), 0..40)
    ) {
        let texts: Vec<String> = terms
            .iter()
            .map(|(neg, m, scale)| {
                let d = Decimal::from_i128_with_scale(i128::from(*m), *scale);
                format!("{}{d}", if *neg { "-" } else { "" })
            })
            .collect();
        let c = rusqlite::Connection::open_in_memory().unwrap();
        hqx::sql_functions::register(&c).unwrap();
        c.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        for t in &texts {
            c.execute("INSERT INTO t VALUES (?1)", [t]).unwrap();
        }
        let got: Option<String> = c.query_row("SELECT decimal_sum(x) FROM t", [], |r| r.get(0)).unwrap();
        if texts.is_empty() {
            prop_assert_eq!(got, None);
        } else {
            let got = got.unwrap();
            let want: Decimal = texts.iter().map(|t| t.parse::<Decimal>().unwrap()).sum();
            prop_assert_eq!(got.parse::<Decimal>().unwrap(), want);
            let scale = terms.iter().map(|t| t.2).max().unwrap();
            let shown = got.split_once('.').map_or(0, |(_, f)| f.len() as u32);
            prop_assert_eq!(shown, scale, "{}", got);
        }
    }
}

#[test]
fn decimal_sum_matches_the_sqlite3_shell_on_generated_columns() {
    // A small deterministic generator: the same cases every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut selects = Vec::new();
    for case in 0..60 {
        let mut terms = Vec::new();
        for _ in 0..1 + next(12) {
            let digits = 1 + next(12) as u32;
            let int = next(10u64.pow(digits));
            let frac_len = next(9) as usize;
            let frac: String = (0..frac_len)
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let sign = if next(3) == 0 { "-" } else { "" };
            let dot = if frac_len > 0 { "." } else { "" };
            terms.push(format!("SELECT '{sign}{int}{dot}{frac}' AS x"));
        }
        selects.push(format!(
            "SELECT {case} AS k, decimal_sum(x) AS s FROM ({})",
            terms.join(" UNION ALL ")
        ));
    }
    let query = format!("{} ORDER BY k", selects.join(" UNION ALL "));
    let c = rusqlite::Connection::open_in_memory().unwrap();
    hqx::sql_functions::register(&c).unwrap();
    let ours: Vec<String> = c
        .prepare(&query)
        .unwrap()
        .query_map([], |r| r.get(1))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ours.len(), 60);
    let Some(mut shell) = sqlite3_shell() else {
        return;
    };
    let out = shell.args([":memory:", &query]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_once('|').unwrap().1.to_string())
        .collect();
    for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        // The shell may print a zero sum as -0.00; hqx never signs zero.
        let b = match b.strip_prefix('-') {
            Some(z) if z.chars().all(|c| c == '0' || c == '.') => z,
            _ => b.as_str(),
        };
        assert_eq!(a, b, "case {k}: {}", selects[k]);
    }
}
