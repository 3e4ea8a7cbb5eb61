//! Runs under injected exchange faults: every order placed exactly once, or
//! exit 3 naming the unresolved orders; never a duplicate, never an order
//! the journal does not know.

use crate::crash::assert_exactly_once;
use crate::util::{batch_of, Env};

/// Run until done (exit 0), allowing exit 3 (unresolved) in between;
/// returns the exit codes seen.
fn run_to_completion(env: &Env, f: &std::path::Path, extra: &[&str]) -> Vec<i32> {
    let mut codes = Vec::new();
    for _ in 0..8 {
        let out = env
            .run(f)
            .args(["--timeout-ms", "400", "--absent-grace-ms", "100"])
            .args(extra)
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        codes.push(code);
        assert!(
            code == 0 || code == 3,
            "exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code == 3 {
            assert!(String::from_utf8_lossy(&out.stderr).contains("hqx resolve"));
        }
        if code == 0 {
            break;
        }
    }
    codes
}

fn campaign(spec: &str, seed: u64, n: usize) -> Env {
    let env = Env::new();
    env.set_faults(spec, seed);
    let f = env.write("b.yaml", &batch_of("faulty", n));
    let codes = run_to_completion(&env, &f, &[]);
    assert_eq!(codes.last(), Some(&0), "never finished: {codes:?}");
    env.set_faults("", 0);
    assert_exactly_once(&env, n);
    env
}

#[test]
fn error5xx_orders_are_resolved_not_duplicated() {
    let env = campaign("error5xx=0.3", 7, 40);
    let lost: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'lost'");
    assert!(lost > 0);
}

#[test]
fn dropped_answers_are_found_on_the_exchange() {
    let env = campaign("drop=0.3", 11, 40);
    let found: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'found'");
    assert!(found > 0, "no dropped order was adopted");
}

#[test]
fn resets_are_proven_absent_and_resent() {
    let env = campaign("reset=0.3", 13, 40);
    let absent: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'proven_absent'");
    assert!(absent > 0);
    let attempts: i64 = env.one("SELECT max(attempts) FROM orders");
    assert!(attempts >= 2);
}

#[test]
fn rate_limits_are_honoured_and_retried() {
    let env = campaign("limit429=0.3", 17, 40);
    let refused: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'refused'");
    assert!(refused > 0);
    let lost: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'lost'");
    assert_eq!(lost, 0, "a 429 was treated as a lost order");
}

#[test]
fn stalls_time_out_and_are_resolved() {
    let env = campaign("stall=0.2,stall_for=2s", 19, 30);
    let lost: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'lost'");
    assert!(lost > 0);
}

#[test]
fn every_fault_at_once_at_high_rates() {
    campaign(
        "latency=1ms,error5xx=0.1,drop=0.1,reset=0.05,limit429=0.05,stall=0.02,stall_for=2s",
        23,
        80,
    );
}

#[test]
fn an_unreachable_exchange_leaves_orders_pending_and_sends_nothing_twice() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("down", 3));
    // Nothing listens on port 9 of loopback: connection refused.
    env.run(&f)
        .env("HQX_BASE_URL", "http://127.0.0.1:9")
        .assert()
        .code(1);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE state = 'pending'"),
        3
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'not_sent'"),
        15
    );
}

/// Where the venue has a client order id, it is the match: twin orders
/// (same pair, side, type, quantity and price under different ids), whose
/// fingerprints cannot tell them apart, each end with the exchange order
/// that carries their own client order id.
#[test]
fn a_client_order_id_venue_matches_twins_by_their_own_id() {
    let env = Env::with(|c| c.venue.client_order_id_field = Some("clientOrderId".into()));
    env.set_faults("drop=0.4,error5xx=0.1", 11);
    let venue = env.write("venue.yaml", "client_order_id_field: clientOrderId\n");
    let mut text = String::from(
        "version: 1\nbatch: twins\ndefaults: { pair: BTC-USDC, type: limit }\norders:\n",
    );
    for i in 0..15 {
        for twin in ["a", "b"] {
            text.push_str(&format!(
                "  - {{ id: o{i}{twin}, side: buy, quantity: \"0.{:03}\", price: \"25000.00\" }}\n",
                i + 1
            ));
        }
    }
    let f = env.write("b.yaml", &text);
    let venue = venue.to_str().unwrap().to_string();
    let codes = run_to_completion(&env, &f, &["--venue", &venue]);
    assert_eq!(codes.last(), Some(&0), "never finished: {codes:?}");
    env.set_faults("", 0);
    let lost: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'lost'");
    assert!(
        lost > 0,
        "the faults left no order unknown; pick another seed"
    );

    let accepted = env.accepted();
    assert_eq!(accepted.len(), 30, "one exchange order per batch order");
    let db = env.db();
    let mut st = db
        .prepare("SELECT order_id, client_order_id, exchange_order_id FROM orders")
        .unwrap();
    let rows: Vec<(String, Option<String>, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 30);
    for (order, cid, xid) in rows {
        let cid = cid.unwrap_or_else(|| panic!("{order}: no client order id journaled"));
        assert_eq!(cid, hqx::executor::client_order_id("twins", &order));
        let xid = xid.unwrap_or_else(|| panic!("{order}: not placed"));
        let on_exchange = accepted.iter().find(|o| o.id == xid).unwrap();
        assert_eq!(
            on_exchange.client_order_id.as_deref(),
            Some(cid.as_str()),
            "{order} adopted its twin's exchange order"
        );
        assert!(on_exchange.received_body.contains(&cid));
    }
}

/// An order list hqx cannot read is not proof that an order is absent: an
/// unknown order stays unknown (exit 3) and is not sent again.
#[test]
fn an_unreadable_order_list_proves_nothing_and_nothing_is_resent() {
    let env = Env::new();
    env.set_faults("drop=1", 3);
    // The listing path answers with something that is not an order list.
    let venue = env.write(
        "venue.yaml",
        "paths: { my_orders: /account/api/v1/balances }\n",
    );
    let f = env.write("b.yaml", &batch_of("unreadable", 5));
    for _ in 0..2 {
        let out = env
            .run(&f)
            .args(["--timeout-ms", "400", "--absent-grace-ms", "50", "--venue"])
            .arg(&venue)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("cannot list orders on the exchange to resolve unknown orders"),
            "{stderr}"
        );
    }
    // Every placement reached the exchange once (its answer was dropped),
    // and none was sent again on the strength of an unreadable list.
    assert_eq!(env.accepted().len(), 5);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE state = 'unknown' AND attempts = 1"),
        5
    );
}

/// With client order ids, a wrong "absent" (here declared by hand) cannot
/// make a duplicate: the exchange refuses the second copy (409), and hqx
/// takes that as "already there" and adopts the original by its client id.
#[test]
fn a_client_order_id_conflict_adopts_the_order_the_exchange_already_has() {
    let env = Env::with(|c| c.venue.client_order_id_field = Some("clientOrderId".into()));
    let blind = env.write(
        "blind.yaml",
        "client_order_id_field: clientOrderId\npaths: { my_orders: /account/api/v1/balances }\n",
    );
    let venue = env.write("venue.yaml", "client_order_id_field: clientOrderId\n");
    let f = env.write("b.yaml", &batch_of("cid", 3));
    let run = |venue: &std::path::Path| {
        env.run(&f)
            .args(["--timeout-ms", "400", "--absent-grace-ms", "50", "--venue"])
            .arg(venue)
            .output()
            .unwrap()
    };
    // Every answer lost and the order list unreadable: all three unknown.
    env.set_faults("drop=1", 1);
    assert_eq!(run(&blind).status.code(), Some(3));
    env.set_faults("", 0);
    let first = env.accepted();
    assert_eq!(first.len(), 3);
    // Someone declares o0 absent, wrongly: it is on the exchange.
    env.hqx()
        .args(["resolve", "cid", "o0", "--as", "absent"])
        .assert()
        .success();
    let out = run(&venue);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.accepted().len(), 3, "no second copy on the exchange");
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log WHERE status = 409"),
        1
    );
    let original = first
        .iter()
        .find(|o| {
            o.client_order_id.as_deref() == Some(&hqx::executor::client_order_id("cid", "o0"))
        })
        .unwrap();
    assert_eq!(
        env.one::<String>("SELECT exchange_order_id FROM orders WHERE order_id = 'o0'"),
        original.id
    );
    // Each journal order holds its own exchange order (bodies differ from
    // the journal's by the client id, so compare ids, not bodies).
    let mut ids: Vec<String> = env
        .journal_orders()
        .into_iter()
        .map(|(_, _, x)| x.expect("placed"))
        .collect();
    ids.sort();
    let mut on_exchange: Vec<String> = env.accepted().into_iter().map(|o| o.id).collect();
    on_exchange.sort();
    assert_eq!(ids, on_exchange);
}
