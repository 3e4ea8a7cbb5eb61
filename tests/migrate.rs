//! Journals written by earlier schemas (kept in tests/fixtures, made by
//! the old binaries) are upgraded in place by any command that opens them,
//! without losing a row.

use crate::util::Env;

const FIXTURE: &str = "tests/fixtures/journal-schema-2.db";

#[test]
fn a_schema_2_journal_is_upgraded_without_losing_a_row() {
    let env = Env::new();
    std::fs::copy(FIXTURE, env.journal_path()).unwrap();
    let count = |t: &str| env.one::<i64>(&format!("SELECT count(*) FROM {t}"));
    let before: Vec<(&str, i64)> = [
        "batches",
        "runs",
        "orders",
        "order_events",
        "http_log",
        "trades",
        "query_results",
    ]
    .into_iter()
    .map(|t| (t, count(t)))
    .collect();
    assert_eq!(env.one::<i64>("PRAGMA user_version"), 2);

    // `plan` opens (and so upgrades) the journal, and still knows every order.
    let quickstart = std::fs::canonicalize("examples/quickstart.yaml").unwrap();
    let out = env.hqx().arg("plan").arg(&quickstart).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 to place, 5 already placed"), "{text}");

    assert_eq!(
        env.one::<i64>("PRAGMA user_version"),
        hqx::journal::Journal::schema_version()
    );
    for (t, n) in before {
        assert_eq!(count(t), n, "rows of {t}");
    }
    // Every batch, run, order and trade now belongs to the one account.
    assert_eq!(count("accounts"), 1);
    for t in ["batches", "orders", "trades"] {
        assert_eq!(
            env.one::<i64>(&format!("SELECT count(*) FROM {t} WHERE account_id = 1")),
            count(t),
            "{t} bound to the account"
        );
    }
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM runs WHERE account_id IS NULL"),
        0
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
    // The old file was copied, whole, before the upgrade.
    let bak = format!("{}.schema-2.bak", env.journal_path().display());
    let old = rusqlite::Connection::open(&bak).unwrap();
    let v: i64 = old
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

/// A schema-3 journal (made by the schema-3 binary against a sandbox: the
/// quickstart, three orders placed from another journal, two partial
/// fills, a reconcile and an ack) is upgraded to schema 4 without losing
/// a row, and its positions are computed from its trades on the way.
#[test]
fn a_schema_3_journal_is_upgraded_and_its_positions_filled() {
    let env = Env::new();
    std::fs::copy("tests/fixtures/journal-schema-3.db", env.journal_path()).unwrap();
    let count = |t: &str| env.one::<i64>(&format!("SELECT count(*) FROM {t}"));
    let tables = [
        "accounts",
        "batches",
        "runs",
        "orders",
        "order_events",
        "http_log",
        "trades",
        "query_results",
        "sync_cursors",
        "balance_snapshots",
        "balances",
        "external_orders",
        "findings",
    ];
    // The columns each table had before: later schemas may add some.
    let columns: Vec<String> = tables
        .iter()
        .map(|t| {
            env.one(&format!(
                "SELECT group_concat(name, ', ') FROM pragma_table_info('{t}')"
            ))
        })
        .collect();
    let dump = |t: &str, cols: &str| -> Vec<String> {
        rows_of(&env.db(), &format!("SELECT {cols} FROM {t} ORDER BY rowid"))
    };
    let before: Vec<Vec<String>> = tables
        .iter()
        .zip(&columns)
        .map(|(t, c)| dump(t, c))
        .collect();
    assert_eq!(env.one::<i64>("PRAGMA user_version"), 3);
    assert!(count("trades") > 0);

    // hqx sql only reads: on the old schema it says how to upgrade.
    env.hqx()
        .args(["sql", "SELECT * FROM positions"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!(
            "this journal has schema 3 and this hqx writes {}",
            hqx::journal::Journal::schema_version()
        )))
        .stderr(predicates::str::contains("`hqx journal check` upgrades it"));
    assert_eq!(env.one::<i64>("PRAGMA user_version"), 3);

    env.hqx().args(["journal", "check"]).assert().code(0);

    assert_eq!(
        env.one::<i64>("PRAGMA user_version"),
        hqx::journal::Journal::schema_version()
    );
    for ((t, c), rows) in tables.iter().zip(&columns).zip(before) {
        assert_eq!(dump(t, c), rows, "{t}: every row, every value, kept");
    }
    // Figures for every pair traded, from every trade.
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM positions"),
        env.one::<i64>("SELECT count(DISTINCT account_id || pair) FROM trades")
    );
    assert_eq!(
        env.one::<i64>("SELECT sum(trades) FROM positions"),
        count("trades")
    );
    // BTC-USDC: bought 0.25 at 24012, sold 0.4 at 23988 (0.25 closed at a
    // loss of 6, 0.15 short at 23988), bought 0.04 at 22500 (closes 0.04 of
    // the short: 3598.2 × 0.04 / 0.15 = 959.52 released, 59.52 realized).
    let btc: (String, String, String, String) = env
        .db()
        .query_row(
            "SELECT net_quantity, average_cost, open_cost, realized_pnl FROM positions
             WHERE pair = 'BTC-USDC'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        btc,
        (
            "-0.11".into(),
            "23988".into(),
            "2638.68".into(),
            "53.52".into()
        )
    );
    let bak = format!("{}.schema-3.bak", env.journal_path().display());
    let old = rusqlite::Connection::open(&bak).unwrap();
    let v: i64 = old
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 3);
}

/// Every row `sql` returns, each as its values' Debug text joined by `|`.
fn rows_of(db: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut st = db.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Every row of every table (rowid included, where there is one) and of
/// every view (but `open_orders.age_s` and `journal_clock`, which follow
/// the clock), as text.
fn dump_everything(db: &rusqlite::Connection) -> Vec<(String, Vec<String>)> {
    let objects: Vec<(String, String)> = {
        let mut st = db
            .prepare(
                "SELECT type, name FROM sqlite_schema
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'
                   AND name <> 'journal_clock'
                 ORDER BY name",
            )
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    objects
        .into_iter()
        .map(|(kind, name)| {
            let cols: String = db
                .query_row(
                    "SELECT group_concat(name, ', ') FROM pragma_table_info(?1) WHERE name <> 'age_s'",
                    [&name],
                    |r| r.get(0),
                )
                .unwrap();
            let sql = if kind == "table" {
                format!("SELECT rowid, {cols} FROM {name} ORDER BY rowid")
            } else {
                format!("SELECT {cols} FROM {name} ORDER BY {cols}")
            };
            (format!("{name} ({cols})"), rows_of(db, &sql))
        })
        .collect()
}

/// A schema-6 journal (made by the schema-6 binary with `--sandbox`: the
/// quickstart, a second batch with two cancels, a reconcile) is upgraded to
/// schema 7, which rebuilds `orders` with the same columns, rows and views
/// and the same accepted values, its CHECKs written as equalities, and one
/// index replaced; then to schema 8, which replaces another.
#[test]
fn a_schema_6_journal_is_upgraded_with_every_row_and_view_kept() {
    let env = Env::new();
    std::fs::copy("tests/fixtures/journal-schema-6.db", env.journal_path()).unwrap();
    assert_eq!(env.one::<i64>("PRAGMA user_version"), 6);
    let schema = |kind: &str| -> Vec<(String, String)> {
        let db = env.db();
        let mut st = db
            .prepare("SELECT name, sql FROM sqlite_schema WHERE type = ?1 AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = st
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let (indexes, views) = (schema("index"), schema("view"));
    let before = dump_everything(&env.db());
    let states: Vec<String> = {
        let db = env.db();
        let mut st = db
            .prepare("SELECT DISTINCT state FROM orders ORDER BY state")
            .unwrap();
        let rows = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    assert_eq!(states, ["cancelled", "filled", "open"]);
    for t in [
        "orders",
        "order_events",
        "fills",
        "open_orders",
        "cancel_orders",
    ] {
        let rows = &before.iter().find(|(n, _)| n.starts_with(t)).unwrap().1;
        assert!(!rows.is_empty(), "the fixture has rows in {t}");
    }

    env.hqx().args(["journal", "check"]).assert().code(0);

    assert_eq!(
        env.one::<i64>("PRAGMA user_version"),
        hqx::journal::Journal::schema_version()
    );
    let after = dump_everything(&env.db());
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "every row, every value, every column in its place");
    }
    // The same indexes, but the one hqx never read, changed on every state
    // change (orders by account and state), is now one of open orders by
    // account, which the `open_orders` view reads.
    // And (schema 8) the index of every order by batch and state is one of
    // the orders sent and not yet answered or resolved.
    let mut expected: Vec<(String, String)> = indexes
        .into_iter()
        .filter(|(name, _)| name != "orders_account_state" && name != "orders_state")
        .collect();
    expected.push((
        "orders_open".into(),
        "CREATE INDEX orders_open ON orders(account_id) WHERE state = 'open'".into(),
    ));
    expected.push((
        "orders_unsettled".into(),
        "CREATE INDEX orders_unsettled ON orders(batch_id, state)\n    WHERE state = 'sending' OR state = 'unknown'".into(),
    ));
    expected.sort();
    assert_eq!(schema("index"), expected, "the same indexes");
    assert_eq!(schema("view"), views, "the same views, word for word");
    let orders_sql: String =
        env.one("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'orders'");
    assert!(!orders_sql.contains(" IN "), "{orders_sql}");
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
    assert_eq!(env.one::<String>("PRAGMA integrity_check"), "ok");
    // Its pages keep their size (a new journal's are 8 KiB).
    assert_eq!(env.one::<i64>("PRAGMA page_size"), 4096);
    // The journal still knows the quickstart's orders as placed.
    let quickstart = std::fs::canonicalize("examples/quickstart.yaml").unwrap();
    let out = env.hqx().arg("plan").arg(&quickstart).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 to place, 5 already placed"), "{text}");
    let bak = format!("{}.schema-6.bak", env.journal_path().display());
    let old = rusqlite::Connection::open(&bak).unwrap();
    let v: i64 = old
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 6);
}
