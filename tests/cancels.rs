//! Batches that cancel: each target, a never-sent order, filled orders,
//! lost answers and reruns, and what `plan` says. What reached the
//! exchange is read from the sandbox (its order list and its state file,
//! one `cancelled` line per DELETE that acted) and from `http_log`.

use std::collections::HashMap;

use crate::util::Env;

/// Exchange order id -> how many DELETEs the exchange acted on.
fn cancels_acted(env: &Env) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(env.path("exchange.jsonl")).unwrap();
    let mut out = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"] == "cancelled" {
            *out.entry(v["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    out
}

/// Exchange order id -> status, as the exchange holds it.
fn statuses(env: &Env) -> HashMap<String, String> {
    env.accepted()
        .into_iter()
        .map(|o| (o.id, o.status))
        .collect()
}

fn deletes(env: &Env) -> i64 {
    env.one("SELECT count(*) FROM http_log WHERE method = 'DELETE'")
}

fn exchange_id(env: &Env, batch: &str, order: &str) -> String {
    env.one(&format!(
        "SELECT exchange_order_id FROM orders WHERE batch_id = '{batch}' AND order_id = '{order}'"
    ))
}

fn cancel_states(env: &Env, batch: &str) -> Vec<(String, String)> {
    let db = env.db();
    let mut st = db
        .prepare("SELECT cancel_id, state FROM cancel_orders WHERE batch_id = ?1 ORDER BY cancel_id, item")
        .unwrap();
    st.query_map([batch], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Three resting BTC bids, one resting ETH ask, one BTC buy that fills.
const PLACE: &str = r#"version: 1
batch: place-1
defaults: { pair: BTC-USDC, type: limit, side: buy }
orders:
  - { id: bid-a, quantity: "0.1", price: "20000.00" }
  - { id: bid-b, quantity: "0.2", price: "20001.00" }
  - { id: bid-c, quantity: "0.3", price: "20002.00" }
  - { id: eth-ask, pair: ETH-USDC, side: sell, quantity: "1", price: "1900.00" }
  - { id: btc-now, quantity: "0.01", price: "24100.00" }
"#;

#[test]
fn each_target_cancels_what_it_names_and_a_rerun_sends_nothing() {
    let env = Env::new();
    let place = env.write("place.yaml", PLACE);
    env.run(&place).assert().code(0);
    let (a, b, c, eth) = (
        exchange_id(&env, "place-1", "bid-a"),
        exchange_id(&env, "place-1", "bid-b"),
        exchange_id(&env, "place-1", "bid-c"),
        exchange_id(&env, "place-1", "eth-ask"),
    );
    let f = env.write(
        "cancel.yaml",
        &format!(
            r#"version: 1
batch: cancel-1
orders:
  - {{ id: new-bid, pair: ETH-USDC, side: buy, type: limit, quantity: "1", price: "1000" }}
  - {{ id: never, pair: SOL-USDC, side: buy, type: limit, quantity: "1", price: "10" }}
cancels:
  - {{ id: drop-a, order: place-1/bid-a }}
  - {{ id: drop-b, exchange_order_id: {b} }}
  - {{ id: clear-eth, all_open: {{ pair: ETH-USDC }} }}
  - {{ id: drop-never, order: never }}
"#
        ),
    );
    let out = env.run(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("4 cancel(s) of 4 order(s): 3 done, 1 not needed"),
        "{text}"
    );

    // The exchange: a, b and the ETH ask cancelled once each; c untouched;
    // the ETH bid placed after the cancels (all_open ran first) is open.
    let st = statuses(&env);
    assert_eq!(st[&a], "cancelled");
    assert_eq!(st[&b], "cancelled");
    assert_eq!(st[&eth], "cancelled");
    assert_eq!(st[&c], "open");
    let new_bid = exchange_id(&env, "cancel-1", "new-bid");
    assert_eq!(st[&new_bid], "open");
    let acted = cancels_acted(&env);
    assert_eq!(acted.len(), 3, "{acted:?}");
    assert!(acted.values().all(|n| *n == 1));
    // `never` was never sent: no placement for it reached the exchange.
    assert!(env.accepted().iter().all(|o| o.pair != "SOL-USDC"));
    let never: String =
        env.one("SELECT state FROM orders WHERE batch_id = 'cancel-1' AND order_id = 'never'");
    assert_eq!(never, "cancelled");
    let ev: String = env.one(
        "SELECT group_concat(event, ',') FROM order_events WHERE batch_id = 'cancel-1' AND order_id = 'never'",
    );
    assert_eq!(ev, "journaled,cancelled_unsent");
    // The journal of the other batch: its order is cancelled, with events.
    let ev: String = env.one(
        "SELECT group_concat(event, ',') FROM order_events WHERE batch_id = 'place-1' AND order_id = 'bid-a'",
    );
    assert!(ev.ends_with("cancel_sent,cancel_confirmed"), "{ev}");
    assert_eq!(
        cancel_states(&env, "cancel-1"),
        vec![
            ("clear-eth".into(), "done".into()),
            ("drop-a".into(), "done".into()),
            ("drop-b".into(), "done".into()),
            ("drop-never".into(), "not_needed".into()),
        ]
    );
    assert_eq!(deletes(&env), 3);

    // A rerun sends no DELETE and places nothing new.
    let before = env.accepted().len();
    env.run(&f).assert().code(0);
    assert_eq!(deletes(&env), 3);
    assert_eq!(env.accepted().len(), before);
    assert_eq!(cancels_acted(&env).len(), 3);
}

#[test]
fn cancelling_filled_orders_reports_already_filled() {
    let env = Env::new();
    let place = env.write("place.yaml", PLACE);
    env.run(&place).assert().code(0);
    // bid-c fills on the exchange behind the journal's back: the journal
    // still says open, so a DELETE goes and is refused (409).
    let c = exchange_id(&env, "place-1", "bid-c");
    env.fill(&c, None);
    let f = env.write(
        "cancel.yaml",
        r#"version: 1
batch: cancel-2
cancels:
  - { id: drop-now, order: place-1/btc-now }
  - { id: drop-c, order: place-1/bid-c }
"#,
    );
    let out = env.run(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 cancel(s) of 2 order(s): 2 already filled"),
        "{text}"
    );
    assert_eq!(
        cancel_states(&env, "cancel-2"),
        vec![
            ("drop-c".into(), "already_filled".into()),
            ("drop-now".into(), "already_filled".into()),
        ]
    );
    // Known filled: no request. Believed open: one DELETE, refused.
    let d: Vec<(String, i64)> = {
        let db = env.db();
        let mut st = db
            .prepare("SELECT path, status FROM http_log WHERE method = 'DELETE'")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(d, vec![(format!("/trading/api/v1/order/{c}"), 409)]);
    assert!(cancels_acted(&env).is_empty());
    let state: String =
        env.one("SELECT state FROM orders WHERE batch_id = 'place-1' AND order_id = 'bid-c'");
    assert_eq!(state, "filled");
}

#[test]
fn a_cancel_whose_answer_is_lost_is_checked_then_sent_at_most_once_more() {
    let env = Env::new();
    let place = env.write("place.yaml", PLACE);
    env.run(&place).assert().code(0);
    let ids: Vec<String> = ["bid-a", "bid-b", "bid-c", "eth-ask"]
        .iter()
        .map(|o| exchange_id(&env, "place-1", o))
        .collect();
    let f = env.write(
        "cancel.yaml",
        r#"version: 1
batch: cancel-3
cancels:
  - { id: c-a, order: place-1/bid-a }
  - { id: c-b, order: place-1/bid-b }
  - { id: c-c, order: place-1/bid-c }
  - { id: c-eth, order: place-1/eth-ask }
"#,
    );
    // Every request stalls past the client's timeout (half the DELETEs
    // act before the stall): no answer, and no status can be read.
    env.set_faults("stall=1,stall_for=2s", 5);
    let out = env.run(&f).args(["--timeout-ms", "300"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancel(s) not settled"));
    let unknown: i64 = env.one("SELECT count(*) FROM cancel_orders WHERE state = 'unknown'");
    assert_eq!(unknown, 4);
    let first = deletes(&env);
    assert_eq!(first, 4, "one DELETE per order, then status reads only");
    let acted_first = cancels_acted(&env).len();

    // The rerun reads each status first: those the exchange cancelled are
    // done with no second DELETE; only the others are sent again.
    env.set_faults("", 0);
    env.run(&f).assert().code(0);
    let acted = cancels_acted(&env);
    assert_eq!(acted.len(), 4, "{acted:?}");
    assert!(acted.values().all(|n| *n == 1), "{acted:?}");
    assert_eq!(deletes(&env) - first, (4 - acted_first) as i64);
    let st = statuses(&env);
    assert!(ids.iter().all(|id| st[id] == "cancelled"));
    let checked: i64 = env.one(
        "SELECT count(*) FROM cancel_events WHERE event IN ('checked_cancelled', 'checked_open')",
    );
    assert_eq!(checked, 4);

    // And once more: nothing.
    let n = deletes(&env);
    env.run(&f).assert().code(0);
    assert_eq!(deletes(&env), n);
}

#[test]
fn dropped_cancel_answers_are_found_cancelled() {
    let env = Env::new();
    let place = env.write("place.yaml", PLACE);
    env.run(&place).assert().code(0);
    env.set_faults("drop=1", 9);
    let f = env.write(
        "cancel.yaml",
        "version: 1\nbatch: cancel-4\ncancels:\n  - { id: clear, all_open: { pair: BTC-USDC } }\n",
    );
    env.run(&f).assert().code(0);
    env.set_faults("", 0);
    let acted = cancels_acted(&env);
    assert_eq!(acted.len(), 3);
    assert!(acted.values().all(|n| *n == 1));
    assert_eq!(deletes(&env), 3);
    assert_eq!(
        cancel_states(&env, "cancel-4"),
        vec![("clear".into(), "done".into()); 3]
    );
}

#[test]
fn plan_lists_each_cancel_and_counts_all_open_when_asked() {
    let env = Env::new();
    let place = env.write("place.yaml", PLACE);
    env.run(&place).assert().code(0);
    let f = env.write(
        "cancel.yaml",
        r#"version: 1
batch: cancel-5
orders:
  - { id: later, pair: SOL-USDC, side: buy, type: limit, quantity: "1", price: "10" }
cancels:
  - { id: drop-a, order: place-1/bid-a }
  - { id: drop-now, order: place-1/btc-now }
  - { id: drop-later, order: later }
  - { id: clear, all_open: { pair: BTC-USDC } }
"#,
    );
    let out = env.hqx().arg("plan").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let a = exchange_id(&env, "place-1", "bid-a");
    for line in [
        format!("  to send      drop-a           order place-1/bid-a (open: DELETE {a})"),
        "  not needed   drop-now         order place-1/btc-now (already filled)".into(),
        "  not needed   drop-later       order cancel-5/later (never sent: journaled as cancelled, no request)".into(),
        "  to send      clear            all open orders on BTC-USDC (resolved against the exchange at run time; `hqx plan --online` counts them now)".into(),
    ] {
        assert!(text.contains(&line), "{line}\nin\n{text}");
    }
    assert!(
        text.contains("4 cancel(s): 2 not needed, 2 to send"),
        "{text}"
    );
    let out = env
        .hqx()
        .args(["plan", "--online"])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("all open orders on BTC-USDC (3 order(s) open now)"),
        "{text}"
    );
    // Plan sent and wrote nothing.
    assert_eq!(deletes(&env), 0);
    let n: i64 = env.one("SELECT count(*) FROM cancels");
    assert_eq!(n, 0);

    env.run(&f).assert().code(0);
    let out = env.hqx().arg("plan").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "  done         drop-a           order place-1/bid-a ({a} done)"
        )),
        "{text}"
    );
    assert!(text.contains("4 cancel(s): 4 done"), "{text}");

    // The same cancel id with another target is refused, like a changed order.
    let changed = std::fs::read_to_string(&f)
        .unwrap()
        .replace("order: place-1/bid-a", "order: place-1/bid-b");
    std::fs::write(&f, changed).unwrap();
    let n = deletes(&env);
    let out = env.run(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cancel.yaml:6: cancel `drop-a` was journaled as `order: place-1/bid-a` but the file now says `order: place-1/bid-b`"), "{err}");
    assert_eq!(deletes(&env), n);
    let out = env.hqx().arg("plan").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("  CONFLICT ")
            && l.contains("cancel.yaml:6: cancel `drop-a` was journaled")),
        "{text}"
    );
}

#[test]
fn a_cancel_naming_an_order_the_journal_lacks_is_refused_before_anything() {
    let env = Env::new();
    let f = env.write(
        "cancel.yaml",
        "version: 1\nbatch: cancel-6\norders:\n  - { id: o, pair: BTC-USDC, side: buy, type: limit, quantity: \"1\", price: \"10\" }\ncancels:\n  - { id: c, order: nowhere/o }\n",
    );
    let out = env.run(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cancel.yaml:6: cancel `c` names order `o` of batch `nowhere`, which this journal does not hold"), "{err}");
    assert!(env.accepted().is_empty());
}

#[test]
fn a_cancel_of_an_unknown_order_waits_for_its_resolution() {
    let env = Env::new();
    let place = env.write("place.yaml", PLACE);
    env.run(&place).assert().code(0);
    let a = exchange_id(&env, "place-1", "bid-a");
    // As if bid-a's answer had been lost: the journal does not know it.
    env.db()
        .execute(
            "UPDATE orders SET state = 'unknown', exchange_order_id = NULL WHERE order_id = 'bid-a'",
            [],
        )
        .unwrap();
    let f = env.write(
        "cancel.yaml",
        "version: 1\nbatch: cancel-7\ncancels:\n  - { id: drop-a, order: place-1/bid-a }\n",
    );
    let out = env.run(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        cancel_states(&env, "cancel-7"),
        vec![("drop-a".into(), "waiting".into())]
    );
    assert_eq!(deletes(&env), 0);
    assert_eq!(statuses(&env)[&a], "open");

    // Its batch resolves it (found on the exchange); then the cancel goes.
    env.run(&place)
        .args(["--absent-grace-ms", "0"])
        .assert()
        .code(0);
    assert_eq!(exchange_id(&env, "place-1", "bid-a"), a);
    env.run(&f).assert().code(0);
    assert_eq!(
        cancel_states(&env, "cancel-7"),
        vec![("drop-a".into(), "done".into())]
    );
    assert_eq!(statuses(&env)[&a], "cancelled");
    assert_eq!(deletes(&env), 1);
    let ev: String = env.one(
        "SELECT group_concat(event, ',') FROM cancel_events WHERE cancel_id = 'drop-a' AND item = 0",
    );
    assert_eq!(ev, "expanded,wait,ready,send,acknowledged");
}
