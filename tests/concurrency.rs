//! Concurrent runs on one journal: the same batch twice (one proceeds, the
//! other is told the batch is busy), and two different batches at once
//! (both proceed; SQLite serialises their writes).

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::util::{batch_of, Env};

/// `hqx run FILE` as a plain child, throttled so it is still running while
/// the test acts.
fn spawn_slow(env: &Env, file: &std::path::Path) -> Child {
    env.run_process(file)
        .args(["--rate", "20", "--burst", "1", "--concurrency", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until the exchange has accepted at least one order: by then the
/// child holds its batch's lock (taken before anything is sent).
fn wait_first_order(env: &Env, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.sandbox().accepted_orders().is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no order reached the sandbox");
        std::thread::yield_now();
    }
}

/// Per batch id: how many sandbox orders carry each journal order's body,
/// checked to be exactly one each.
fn assert_each_once(env: &Env, batch: &str, n: usize) {
    let db = env.db();
    let mut st = db
        .prepare("SELECT body, state, exchange_order_id FROM orders WHERE batch_id = ?1")
        .unwrap();
    let rows: Vec<(String, String, Option<String>)> = st
        .query_map([batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), n, "journal orders of {batch}");
    let accepted = env.accepted();
    let mut by_id: HashMap<&str, &str> = HashMap::new();
    for o in &accepted {
        by_id.insert(o.id.as_str(), o.received_body.as_str());
    }
    for (body, state, xid) in &rows {
        assert!(state == "filled" || state == "open", "{batch}: {state}");
        let xid = xid.as_deref().expect("an exchange id");
        assert_eq!(by_id.get(xid), Some(&body.as_str()), "{batch}: {xid}");
        let copies = accepted.iter().filter(|o| o.received_body == *body).count();
        assert_eq!(
            copies, 1,
            "{batch}: {body} reached the exchange {copies} times"
        );
    }
}

#[test]
fn a_second_concurrent_run_of_the_same_batch_is_busy_and_nothing_is_duplicated() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("same", 30));
    let mut first = spawn_slow(&env, &f);
    wait_first_order(&env, &mut first);
    let runs_before: i64 = env.one("SELECT count(*) FROM runs");
    env.run(&f)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("busy"));
    // The busy run wrote nothing.
    assert_eq!(env.one::<i64>("SELECT count(*) FROM runs"), runs_before);
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.accepted().len(), 30);
    assert_each_once(&env, "same", 30);
    // And with the first run gone, the batch is free again: nothing to send.
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 30);
}

#[test]
fn different_batches_run_at_the_same_time_on_one_journal() {
    let env = Env::new();
    let a = env.write("a.yaml", &batch_of("batch-a", 30));
    let b = env.write("b.yaml", &batch_of("batch-b", 30));
    let mut first = spawn_slow(&env, &a);
    wait_first_order(&env, &mut first);
    // The second batch is not held up by the first one's lock.
    env.run(&b).assert().code(0);
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both batches have the same order bodies, so count per batch through
    // the journal's exchange ids: 60 orders, each journal order its own.
    let accepted = env.accepted();
    assert_eq!(accepted.len(), 60);
    let ids: std::collections::HashSet<String> = env
        .journal_orders()
        .into_iter()
        .map(|(_, _, x)| x.expect("every order placed"))
        .collect();
    assert_eq!(ids.len(), 60, "no exchange order adopted twice");
    for o in &accepted {
        assert!(ids.contains(&o.id), "{} unknown to the journal", o.id);
    }
}
