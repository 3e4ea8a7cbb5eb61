//! `hqx run`: the whole path, reruns, conflicts, and `--sandbox`.

use crate::util::{batch_of, Env, QUICK};
use predicates::prelude::*;

#[test]
fn full_run_places_every_order_once_and_journals_everything() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("buy-1"))
        .stdout(predicate::str::contains("filled"));

    // What reached the exchange: exactly the three orders, bytes as written.
    let acc = env.accepted();
    assert_eq!(acc.len(), 3);
    let bodies: Vec<&str> = acc.iter().map(|a| a.received_body.as_str()).collect();
    assert!(bodies.contains(
        &r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00"}"#
    ));
    // Plain YAML scalars keep their text: 0.5 and 20000.10, not 0.50 or 20000.1.
    assert!(bodies.contains(
        &r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"0.5","price":"20000.10"}"#
    ));
    assert!(
        bodies.contains(&r#"{"pair":"ETH-USDC","type":"market","side":"sell","quantity":"1.5"}"#)
    );

    // The journal agrees order by order with the exchange.
    let orders = env.journal_orders();
    let state = |id: &str| orders.iter().find(|o| o.0 == id).unwrap().1.clone();
    assert_eq!(state("buy-1"), "filled");
    assert_eq!(state("rest-1"), "open");
    assert_eq!(state("sell-eth"), "filled");
    let mut ours: Vec<String> = orders.iter().map(|o| o.2.clone().unwrap()).collect();
    let mut theirs: Vec<String> = acc.iter().map(|a| a.id.clone()).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);

    // Trades, query results, event log and HTTP log are there.
    assert_eq!(env.one::<i64>("SELECT count(*) FROM trades"), 2);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM query_results WHERE ok = 1"),
        4
    );
    assert_eq!(
        env.one::<String>("SELECT group_concat(query_id) FROM (SELECT query_id FROM query_results ORDER BY query_id)"),
        "addr,fills,funds,open"
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'send'"),
        3
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log WHERE method = 'POST' AND path = '/trading/api/v1/order' AND status = 200"),
        3
    );
    assert_eq!(env.one::<i64>("SELECT exit_code FROM runs"), 0);
    // Intent journaled before the send: the `journaled` event precedes `send`.
    assert_eq!(
        env.one::<i64>(
            "SELECT count(*) FROM order_events a JOIN order_events b USING (batch_id, order_id)
             WHERE a.event = 'journaled' AND b.event = 'send' AND a.id < b.id"
        ),
        3
    );
}

#[test]
fn rerun_places_nothing_twice() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 3);
    env.run(&f).assert().code(0);
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 3, "a rerun sent an order again");
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'send'"),
        3
    );
    assert_eq!(env.one::<i64>("SELECT count(*) FROM runs"), 3);
    // Trades are upserted, not duplicated.
    assert_eq!(env.one::<i64>("SELECT count(*) FROM trades"), 2);
    env.hqx()
        .arg("plan")
        .arg(&f)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 to place, 3 already placed"));
}

#[test]
fn a_batch_grown_by_new_orders_sends_only_the_new_ones() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("grow", 3));
    env.run(&f).assert().code(0);
    let f = env.write("b.yaml", &batch_of("grow", 5));
    env.hqx()
        .arg("plan")
        .arg(&f)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("2 to place, 3 already placed"));
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 5);
}

#[test]
fn changed_order_under_the_same_id_is_a_conflict_and_nothing_is_sent() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    let changed = QUICK.replace("\"24321.00\"", "\"24321.50\"") + "";
    let changed = changed.replace("id: sell-eth", "id: sell-eth\n    # moved");
    let f = env.write("b.yaml", &changed);
    let more = changed.replace(
        "queries:",
        "  - { id: new-one, side: buy, quantity: \"1\", price: \"100\" }\nqueries:",
    );
    let f2 = env.write("b2.yaml", &more);
    for file in [&f, &f2] {
        env.run(file)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("buy-1"))
            .stderr(predicate::str::contains("24321.50"))
            .stderr(predicate::str::contains("new id"));
    }
    assert_eq!(env.accepted().len(), 3);
    assert_eq!(env.one::<i64>("SELECT count(*) FROM orders"), 3);
    env.hqx()
        .arg("plan")
        .arg(&f)
        .assert()
        .code(2)
        .stdout(predicate::str::contains("CONFLICT"));
}

#[test]
fn a_journal_bound_to_one_exchange_refuses_another() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    let other = Env::new();
    env.run(&f)
        .env("HQX_BASE_URL", other.base_url())
        .env("HAQQEX_PUBLIC_KEY", &other.api_key)
        .env("HAQQEX_PRIVATE_KEY", &other.secret)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("journaled against"));
    assert!(other.accepted().is_empty());
}

#[test]
fn a_real_exchange_needs_confirmation_and_a_refusal_writes_nothing() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    // Not loopback (TEST-NET-1): hqx must ask; with no terminal to ask on,
    // it refuses before creating the journal or sending anything.
    env.run(&f)
        .env("HQX_BASE_URL", "https://192.0.2.1")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --yes"));
    assert!(!env.journal_path().exists());
    assert!(env.accepted().is_empty());
}

#[test]
fn rejected_orders_exit_1_and_are_not_resent() {
    let env = Env::new();
    // 10,000,000 USDC of sandbox funds cannot buy 1,000,000 BTC.
    let f = env.write(
        "b.yaml",
        "version: 1\nbatch: poor\norders:\n  - { id: big, pair: BTC-USDC, side: buy, type: limit, quantity: \"1000000\", price: \"25000\" }\n  - { id: ok, pair: BTC-USDC, side: buy, type: limit, quantity: \"1\", price: \"25000\" }\n",
    );
    env.run(&f)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("rejected"));
    env.run(&f).assert().code(1);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log WHERE method = 'POST'"),
        2,
        "a rejected order was sent again"
    );
    assert_eq!(env.accepted().len(), 1);
    let err: String = env.one("SELECT last_error FROM orders WHERE order_id = 'big'");
    assert!(err.contains("422"), "{err}");
}

#[test]
fn sandbox_flag_runs_the_quickstart_with_no_keys_and_reruns_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.yaml");
    let hqx = || {
        let mut c = assert_cmd::Command::cargo_bin("hqx").unwrap();
        c.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["run", quickstart, "--sandbox", "--rate", "1000"]);
        c
    };
    hqx().assert().code(0);
    let db = rusqlite::Connection::open(dir.path().join("hqx.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let orders = count("SELECT count(*) FROM orders");
    assert!(orders >= 4);
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE state IN ('open', 'filled')"),
        orders
    );
    assert!(count("SELECT count(*) FROM trades") >= 2);
    assert!(count("SELECT count(*) FROM query_results WHERE ok = 1") >= 4);
    hqx().assert().code(0);
    assert_eq!(count("SELECT sum(attempts) FROM orders"), orders);
    assert_eq!(
        count("SELECT count(*) FROM http_log WHERE method = 'POST' AND path LIKE '%/order'"),
        orders
    );
    // The in-process exchange kept its state beside the journal: it holds
    // exactly one order per batch order.
    let state = std::fs::read_to_string(dir.path().join("hqx.db.sandbox.jsonl")).unwrap();
    assert!(!state.is_empty());
    // Its key pair is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(dir.path().join("hqx.db.sandbox-key.json")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

/// `hqx sandbox` as a user starts it: it prints its URL and key pair, serves
/// a venue profile's paths and client order ids, and `hqx run` with the
/// same profile places through it.
#[test]
fn the_standalone_sandbox_serves_a_venue_profile() {
    let dir = tempfile::tempdir().unwrap();
    let venue = dir.path().join("venue.yaml");
    std::fs::write(
        &venue,
        "client_order_id_field: clientOrderId\npaths: { my_orders: /trading/api/v2/orders/my }\n",
    )
    .unwrap();
    let (mut sandbox, vars) = standalone_sandbox(&["--venue".as_ref(), venue.as_os_str()]);
    let run = assert_cmd::Command::cargo_bin("hqx")
        .unwrap()
        .current_dir(dir.path())
        .env_clear()
        .envs(&vars)
        .args(["run", "--rate", "1000", "--venue"])
        .arg(&venue)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/quickstart.yaml"
        ))
        .output()
        .unwrap();
    let url = format!("{}/sandbox/orders", vars["HQX_BASE_URL"]);
    let accepted: Vec<hqx::sandbox::AcceptedOrder> = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    std::process::Command::new("kill")
        .args(["-INT", &sandbox.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(sandbox.wait().unwrap().code(), Some(0));
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(accepted.len(), 5);
    for o in &accepted {
        let cid = o.client_order_id.as_deref().expect("a client order id");
        assert!(o.received_body.contains(cid));
    }
}

/// Start `hqx sandbox` with `args`; its process and the variables it
/// printed (HQX_BASE_URL, HAQQEX_PUBLIC_KEY, HAQQEX_PRIVATE_KEY).
fn standalone_sandbox(
    args: &[&std::ffi::OsStr],
) -> (
    std::process::Child,
    std::collections::HashMap<String, String>,
) {
    use std::io::BufRead;
    let mut sandbox = std::process::Command::new(assert_cmd::cargo::cargo_bin("hqx"))
        .env_clear()
        .args(["sandbox", "--port", "0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sandbox.stdout.take().unwrap()).lines();
    let mut vars = std::collections::HashMap::new();
    while vars.len() < 3 {
        let line = lines
            .next()
            .expect("the sandbox printed its settings")
            .unwrap();
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("stdout holds only NAME=value lines: {line}"));
        vars.insert(k.to_string(), v.to_string());
    }
    (sandbox, vars)
}

#[test]
fn a_standalone_sandbox_with_a_state_file_keeps_its_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("exchange.jsonl");
    let stop = |mut c: std::process::Child| {
        std::process::Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(c.wait().unwrap().code(), Some(0));
    };
    let (first, a) = standalone_sandbox(&["--state".as_ref(), state.as_os_str()]);
    stop(first);
    let (second, b) = standalone_sandbox(&["--state".as_ref(), state.as_os_str()]);
    stop(second);
    assert_eq!(a["HAQQEX_PUBLIC_KEY"], b["HAQQEX_PUBLIC_KEY"]);
    assert_eq!(a["HAQQEX_PRIVATE_KEY"], b["HAQQEX_PRIVATE_KEY"]);
    let key_file = dir.path().join("exchange.jsonl.key.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Without a state file each start is a new account.
    let (third, c) = standalone_sandbox(&[]);
    stop(third);
    assert_ne!(a["HAQQEX_PUBLIC_KEY"], c["HAQQEX_PUBLIC_KEY"]);
}
