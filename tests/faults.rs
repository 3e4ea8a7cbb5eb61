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
