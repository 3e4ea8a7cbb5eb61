//! Invalid input: exit 2, every error with file, line and field, nothing
//! sent, nothing written.

use crate::util::Env;
use predicates::prelude::*;

const BAD: &str = r#"version: 1
batch: bad-1
orders:
  - id: a
    pair: BTC-USDC
    side: hold
    type: limit
    quantity: "2"
    price: "24321.00"
  - id: b
    pair: BTC-USDC
    side: buy
    type: market
    quantity: "1"
    price: "10"
  - id: a
    pair: btc
    side: sell
    type: limit
    quantity: "-1"
"#;

#[test]
fn invalid_batch_reports_all_errors_and_sends_and_writes_nothing() {
    let env = Env::new();
    let f = env.write("bad.yaml", BAD);
    for cmd in ["validate", "plan", "run"] {
        let mut c = if cmd == "run" { env.run(&f) } else { env.hqx() };
        if cmd != "run" {
            c.arg(cmd).arg(&f);
        }
        c.assert()
            .code(2)
            .stderr(predicate::str::contains("bad.yaml:6:"))
            .stderr(predicate::str::contains("side"))
            .stderr(predicate::str::contains("bad.yaml:15:"))
            .stderr(predicate::str::contains("price"))
            .stderr(predicate::str::contains("bad.yaml:16:"))
            .stderr(predicate::str::contains("pair"))
            .stderr(predicate::str::contains("quantity"))
            .stderr(predicate::str::contains("nothing was sent or written"));
    }
    assert!(env.accepted().is_empty());
    assert!(
        !env.journal_path().exists(),
        "an invalid batch created the journal"
    );
}

#[test]
fn validate_accepts_the_examples() {
    let env = Env::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    env.hqx()
        .arg("validate")
        .arg(format!("{dir}/quickstart.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("is valid"));
    env.hqx()
        .arg("validate")
        .arg(format!("{dir}/invalid.yaml"))
        .assert()
        .code(2);
    // The fat fingers are stopped by the batch's limits, offline.
    env.hqx()
        .arg("validate")
        .arg(format!("{dir}/fat-finger.yaml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "fat-finger.yaml:23:15: orders[0] (btc-buy).quantity: quantity 25 is above max_quantity 2",
        ))
        .stderr(predicate::str::contains(
            "fat-finger.yaml:33:11: orders[2] (doge-buy).pair: DOGE-USDC is not an allowed pair",
        ));
    assert!(!env.journal_path().exists());
}

#[test]
fn missing_file_is_a_usage_error() {
    let env = Env::new();
    env.hqx()
        .args(["run", "nope.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.yaml"));
    assert!(!env.journal_path().exists());
}
