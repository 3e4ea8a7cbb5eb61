//! Orders whose outcome is unknown and cannot be resolved: `hqx run` stops
//! (exit 3) naming them, and `hqx resolve` settles them by hand, journaled.

use rusqlite::types::Value;

use crate::crash::assert_exactly_once;
use crate::util::{batch_of, Env, QUICK};

/// Every row of `orders`, `order_events` and `runs`, to show that a refused
/// command changed nothing.
fn journal_snapshot(env: &Env) -> Vec<Vec<Value>> {
    let db = env.db();
    let mut all = Vec::new();
    for sql in [
        "SELECT * FROM orders ORDER BY batch_id, seq",
        "SELECT * FROM order_events ORDER BY id",
        "SELECT * FROM runs ORDER BY id",
    ] {
        let mut st = db.prepare(sql).unwrap();
        let cols = st.column_count();
        let rows = st
            .query_map([], |r| (0..cols).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .map(Result::unwrap);
        all.extend(rows);
    }
    all
}

/// (state, exchange order id, attempts) of one order.
fn order(env: &Env, batch: &str, id: &str) -> (String, Option<String>, i64) {
    env.db()
        .query_row(
            "SELECT state, exchange_order_id, attempts FROM orders WHERE batch_id = ?1 AND order_id = ?2",
            [batch, id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// (event, from, to, command of its run) of every event of one order.
fn events(env: &Env, id: &str) -> Vec<(String, String, String, String)> {
    let db = env.db();
    let mut st = db
        .prepare(
            "SELECT e.event, e.from_state, e.to_state, r.command FROM order_events e
             JOIN runs r ON r.id = e.run_id WHERE e.order_id = ?1 ORDER BY e.id",
        )
        .unwrap();
    st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn ev(event: &str, from: &str, to: &str, command: &str) -> (String, String, String, String) {
    (event.into(), from.into(), to.into(), command.into())
}

#[test]
fn unresolvable_orders_exit_3_then_resolve_by_hand_and_rerun_places_each_once() {
    let env = Env::new();
    // Every request either fails with a 5xx having done nothing, or, for a
    // placement, is committed and its answer lost: every order ends
    // `unknown`. With this seed, 3 of the 6 placements are committed and
    // then every try of the listing that would resolve them fails with a
    // 5xx (each request takes the same number of fault draws, so the
    // sequence does not depend on which order goes first).
    env.set_faults("error5xx=0.5,drop=1", 425);
    let n = 6;
    let f = env.write("b.yaml", &batch_of("unres", n));
    let out = env
        .run(&f)
        .args(["--timeout-ms", "500", "--absent-grace-ms", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");

    let accepted = env.accepted();
    assert!(
        !accepted.is_empty() && accepted.len() < n,
        "the faults should commit some placements but not all (got {}); pick another seed",
        accepted.len()
    );
    // Every order is unknown, and the message names each one and says
    // what to do.
    let named: Vec<&str> = stderr
        .lines()
        .find_map(|l| l.split_once("could not prove: "))
        .and_then(|(_, rest)| rest.split_once(". "))
        .map(|(list, _)| list.split(", ").collect())
        .unwrap_or_else(|| panic!("no order named:\n{stderr}"));
    let journal = env.journal_orders();
    assert_eq!(named.len(), journal.len(), "{stderr}");
    for (id, state, xid) in &journal {
        assert_eq!((state.as_str(), xid), ("unknown", &None), "{id}");
        assert!(named.contains(&id.as_str()), "{id} not named:\n{stderr}");
    }
    assert!(
        stderr.contains("hqx resolve unres ORDER --as placed|absent"),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing more was sent"), "{stderr}");
    // Nothing more was sent: one placement per order, no second try, and
    // the listing that would have resolved them failed.
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log WHERE method = 'POST'"),
        n as i64
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE attempts = 1"),
        n as i64
    );
    assert_eq!(
        env.one::<i64>(
            "SELECT count(*) FROM http_log WHERE path LIKE '%/orders/my%' AND (status IS NULL OR status < 500)"
        ),
        0
    );
    assert!(env.one::<i64>("SELECT count(*) FROM http_log WHERE path LIKE '%/orders/my%'") > 0);

    // One order that is on the exchange, found by its quantity (each
    // batch order has its own), and one that is not.
    let db = env.db();
    let order_of = |quantity: &str| -> String {
        db.query_row(
            "SELECT order_id FROM orders WHERE quantity = ?1",
            [quantity],
            |r| r.get(0),
        )
        .unwrap()
    };
    let on_exchange = &accepted[0];
    let placed_id = order_of(&on_exchange.quantity);
    let absent_id = (0..n)
        .map(|i| format!("o{i}"))
        .find(|id| {
            let q: String = db
                .query_row(
                    "SELECT quantity FROM orders WHERE order_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            accepted.iter().all(|a| a.quantity != q)
        })
        .unwrap();

    env.hqx()
        .args(["resolve", "unres", &placed_id, "--as", "placed"])
        .args(["--exchange-id", &on_exchange.id])
        .assert()
        .success()
        .stdout(predicates::str::contains("unknown -> open"));
    env.hqx()
        .args(["resolve", "unres", &absent_id, "--as", "absent"])
        .assert()
        .success()
        .stdout(predicates::str::contains("unknown -> pending"));
    assert_eq!(
        order(&env, "unres", &placed_id),
        ("open".into(), Some(on_exchange.id.clone()), 1)
    );
    assert_eq!(
        order(&env, "unres", &absent_id),
        ("pending".into(), None, 1)
    );
    assert_eq!(
        events(&env, &placed_id).last(),
        Some(&ev("declared_placed", "unknown", "open", "resolve"))
    );
    assert_eq!(
        events(&env, &absent_id).last(),
        Some(&ev("declared_absent", "unknown", "pending", "resolve"))
    );
    assert_eq!(
        env.one::<i64>(
            "SELECT count(*) FROM runs WHERE command = 'resolve' AND exit_code = 0 AND finished_ms IS NOT NULL"
        ),
        2
    );
    // Resolving is bookkeeping only: nothing was sent.
    assert_eq!(env.accepted().len(), accepted.len());
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log"),
        env.one::<i64>("SELECT count(*) FROM http_log WHERE run_id IN (SELECT id FROM runs WHERE command = 'run')")
    );

    // A settled order cannot be settled again.
    let before = journal_snapshot(&env);
    // And a verdict must be whole: `placed` names the exchange order, which
    // no other journal order may already hold; `absent` names none.
    let other = (0..n)
        .map(|i| format!("o{i}"))
        .find(|id| *id != placed_id && *id != absent_id)
        .unwrap();
    for (args, says) in [
        (vec!["--as", "placed"], "needs --exchange-id"),
        (
            vec!["--as", "absent", "--exchange-id", "O1"],
            "goes with --as placed",
        ),
        (
            vec!["--as", "placed", "--exchange-id", on_exchange.id.as_str()],
            "already belongs to another journal order",
        ),
    ] {
        env.hqx()
            .args(["resolve", "unres", &other])
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(says));
    }
    assert_eq!(journal_snapshot(&env), before);
    env.hqx()
        .args(["resolve", "unres", &placed_id, "--as", "absent"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(format!(
            "order `{placed_id}` is `open`, not `unknown`"
        )));
    assert_eq!(journal_snapshot(&env), before);

    // The exchange answers again: the rest are resolved against it, the
    // absent ones are sent, and each batch order is on it exactly once.
    env.set_faults("", 0);
    let out = env
        .run(&f)
        .args(["--timeout-ms", "500", "--absent-grace-ms", "0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&env, n);
    assert_eq!(
        order(&env, "unres", &placed_id).1,
        Some(on_exchange.id.clone())
    );
    assert_eq!(
        order(&env, "unres", &placed_id).2,
        1,
        "a placed order was resent"
    );
    assert_eq!(order(&env, "unres", &absent_id).2, 2);
    // The other orders on the exchange were found by the rerun; the others
    // proven absent and sent once more.
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'found'"),
        accepted.len() as i64 - 1
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'proven_absent'"),
        (n - accepted.len()) as i64 - 1
    );
}

#[test]
fn resolve_refuses_an_order_that_is_not_unknown_and_changes_nothing() {
    let env = Env::new();
    let f = env.write("q.yaml", QUICK);
    env.run(&f).assert().success();
    let before = journal_snapshot(&env);
    let accepted = env.accepted().len();

    for (order, outcome, state) in [
        ("buy-1", "absent", "filled"),
        ("buy-1", "placed", "filled"),
        ("rest-1", "absent", "open"),
        ("rest-1", "placed", "open"),
    ] {
        let out = env
            .hqx()
            .args(["resolve", "quick-1", order, "--as", outcome])
            .args(["--exchange-id", "O9999999999"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{order} {outcome}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "order `{order}` is `{state}`, not `unknown`: there is nothing to resolve"
            )),
            "{order} {outcome}: {stderr}"
        );
    }
    // Orders and batches that do not exist are refused the same way.
    env.hqx()
        .args(["resolve", "quick-1", "nope", "--as", "absent"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "batch `quick-1` has no order `nope`",
        ));
    env.hqx()
        .args(["resolve", "no-such-batch", "buy-1", "--as", "absent"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "batch `no-such-batch` has no order `buy-1`",
        ));

    assert_eq!(
        journal_snapshot(&env),
        before,
        "a refused resolve changed the journal"
    );
    assert_eq!(env.accepted().len(), accepted);
}
