//! Exactly-once under kill -9: a run is killed at many points across a
//! batch, then rerun until it finishes; the exchange must hold exactly one
//! order per batch order and the journal must agree order by order.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{batch_of, Env};

/// Spawn `hqx run` as a plain child process (so it can be killed).
fn spawn(env: &Env, file: &std::path::Path, extra: &[&str]) -> Child {
    env.run_process(file)
        .args([
            "--rate",
            "5000",
            "--concurrency",
            "4",
            "--absent-grace-ms",
            "50",
            "--timeout-ms",
            "500",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until the exchange holds `target` orders or the child exits, then
/// kill -9 it. Returns whether it was killed (rather than finished).
fn kill_at(env: &Env, child: &mut Child, target: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if env.sandbox().accepted_orders().len() >= target || Instant::now() > deadline {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        std::thread::yield_now();
    }
}

/// The exchange holds exactly one order per batch order, with the body the
/// journal holds, and the journal's exchange ids are exactly the exchange's.
pub fn assert_exactly_once(env: &Env, n: usize) {
    let accepted = env.sandbox().accepted_orders();
    let db = env.db();
    let mut st = db
        .prepare("SELECT order_id, state, exchange_order_id, body FROM orders")
        .unwrap();
    let rows: Vec<(String, String, Option<String>, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), n);
    let by_id: HashMap<&str, &str> = accepted
        .iter()
        .map(|a| (a.id.as_str(), a.received_body.as_str()))
        .collect();
    let mut seen = HashSet::new();
    for (order, state, xid, body) in &rows {
        assert!(
            matches!(state.as_str(), "open" | "filled"),
            "{order} ended {state}"
        );
        let xid = xid
            .as_deref()
            .unwrap_or_else(|| panic!("{order} has no exchange id"));
        assert_eq!(by_id.get(xid), Some(&body.as_str()), "{order} -> {xid}");
        assert!(seen.insert(xid), "{xid} adopted twice");
    }
    let duplicates = accepted.len() as i64 - n as i64;
    assert_eq!(
        duplicates,
        0,
        "the exchange holds {} orders for {n}",
        accepted.len()
    );
}

#[test]
fn kill_9_at_dozens_of_points_then_rerun_places_each_order_exactly_once() {
    let env = Env::new();
    env.set_faults("latency=1ms", 1);
    let n = 150;
    let f = env.write("b.yaml", &batch_of("crash", n));
    let mut kills = 0;
    let mut target = 1;
    while target < n {
        let mut child = spawn(&env, &f, &[]);
        if kill_at(&env, &mut child, target) {
            kills += 1;
        }
        target += 5;
    }
    assert!(kills >= 20, "only {kills} kill points landed");
    // Rerun until it finishes (unknown orders are resolved first).
    let mut code = None;
    for _ in 0..5 {
        let status = spawn(&env, &f, &[]).wait().unwrap();
        code = status.code();
        if code == Some(0) {
            break;
        }
    }
    assert_eq!(code, Some(0));
    assert_exactly_once(&env, n);
    // Some kills landed between `sending` and the answer: those orders went
    // through `unknown` and were resolved, not resent blindly.
    let recovered: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'recovered'");
    let found: i64 = env.one("SELECT count(*) FROM order_events WHERE event = 'found'");
    assert!(recovered > 0, "no kill landed mid-request");
    assert!(
        found + env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'proven_absent'")
            >= recovered
    );
}

/// An order killed mid-request by a run with a long timeout is not called
/// absent by a later run with a short one before the first run's request
/// could have ended: the wait comes from the journaled deadline.
#[test]
fn a_later_run_waits_out_the_deadline_the_sending_run_journaled() {
    let env = Env::new();
    // Every request hangs; placements commit before hanging or not at all.
    env.set_faults("stall=1,stall_for=60s", 2);
    let f = env.write("b.yaml", &batch_of("deadline", 4));
    let mut first = env
        .run_process(&f)
        .args(["--rate", "5000", "--timeout-ms", "3000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        kill_at(&env, &mut first, 1),
        "the first run ended by itself"
    );
    env.set_faults("", 0);
    let out = env
        .run(&f)
        .args(["-v", "--timeout-ms", "100", "--absent-grace-ms", "50"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The first run's requests could last until ~3 s after they were sent;
    // the second run's own 100 + 50 ms would have listed at once.
    let waited: i64 = stderr
        .split("waiting ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait before resolving: {stderr}"));
    assert!(waited > 1_000, "waited only {waited} ms: {stderr}");
    assert_exactly_once(&env, 4);
}
