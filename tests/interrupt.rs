//! Ctrl-C: a run interrupted mid-batch stops placing, lets what is in
//! flight finish, journals it, exits 130; a rerun finishes the batch with
//! exactly one exchange order per batch order.

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::crash::assert_exactly_once;
use crate::util::{batch_of, Env};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `hqx run FILE` as a plain child process with its output captured, so
/// it can be sent a signal.
fn spawn(env: &Env, file: &std::path::Path, rate: &str) -> Child {
    env.run_process(file)
        .args(["--rate", rate, "--burst", "1", "--concurrency", "4"])
        .args(["--timeout-ms", "5000", "--absent-grace-ms", "50"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Poll the sandbox until it has accepted at least `target` orders; panics
/// if the child exits first (it finished before it could be interrupted).
fn wait_for_accepted(env: &Env, child: &mut Child, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("hqx exited ({status}) before the sandbox held {target} orders");
        }
        if env.accepted().len() >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox never reached {target} orders"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count(env: &Env, sql: &str) -> i64 {
    env.one(sql)
}

#[test]
fn ctrl_c_stops_placing_journals_what_was_in_flight_and_exits_130() {
    let env = Env::new();
    // Slow enough that the batch is far from done when Ctrl-C lands.
    env.set_faults("latency=30ms", 5);
    let n = 300;
    let f = env.write("b.yaml", &batch_of("intr", n));

    let mut child = spawn(&env, &f, "2000");
    wait_for_accepted(&env, &mut child, 20);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -INT failed");
    let out = child.wait_with_output().unwrap();
    let exited_ms = now_ms();
    let at_exit = env.accepted();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("interrupted"), "stderr:\n{stderr}");
    assert!(
        at_exit.len() < n,
        "every order was placed before Ctrl-C landed: nothing was interrupted"
    );

    // The journal: nothing left mid-request, nothing left unknown (the
    // requests in flight were answered well within their timeout), the
    // rest still pending, and the run recorded as interrupted.
    assert_eq!(
        count(&env, "SELECT count(*) FROM orders WHERE state = 'sending'"),
        0
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM orders WHERE state = 'unknown'"),
        0,
        "a request in flight at Ctrl-C was not waited for"
    );
    let pending = count(&env, "SELECT count(*) FROM orders WHERE state = 'pending'");
    let placed = count(
        &env,
        "SELECT count(*) FROM orders WHERE state IN ('open', 'filled') AND exchange_order_id IS NOT NULL",
    );
    assert!(pending > 0, "no order was left pending");
    assert_eq!(pending + placed, n as i64);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM orders WHERE state = 'pending' AND attempts > 0"
        ),
        0,
        "an order was sent but left pending"
    );
    assert_eq!(
        count(
            &env,
            "SELECT exit_code FROM runs WHERE command = 'run' ORDER BY id DESC LIMIT 1"
        ),
        130
    );

    // The journal and the exchange agree exactly: every journaled exchange
    // id is on the sandbox, and every sandbox order is journaled.
    let on_exchange: HashSet<String> = at_exit.iter().map(|a| a.id.clone()).collect();
    let journaled: HashSet<String> = env
        .journal_orders()
        .into_iter()
        .filter_map(|(_, _, xid)| xid)
        .collect();
    assert_eq!(journaled.len() as i64, placed);
    assert_eq!(
        journaled, on_exchange,
        "the journal and the exchange disagree after Ctrl-C"
    );

    // Nothing reached the exchange once hqx had exited: every order the
    // sandbox accepts from here on must come from the rerun.
    let rerun_started = now_ms();
    assert!(at_exit.iter().all(|a| a.created_at <= exited_ms));
    let out = env
        .run(&f)
        .args(["--timeout-ms", "5000", "--absent-grace-ms", "50"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "rerun: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let late: Vec<_> = env
        .accepted()
        .into_iter()
        .filter(|a| !on_exchange.contains(&a.id) && a.created_at < rerun_started)
        .collect();
    assert!(
        late.is_empty(),
        "accepted after hqx exited, before the rerun: {late:?}"
    );
    assert_exactly_once(&env, n);
    // The rerun sent only what was pending, each once, and found nothing
    // left mid-request.
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM http_log WHERE method = 'POST' AND run_id = (SELECT max(id) FROM runs)"
        ),
        pending
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM order_events WHERE event = 'recovered'"
        ),
        0
    );
}

/// Orders waiting for the rate limiter give way to Ctrl-C: at 2 requests/s,
/// the 290-odd orders still waiting would hold the run for minutes if each
/// had to get its slot before seeing the stop.
#[test]
fn ctrl_c_does_not_wait_for_the_rate_limit() {
    let env = Env::new();
    let n = 300;
    let f = env.write("b.yaml", &batch_of("slow", n));
    let mut child = spawn(&env, &f, "2");
    wait_for_accepted(&env, &mut child, 2);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    // A liveness bound, not a speed measurement: far above a prompt stop,
    // far below the ~150 s of draining the queue through the limiter.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running 60 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let placed = env.accepted().len();
    assert!(placed < n / 2, "{placed} orders placed after Ctrl-C");
    assert_eq!(
        count(&env, "SELECT count(*) FROM orders WHERE state = 'pending'") as usize,
        n - placed
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM orders WHERE state IN ('sending', 'unknown')"
        ),
        0
    );
}
