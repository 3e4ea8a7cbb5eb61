//! `hqx reconcile` against a sandbox whose market moves between runs:
//! routine syncs are not drift, each finding kind is, findings are quiet
//! once known or acknowledged, faults never pass for "in sync", and a run
//! and a reconcile can share an account.

use std::collections::{BTreeSet, HashSet};
use std::process::Stdio;

use hqx::sandbox::Control;
use hqx::sign::{sign, Secret};
use serde_json::Value;

use crate::util::{batch_of, Env, QUICK};

/// What one reconcile said: exit code and its JSON lines.
struct Outcome {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

impl Outcome {
    fn summary(&self) -> &Value {
        let last = self.lines.last().expect("a summary line");
        assert_eq!(last["type"], "summary", "{:?}", self.lines);
        last
    }

    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["type"] == t).collect()
    }

    fn findings(&self, kind: &str) -> Vec<&Value> {
        self.of_type("finding")
            .into_iter()
            .filter(|f| f["kind"] == kind)
            .collect()
    }
}

fn reconcile(env: &Env, extra: &[&str]) -> Outcome {
    let out = env
        .hqx()
        .args(["reconcile", "--output", "json", "--rate", "2000"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(lines[0]["type"], "version", "{stdout}\n{stderr}");
    let o = Outcome {
        code: out.status.code().unwrap_or(-1),
        lines,
        stderr,
    };
    assert_eq!(o.summary()["exit_code"], o.code, "{}", o.stderr);
    o
}

/// Place an order the way any signed client would, outside hqx.
fn place_outside(env: &Env, body: &str) -> String {
    let v = signed(env, reqwest::Method::POST, "/trading/api/v1/order", body);
    v["id"].as_str().unwrap().to_string()
}

/// One request signed as the exchange's sample client signs it; its JSON.
fn signed(env: &Env, method: reqwest::Method, path: &str, body: &str) -> Value {
    let secret = Secret::new(env.secret.clone());
    let url = format!("{}{path}", env.base_url());
    let (key, body) = (env.api_key.clone(), body.to_string());
    env.rt.block_on(async move {
        let ts = hqx::client::now_ms().to_string();
        reqwest::Client::new()
            .request(method, url)
            .header("x-api-key", key)
            .header("x-api-timestamp", &ts)
            .header("x-api-sign", sign(&secret, &ts, body.as_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn exchange_id(env: &Env, order: &str) -> String {
    env.one(&format!(
        "SELECT exchange_order_id FROM orders WHERE order_id = '{order}'"
    ))
}

/// Trade ids the exchange has, and the journal has.
fn trade_sets(env: &Env) -> (BTreeSet<String>, BTreeSet<String>) {
    let exchange = env.exchange_trades().into_iter().map(|t| t.id).collect();
    let db = env.db();
    let mut st = db.prepare("SELECT trade_id FROM trades").unwrap();
    let journal = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (exchange, journal)
}

#[test]
fn fills_are_a_sync_an_outside_order_is_drift_and_the_next_reconcile_is_quiet() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);

    // A first reconcile: nothing new; the balances become the baseline.
    let first = reconcile(&env, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.summary()["drift"], 0);
    assert!(first.summary()["snapshot_id"].is_i64());

    // The market falls through the resting bid, and someone places an
    // order on the account with another client.
    env.market("BTC-USDC", "20000");
    let outside = place_outside(
        &env,
        r#"{"pair":"ETH-USDC","type":"limit","side":"buy","quantity":"0.5","price":"1000"}"#,
    );

    let second = reconcile(&env, &[]);
    assert_eq!(second.code, 5, "{}", second.stderr);
    let s = second.summary();
    assert_eq!(
        (s["drift"].as_u64(), s["external_orders"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["synced_trades"], 1);
    assert_eq!(s["changed_orders"], 1);
    // The fill is a change, not a finding.
    let changes = second.of_type("change");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["order_id"], "rest-1");
    assert_eq!(changes[0]["kind"], "order_status");
    let ext = second.findings("external_order");
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0]["subject"], outside.as_str());
    assert_eq!(ext[0]["status"], "new");
    // The fill and its fee explain the balances exactly: no other finding.
    assert_eq!(second.of_type("finding").len(), 1, "{:?}", second.lines);
    assert_eq!(
        env.one::<String>(
            "SELECT state || ' ' || filled_quantity FROM orders WHERE order_id = 'rest-1'"
        ),
        "filled 0.5"
    );
    assert_eq!(
        env.one::<i64>(&format!(
            "SELECT count(*) FROM external_orders WHERE exchange_order_id = '{outside}'"
        )),
        1
    );
    let (exchange, journal) = trade_sets(&env);
    assert_eq!(exchange, journal);
    // The event that records the fill names the reconcile's run.
    let run: i64 = env.one("SELECT max(id) FROM runs WHERE command = 'reconcile'");
    assert_eq!(
        env.one::<i64>(
            "SELECT run_id FROM order_events WHERE order_id = 'rest-1' AND event = 'status_report'"
        ),
        run
    );

    // The next reconcile is quiet, and costs one trade request.
    let third = reconcile(&env, &[]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.summary()["drift"], 0);
    assert_eq!(third.findings("external_order")[0]["status"], "known");
    // Known, it is still described (it is no longer among the orders
    // created since the last reconcile).
    assert_eq!(
        third.findings("external_order")[0]["detail"],
        "buy 0.5 ETH-USDC limit @ 1000 (open), placed outside this journal"
    );
    let run: i64 = env.one("SELECT max(id) FROM runs WHERE command = 'reconcile'");
    assert_eq!(
        env.one::<i64>(&format!(
            "SELECT count(*) FROM http_log WHERE run_id = {run} AND path LIKE '/trading/api/v1/trades/my%'"
        )),
        1
    );
    // A batch order never adopts an external one.
    assert_eq!(
        env.one::<i64>(&format!(
            "SELECT count(*) FROM orders WHERE exchange_order_id = '{outside}'"
        )),
        0
    );
}

#[test]
fn a_partial_fill_is_synced_and_is_not_drift() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    assert_eq!(reconcile(&env, &[]).code, 0);
    env.fill(&exchange_id(&env, "rest-1"), Some("0.2"));
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary()["synced_trades"], 1);
    assert_eq!(
        env.one::<String>(
            "SELECT state || ' ' || filled_quantity FROM orders WHERE order_id = 'rest-1'"
        ),
        "open 0.2"
    );
    assert!(r.of_type("finding").is_empty(), "{:?}", r.lines);
}

#[test]
fn a_cancel_by_hand_and_an_outside_order_s_fill_are_syncs_not_drift() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    let outside = place_outside(
        &env,
        r#"{"pair":"ETH-USDC","type":"limit","side":"buy","quantity":"0.5","price":"1000"}"#,
    );
    // The outside order is drift once; from here on it is known.
    assert_eq!(reconcile(&env, &[]).code, 5);
    // Someone cancels a batch order by hand, and the outside order fills.
    let rest = exchange_id(&env, "rest-1");
    let cancelled = signed(
        &env,
        reqwest::Method::DELETE,
        &format!("/trading/api/v1/order/{rest}"),
        "{}",
    );
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    env.fill(&outside, None);
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:?}", r.stderr, r.lines);
    let changes = r.of_type("change");
    let kinds: BTreeSet<(String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["order_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("order_status".to_string(), "rest-1".to_string()),
            ("external_order_status".to_string(), outside.clone()),
        ]),
        "{changes:?}"
    );
    assert_eq!(r.summary()["drift"], 0);
    assert_eq!(r.summary()["synced_trades"], 1);
    assert_eq!(
        env.one::<String>("SELECT state FROM orders WHERE order_id = 'rest-1'"),
        "cancelled"
    );
    assert_eq!(
        env.one::<String>(&format!(
            "SELECT status || ' ' || filled_quantity FROM external_orders WHERE exchange_order_id = '{outside}'"
        )),
        "filled 0.5"
    );
    // Its text as the exchange now lists it, not just the columns.
    assert_eq!(
        env.one::<String>(&format!(
            "SELECT json_extract(raw, '$.status') || ' ' || json_extract(raw, '$.id')
             FROM external_orders WHERE exchange_order_id = '{outside}'"
        )),
        format!("filled {outside}")
    );
    // The outside order's fill explains the balances: no balance finding.
    assert!(
        r.findings("unexplained_balance").is_empty(),
        "{:?}",
        r.lines
    );
}

#[test]
fn a_known_outside_order_keeps_its_description_once_it_is_old() {
    let env = Env::new();
    // No margin: the second reconcile lists only orders created after
    // the first, so the outside order comes from the journal then.
    let venue = env.write("venue.yaml", "match_window_ms: 0\n");
    let reco = |env: &Env| reconcile(env, &["--venue", venue.to_str().unwrap()]);
    place_outside(
        &env,
        r#"{"pair":"ETH-USDC","type":"limit","side":"buy","quantity":"0.5","price":"1000"}"#,
    );
    assert_eq!(reco(&env).code, 5);
    let again = reco(&env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let f = again.findings("external_order");
    assert_eq!(f[0]["status"], "known");
    assert_eq!(
        f[0]["detail"],
        "buy 0.5 ETH-USDC limit @ 1000 (open), placed outside this journal"
    );
}

#[test]
fn an_outside_order_s_partial_fill_is_one_change_not_one_per_reconcile() {
    let env = Env::new();
    let outside = place_outside(
        &env,
        r#"{"pair":"ETH-USDC","type":"limit","side":"buy","quantity":"0.5","price":"1000"}"#,
    );
    assert_eq!(reconcile(&env, &[]).code, 5);
    env.fill(&outside, Some("0.2"));
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let changes = r.of_type("change");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["kind"], "external_order_status");
    assert_eq!(changes[0]["detail"], "open -> open, filled 0.2");
    // Nothing changed since: nothing to report.
    let quiet = reconcile(&env, &[]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert!(quiet.of_type("change").is_empty(), "{:?}", quiet.lines);
}

#[test]
fn journaled_trades_beyond_an_order_or_unreadable_are_findings() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    assert_eq!(reconcile(&env, &[]).code, 0);
    // A journal that holds more fills for buy-1 (2 BTC) than the order
    // is for, and a fill of rest-1 whose quantity cannot be read: as a
    // journal restored from a bad copy or edited by hand would.
    let buy = exchange_id(&env, "buy-1");
    let rest = exchange_id(&env, "rest-1");
    let account: i64 = env.one("SELECT id FROM accounts");
    let db = env.db();
    for (id, order, qty) in [("X1", &buy, "1.5"), ("X2", &rest, "lots")] {
        db.execute(
            "INSERT INTO trades (account_id, trade_id, exchange_order_id, pair, side, price,
                                 quantity, fee, fee_currency, traded_ms, raw)
             VALUES (?1, ?2, ?3, 'BTC-USDC', 'buy', '1', ?4, '0', 'USDC', 0, '{}')",
            rusqlite::params![account, id, order, qty],
        )
        .unwrap();
    }
    drop(db);
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let excess = r.findings("excess_fills");
    assert_eq!(excess.len(), 1, "{:?}", r.lines);
    assert_eq!(excess[0]["subject"], "quick-1/buy-1");
    assert!(
        excess[0]["detail"]
            .as_str()
            .unwrap()
            .contains("is for 2 but the journal has trades for 3.5"),
        "{}",
        excess[0]
    );
    let unreadable = r.findings("unreadable_fills");
    assert_eq!(unreadable.len(), 1, "{:?}", r.lines);
    assert_eq!(unreadable[0]["subject"], "quick-1/rest-1");
    assert_eq!(r.summary()["drift"], 2);
}

#[test]
fn a_deposit_is_drift_once_known_after_and_quiet_when_acknowledged() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    assert_eq!(reconcile(&env, &[]).code, 0);
    env.control(Control::Deposit {
        currency: "USDC".into(),
        amount: "1000".into(),
    });
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let f = r.findings("unexplained_balance");
    assert_eq!(f.len(), 1, "{:?}", r.lines);
    assert!(f[0]["detail"]
        .as_str()
        .unwrap()
        .contains("unexplained +1000"));
    let id = f[0]["id"].as_i64().unwrap();

    // Seen again: known, not new drift; unless --strict.
    let again = reconcile(&env, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.findings("unexplained_balance")[0]["status"], "known");
    assert_eq!(reconcile(&env, &["--strict"]).code, 5);

    // A person acknowledges it, with a note: quiet even with --strict.
    env.hqx()
        .args([
            "ack",
            &id.to_string(),
            "--note",
            "treasury top-up, ticket 42",
        ])
        .assert()
        .code(0);
    let after = reconcile(&env, &["--strict"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(after.findings("unexplained_balance").is_empty());
    assert_eq!(
        env.one::<String>("SELECT status || ': ' || ack_note FROM findings"),
        "acknowledged: treasury top-up, ticket 42"
    );
    // A second ack adds its note; the first is kept.
    env.hqx()
        .args(["ack", &id.to_string(), "--note", "confirmed by treasury"])
        .assert()
        .code(0);
    assert_eq!(
        env.one::<String>("SELECT ack_note FROM findings"),
        "treasury top-up, ticket 42\nconfirmed by treasury"
    );
    env.hqx()
        .args(["ack", "999", "--note", "x"])
        .assert()
        .code(2);
}

#[test]
fn fills_the_journal_missed_are_a_finding_until_the_trades_are_read() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    assert_eq!(reconcile(&env, &[]).code, 0);
    // Lose a fill from the journal, and move the cursor past it, as a
    // journal that missed it would be.
    let buy = exchange_id(&env, "buy-1");
    let db = env.db();
    db.execute(
        &format!("DELETE FROM trades WHERE exchange_order_id = '{buy}'"),
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE sync_cursors SET synced_to_ms = synced_to_ms + 3600000 WHERE stream = 'trades'",
        [],
    )
    .unwrap();
    drop(db);
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let f = r.findings("missing_fills");
    assert_eq!(f.len(), 1, "{:?}", r.lines);
    assert_eq!(f[0]["subject"], "quick-1/buy-1");
    assert!(
        f[0]["detail"].as_str().unwrap().contains("missing 2"),
        "{}",
        f[0]["detail"]
    );

    // Put the cursor back: the trade is read again, the finding clears.
    env.db()
        .execute(
            "UPDATE sync_cursors SET synced_to_ms = 0 WHERE stream = 'trades'",
            [],
        )
        .unwrap();
    let r = reconcile(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f = r.findings("missing_fills");
    assert_eq!(f.len(), 1, "{:?}", r.lines);
    assert_eq!(f[0]["status"], "cleared");
    assert_eq!(
        env.one::<String>("SELECT status FROM findings WHERE kind = 'missing_fills'"),
        "cleared"
    );
}

/// An exchange and a venue profile that page trades 2 at a time, and a
/// batch run on it that made 5 trades.
fn five_trades_in_pages_of_two() -> (Env, std::path::PathBuf) {
    let env = Env::with(|c| c.venue.trades_page_limit = 2);
    let venue = env.write("venue.yaml", "trades_page_limit: 2\n");
    let f = env.write("b.yaml", &batch_of("many", 5));
    env.run(&f)
        .args(["--venue", venue.to_str().unwrap()])
        .assert()
        .code(0);
    (env, venue)
}

#[test]
fn trades_that_arrive_between_page_reads_are_journaled_once_and_never_skipped() {
    let (env, venue) = five_trades_in_pages_of_two();
    let rest = place_outside(
        &env,
        r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"0.3","price":"20000"}"#,
    );
    let reco = |env: &Env| reconcile(env, &["--venue", venue.to_str().unwrap()]);
    assert_ne!(reco(&env).code, 1);
    for round in 0..3 {
        // After the first page is answered, a fill lands on the account.
        env.sandbox().after_trades_pages(
            1,
            Control::Fill {
                order_id: rest.clone(),
                quantity: Some("0.1".into()),
            },
        );
        let r = reco(&env);
        assert_ne!(r.code, 1, "round {round}: {}", r.stderr);
        // What the journal has is exactly what the exchange has, up to
        // the cursor; the trade made mid-read is never lost.
        let cursor: i64 = env.one("SELECT synced_to_ms FROM sync_cursors WHERE stream = 'trades'");
        let exchange: HashSet<String> = env
            .exchange_trades()
            .into_iter()
            .filter(|t| t.timestamp <= cursor)
            .map(|t| t.id)
            .collect();
        let (_, journal) = trade_sets(&env);
        let journal: HashSet<String> = journal.into_iter().collect();
        assert!(
            exchange.is_subset(&journal),
            "round {round}: missing {:?}",
            exchange.difference(&journal).collect::<Vec<_>>()
        );
    }
    let r = reco(&env);
    assert_ne!(r.code, 1, "{}", r.stderr);
    let (exchange, journal) = trade_sets(&env);
    assert_eq!(exchange, journal);
    assert_eq!(exchange.len(), 5 + 3);
}

#[test]
fn a_reconcile_with_nothing_new_costs_one_trade_request() {
    // The overlap that every read goes back over spans several pages.
    let (env, venue) = five_trades_in_pages_of_two();
    let reco = |env: &Env| reconcile(env, &["--venue", venue.to_str().unwrap()]);
    let trade_requests = |env: &Env| -> i64 {
        env.one(
            "SELECT count(*) FROM http_log WHERE path LIKE '%/trades/my%'
             AND run_id = (SELECT max(id) FROM runs WHERE command = 'reconcile')",
        )
    };
    // The run's read, all new: three pages, each after the first read
    // while the one before was journaled, and not one more.
    let run_reads: i64 = env.one(
        "SELECT count(*) FROM http_log WHERE path LIKE '%/trades/my%'
         AND run_id = (SELECT max(id) FROM runs WHERE command = 'run')",
    );
    assert_eq!(run_reads, 3);
    assert_eq!(reco(&env).code, 0);
    let quiet = reco(&env);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.summary()["synced_trades"], 0);
    assert_eq!(trade_requests(&env), 1);
    assert_eq!(quiet.summary()["trade_requests"], 1);
    // `n` new trades (an order placed outside hqx, filled 0.1 at a time),
    // then a reconcile: it journals each once and reads only the two pages
    // that hold them, no third page: the journal then holds as many trades
    // of the window as the exchange counts. Returns how many trades the
    // exchange and the journal both hold.
    let sync_new_trades = |n: usize| -> usize {
        let rest = place_outside(
            &env,
            &format!(
                r#"{{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"0.{n}","price":"20000"}}"#
            ),
        );
        for _ in 0..n {
            env.sandbox()
                .control(Control::Fill {
                    order_id: rest.clone(),
                    quantity: Some("0.1".into()),
                })
                .unwrap();
        }
        let moved = reco(&env);
        assert_eq!(moved.summary()["synced_trades"], n, "{}", moved.stderr);
        assert_eq!(trade_requests(&env), 2, "{n} new trades");
        let (exchange, journal) = trade_sets(&env);
        assert_eq!(exchange, journal, "{n} new trades");
        exchange.len()
    };
    assert_eq!(sync_new_trades(3), 5 + 3);
    // Four new trades end exactly at a page boundary: still only the two
    // pages that hold them.
    assert_eq!(sync_new_trades(4), 5 + 3 + 4);
}

#[test]
fn faults_never_pass_for_in_sync_and_never_journal_a_trade_twice() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    let rest = exchange_id(&env, "rest-1");
    let mut codes = Vec::new();
    for seed in 1..=6u64 {
        // New trades on the exchange before each reconcile.
        env.fill(&rest, Some("0.01"));
        let before: HashSet<String> = env.exchange_trades().into_iter().map(|t| t.id).collect();
        env.set_faults("error5xx=0.5,reset=0.25,stall=0.1,stall_for=300ms", seed);
        let r = reconcile(&env, &["--timeout-ms", "200"]);
        env.set_faults("", 0);
        codes.push(r.code);
        let (_, journal) = trade_sets(&env);
        let journal: HashSet<String> = journal.into_iter().collect();
        if r.code == 0 {
            assert!(
                before.is_subset(&journal),
                "seed {seed}: exit 0 with trades missing: {:?}",
                before.difference(&journal).collect::<Vec<_>>()
            );
        } else {
            assert!([1, 5].contains(&r.code), "seed {seed}: {}", r.stderr);
        }
        // Never past a trade that was not read.
        let cursor: i64 = env
            .one("SELECT coalesce(max(synced_to_ms), 0) FROM sync_cursors WHERE stream = 'trades'");
        for t in env.exchange_trades() {
            if t.timestamp <= cursor {
                assert!(
                    journal.contains(&t.id),
                    "seed {seed}: cursor passed {}",
                    t.id
                );
            }
        }
    }
    // Some reconciles failed, some went through; a clean one catches up.
    assert!(codes.contains(&1), "{codes:?}");
    let r = reconcile(&env, &[]);
    assert_ne!(r.code, 1, "{}", r.stderr);
    let (exchange, journal) = trade_sets(&env);
    assert_eq!(exchange, journal);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM trades"),
        exchange.len() as i64,
        "one row per trade"
    );
}

#[test]
fn an_unreadable_balance_is_unknown_not_zero() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    let venue = env.write("venue.yaml", "paths: { balances: /account/api/v1/nope }\n");
    let r = reconcile(&env, &["--venue", venue.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let inc = r.of_type("incomplete");
    assert!(
        inc.iter()
            .any(|i| i["what"].as_str().unwrap().contains("balances")),
        "{inc:?}"
    );
    assert_eq!(env.one::<i64>("SELECT count(*) FROM balance_snapshots"), 0);
}

#[test]
fn an_unknown_order_is_resolved_by_reconcile_with_the_run_s_code() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("lost", 3));
    // Every placement is committed and its answer lost, and the listing
    // fails: the run cannot prove anything and stops (exit 3).
    env.set_faults("drop=1.0", 1);
    let venue = env.write("venue.yaml", "paths: { my_orders: /trading/api/v1/nope }\n");
    env.run(&f)
        .args(["--absent-grace-ms", "0", "--timeout-ms", "500"])
        .args(["--venue", venue.to_str().unwrap()])
        .assert()
        .code(3);
    env.set_faults("", 0);
    assert_eq!(env.accepted().len(), 3);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE state = 'unknown'"),
        3
    );
    let r = reconcile(&env, &["--absent-grace-ms", "0"]);
    assert_ne!(r.code, 1, "{}", r.stderr);
    let found: Vec<&Value> = r
        .of_type("change")
        .into_iter()
        .filter(|c| c["kind"] == "order_found")
        .collect();
    assert_eq!(found.len(), 3, "{:?}", r.lines);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE state = 'unknown'"),
        0
    );
    // The adopted order is not also called external.
    assert!(r.findings("external_order").is_empty(), "{:?}", r.lines);
    // Reconcile sent nothing, and the next run has nothing to send.
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 3);
}

#[test]
fn a_run_and_a_reconcile_share_an_account() {
    let env = Env::new();
    let f = env.write("big.yaml", &batch_of("big", 60));
    let mut run = env
        .run_process(&f)
        .args(["--rate", "40", "--burst", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run has sent something (it holds the batch by then).
    loop {
        let sent: i64 = env
            .db()
            .query_row("SELECT count(*) FROM orders WHERE attempts > 0", [], |r| {
                r.get(0)
            })
            .unwrap_or(0);
        if sent > 0 {
            break;
        }
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::yield_now();
    }
    let r = reconcile(&env, &[]);
    assert!(run.try_wait().unwrap().is_none(), "the run was still going");
    assert_eq!(r.summary()["busy_batches"][0], "big", "{}", r.stderr);
    assert!(r.findings("external_order").is_empty(), "{:?}", r.lines);
    assert_eq!(run.wait().unwrap().code(), Some(0));
    let after = reconcile(&env, &[]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(after.of_type("finding").is_empty(), "{:?}", after.lines);
    assert_eq!(env.accepted().len(), 60);
}

#[test]
fn a_journal_that_must_exist_is_never_created_by_run_or_reconcile() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    for args in [vec!["run", f.to_str().unwrap()], vec!["reconcile"]] {
        env.hqx()
            .args(&args)
            .env("HQX_JOURNAL_MUST_EXIST", "1")
            .assert()
            .code(2)
            .stderr(predicates::str::contains("hqx journal init"));
        assert!(!env.journal_path().exists());
    }
    assert!(env.accepted().is_empty());
    env.hqx().args(["journal", "init"]).assert().code(0);
    env.run(&f)
        .env("HQX_JOURNAL_MUST_EXIST", "1")
        .assert()
        .code(0);
    // A backup while nothing else writes, then a check of both.
    let bak = env.path("copy.db");
    env.hqx()
        .args(["journal", "backup", bak.to_str().unwrap()])
        .assert()
        .code(0);
    env.hqx()
        .args(["journal", "backup", bak.to_str().unwrap()])
        .assert()
        .code(2);
    let copy = rusqlite::Connection::open(&bak).unwrap();
    let n: i64 = copy
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    env.hqx()
        .args(["journal", "check"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("integrity: ok"));
}

#[test]
fn the_step_summary_is_written_under_github_actions() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    let summary = env.path("summary.md");
    env.control(Control::Deposit {
        currency: "USDC".into(),
        amount: "5".into(),
    });
    reconcile(&env, &[]);
    env.control(Control::Deposit {
        currency: "USDC".into(),
        amount: "5".into(),
    });
    let out = env
        .hqx()
        .args(["reconcile", "--rate", "2000"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## hqx reconcile: DRIFT"), "{md}");
    assert!(md.contains("unexplained_balance"), "{md}");
    // Human output goes to stdout without --output json.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NEW"), "{text}");
}

#[test]
fn a_batch_from_a_lost_journal_is_refused_where_the_venue_has_client_ids() {
    let env = Env::with(|c| c.venue.client_order_id_field = Some("clientOrderId".into()));
    let venue = env.write("venue.yaml", "client_order_id_field: clientOrderId\n");
    let f = env.write("b.yaml", QUICK);
    let venue_arg = ["--venue", venue.to_str().unwrap()];
    env.run(&f).args(venue_arg).assert().code(0);
    assert_eq!(env.accepted().len(), 3);
    // The journal is lost; the same batch runs on a fresh one.
    std::fs::remove_file(env.journal_path()).unwrap();
    env.run(&f)
        .args(venue_arg)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("run before from another journal"));
    assert_eq!(env.accepted().len(), 3, "nothing placed twice");
    // A new batch on the same account goes through.
    let other = env.write("c.yaml", &QUICK.replace("quick-1", "quick-2"));
    env.run(&other).args(venue_arg).assert().code(0);
    assert_eq!(env.accepted().len(), 6);
}
