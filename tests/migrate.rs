//! A journal written by the previous schema (kept in tests/fixtures, made
//! by the old binary with the quickstart batch, run twice) is upgraded in
//! place by any command that opens it, without losing a row.

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
