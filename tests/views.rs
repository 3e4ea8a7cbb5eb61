//! The journal's views, read by hqx and by readers hqx did not write:
//! Python's sqlite3 module, DuckDB (its sqlite extension, READ_ONLY) and
//! the sqlite3 shell. A real run, a partial fill, an order placed from
//! another journal (external) and a reconcile make the journal; every
//! view must read in every reader and give the same rows as `hqx sql`,
//! and the positions must be the figures worked out by hand.
//!
//! The Python readers run `tests/readers/read_journal.py` with
//! `HQX_TEST_PYTHON` (CI points it at a venv with duckdb, pinned in
//! .ci/run), else `python3`. A reader that is missing skips loudly on a
//! dev machine and fails under CI (`CI` set).

use std::path::Path;
use std::process::Command as StdCommand;

use serde_json::{json, Value};

use crate::util::Env;

/// Every view, and the query each reader runs on it (`{hqx}` is the
/// schema prefix DuckDB needs). Ordered, so the rows compare; `age_s`
/// moves with the clock, so open_orders is compared without it.
const VIEWS: &[(&str, &str)] = &[
    (
        "fills",
        "SELECT * FROM {hqx}fills ORDER BY account_id, trade_id",
    ),
    (
        "external_fills",
        "SELECT * FROM {hqx}external_fills ORDER BY account_id, trade_id",
    ),
    (
        "positions",
        "SELECT * FROM {hqx}positions ORDER BY account_id, pair",
    ),
    (
        "position_fees",
        "SELECT * FROM {hqx}position_fees ORDER BY account_id, pair, fee_currency",
    ),
    (
        "open_orders",
        "SELECT account_id, source, batch_id, order_id, exchange_order_id, pair, side, type, quantity, price, filled_quantity, placed_ms, CASE WHEN age_s >= 0 THEN 1 ELSE 0 END AS aged FROM {hqx}open_orders ORDER BY account_id, exchange_order_id",
    ),
    (
        "requests_daily",
        "SELECT * FROM {hqx}requests_daily ORDER BY day_ms, method, endpoint",
    ),
    (
        "latest_balances",
        "SELECT * FROM {hqx}latest_balances ORDER BY account_id, currency",
    ),
    (
        "open_findings",
        "SELECT * FROM {hqx}open_findings ORDER BY id",
    ),
];

/// A journal with: `buy-1` (2 BTC, filled at once at 24012), `rest-1`
/// (0.5 BTC bid at 20000.10, 0.2 of it filled by the market), `sell-eth`
/// (1.5 ETH at market), and 3 BTC sold at market from another journal
/// (external), then a reconcile that brings in the fill and the external
/// trade.
fn journal() -> Env {
    let env = Env::new();
    let batch = env.write(
        "b.yaml",
        r#"version: 1
batch: desk-1
defaults: { pair: BTC-USDC, type: limit, side: buy }
orders:
  - { id: buy-1, quantity: "2", price: "24321.00" }
  - { id: rest-1, quantity: "0.5", price: "20000.10" }
  - { id: sell-eth, pair: ETH-USDC, side: sell, type: market, quantity: "1.5" }
"#,
    );
    env.run(&batch).assert().code(0);
    let rest: String = env.one("SELECT exchange_order_id FROM orders WHERE order_id = 'rest-1'");
    env.fill(&rest, Some("0.2"));
    let outside = env.write(
        "outside.yaml",
        "version: 1\nbatch: by-hand\norders:\n  - { id: dump, pair: BTC-USDC, side: sell, type: market, quantity: \"3\" }\n",
    );
    env.run(&outside)
        .env("HQX_JOURNAL", env.path("other.db"))
        .assert()
        .code(0);
    let out = env
        .hqx()
        .args(["reconcile", "--rate", "2000", "--absent-grace-ms", "0"])
        .output()
        .unwrap();
    // 5: the external order is drift, as it should be.
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(env.one::<i64>("SELECT count(*) FROM trades"), 4);
    env
}

/// `hqx sql --format json QUERY` on the env's journal.
fn hqx_rows(env: &Env, query: &str) -> Vec<Value> {
    let out = env
        .hqx()
        .args(["sql", "--format", "json", query])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hqx sql {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Skip loudly on a dev machine; fail under CI.
fn missing(what: &str) {
    if under_ci() {
        panic!("{what} is missing under CI: .ci/run installs it (HQX_TEST_PYTHON)");
    }
    eprintln!("SKIPPED: {what} is missing; install it (pip install duckdb) or set HQX_TEST_PYTHON to a python that has it");
}

fn python() -> String {
    std::env::var("HQX_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether `python -c "import MODULE"` works.
fn has_module(module: &str) -> bool {
    StdCommand::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every view through a Python reader (`sqlite3` or `duckdb`).
fn python_rows(reader: &str, journal: &Path) -> serde_json::Map<String, Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/read_journal.py");
    let queries: serde_json::Map<String, Value> = VIEWS
        .iter()
        .map(|(v, q)| (v.to_string(), Value::from(*q)))
        .collect();
    let out = StdCommand::new(python())
        .arg(script)
        .arg(reader)
        .arg(journal)
        .arg(Value::Object(queries).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{reader}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every view through hqx sql.
fn hqx_views(env: &Env) -> serde_json::Map<String, Value> {
    VIEWS
        .iter()
        .map(|(v, q)| {
            (
                v.to_string(),
                Value::from(hqx_rows(env, &q.replace("{hqx}", ""))),
            )
        })
        .collect()
}

#[test]
fn positions_are_the_figures_worked_out_by_hand() {
    let env = journal();
    let rows = hqx_rows(
        &env,
        "SELECT pair, trades, bought, sold, net_quantity, average_cost, open_cost, realized_pnl,
                fees_quote, fees, bought_value, sold_value, problem
         FROM positions ORDER BY pair",
    );
    // BTC: buy 2 at 24012 and 0.2 at 20000.10 (cost 52024.02 for 2.2),
    // then sell 3 at 23988: 2.2 closed (23988 × 2.2 − 52024.02 = 749.58
    // realized) and 0.8 short at 23988. Fees: 0.1 % of each trade's value
    // (48.024 + 4.00002 + 71.964).
    // ETH: sell 1.5 at 1599.2, short from flat: nothing realized.
    assert_eq!(
        rows,
        vec![
            json!({"pair": "BTC-USDC", "trades": 3, "bought": "2.2", "sold": "3",
                   "net_quantity": "-0.8", "average_cost": "23988", "open_cost": "19190.4",
                   "realized_pnl": "749.58", "fees_quote": "123.98802",
                   "fees": "{\"USDC\":\"123.98802\"}", "bought_value": "52024.02",
                   "sold_value": "71964", "problem": null}),
            json!({"pair": "ETH-USDC", "trades": 1, "bought": "0", "sold": "1.5",
                   "net_quantity": "-1.5", "average_cost": "1599.2", "open_cost": "2398.8",
                   "realized_pnl": "0", "fees_quote": "2.3988",
                   "fees": "{\"USDC\":\"2.3988\"}", "bought_value": "0",
                   "sold_value": "2398.8", "problem": null}),
        ]
    );
    // The sums are what hqx sql's decimal_sum says over the fills.
    let sums = hqx_rows(
        &env,
        "SELECT f.pair, decimal_sum(CASE WHEN f.side = 'buy' THEN f.quantity END) AS bought,
                decimal_sum(CASE WHEN f.side = 'sell' THEN f.quantity END) AS sold,
                decimal_sum(f.fee) AS fees, p.bought AS p_bought, p.sold AS p_sold,
                p.fees_quote AS p_fees
         FROM fills f JOIN positions p USING (account_id, pair) GROUP BY f.pair",
    );
    for r in &sums {
        assert_eq!(r["bought"], r["p_bought"], "{r}");
        assert_eq!(r["sold"], r["p_sold"], "{r}");
        assert_eq!(r["fees"], r["p_fees"], "{r}");
    }
    // The external trade is the one fill without a batch order.
    let ext = hqx_rows(&env, "SELECT side, quantity, batch_id FROM external_fills");
    assert_eq!(
        ext,
        vec![json!({"side": "sell", "quantity": "3", "batch_id": null})]
    );
    // What rests: rest-1 (0.2 of 0.5 filled), from the batch.
    let open = hqx_rows(
        &env,
        "SELECT source, batch_id, order_id, filled_quantity FROM open_orders",
    );
    assert_eq!(
        open,
        vec![
            json!({"source": "batch", "batch_id": "desk-1", "order_id": "rest-1", "filled_quantity": "0.2"})
        ]
    );
    // A rebuild from the trades gives the same figures.
    let before = hqx_rows(&env, "SELECT * FROM positions ORDER BY pair");
    let out = env.hqx().args(["journal", "rebuild"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("figures of 2 position(s) recomputed from 4 trade(s)"));
    assert_eq!(
        hqx_rows(&env, "SELECT * FROM positions ORDER BY pair"),
        before
    );
}

#[test]
fn foreign_readers_read_every_view_and_agree_with_hqx() {
    let env = journal();
    let ours = hqx_views(&env);
    assert!(ours
        .values()
        .all(|rows| !rows.as_array().unwrap().is_empty()));

    // The sqlite3 shell.
    if StdCommand::new("sqlite3").arg("--version").output().is_ok() {
        for (v, q) in VIEWS {
            let out = StdCommand::new("sqlite3")
                .args(["-json", "-readonly"])
                .arg(env.journal_path())
                .arg(q.replace("{hqx}", ""))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "sqlite3 {v}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(&rows, &ours[*v], "sqlite3 shell, view {v}");
        }
    } else {
        missing("the sqlite3 shell");
    }

    // Python's sqlite3 module.
    if has_module("sqlite3") {
        let theirs = python_rows("sqlite3", &env.journal_path());
        for (v, _) in VIEWS {
            assert_eq!(theirs[*v], ours[*v], "Python sqlite3, view {v}");
        }
    } else {
        missing("python3 (with its sqlite3 module)");
    }

    // DuckDB, attaching the journal read-only.
    if has_module("duckdb") {
        let theirs = python_rows("duckdb", &env.journal_path());
        for (v, _) in VIEWS {
            assert_eq!(theirs[*v], ours[*v], "DuckDB, view {v}");
        }
    } else {
        missing("DuckDB's Python package (duckdb, with duckdb-ext-sqlite)");
    }
}
