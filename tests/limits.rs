//! Pre-trade limits and key hygiene: every breach at once with its
//! position, nothing sent or written; the reference price from the ticker,
//! failing closed without it; stricter wins between batch and shared file;
//! the key-file rules.

use std::os::unix::fs::PermissionsExt as _;

use predicates::prelude::*;

use crate::util::Env;

/// Every rule breached once (the sandbox quotes BTC at 24000, ETH at 1600).
const BREACHES: &str = r#"version: 1
batch: fat-1
defaults: { pair: BTC-USDC, type: limit, side: buy }
limits:
  pairs: [BTC-USDC, ETH-USDC]
  max_order_notional: "50000"
  max_batch_notional: "60000"
  max_quantity: { BTC-USDC: "2" }
  price_band: "5%"
  market_slippage: "1%"
orders:
  - id: too-many
    quantity: "3"
    price: "10.00"
  - id: too-big
    quantity: "1.5"
    price: "40000"
  - id: off-band
    quantity: "0.01"
    price: "2400.00"
  - id: not-allowed
    pair: SOL-USDC
    quantity: "1"
    price: "20"
  - id: market-big
    pair: ETH-USDC
    type: market
    quantity: "31"
  - id: tips-batch
    quantity: "1"
    price: "24000"
"#;

/// `file:line:column: orders[i] (id).field` as hqx prints it.
fn at(file: &str, line: u32, column: u32, order: &str) -> String {
    format!("{file}:{line}:{column}: {order}")
}

#[test]
fn every_limit_breached_at_once_each_with_its_line_and_column() {
    let env = Env::new();
    let f = env.write("fat.yaml", BREACHES);
    let path = f.display().to_string();

    // validate: what needs no price.
    let out = env.hqx().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for (line, col, what, text) in [
        (
            13,
            15,
            "orders[0] (too-many).quantity",
            "above max_quantity 2",
        ),
        (
            16,
            15,
            "orders[1] (too-big).quantity",
            "notional 60000 USDC",
        ),
        (
            16,
            15,
            "orders[1] (too-big).quantity",
            "above max_batch_notional 60000",
        ),
        (
            22,
            11,
            "orders[3] (not-allowed).pair",
            "not an allowed pair",
        ),
    ] {
        let expect = format!("{}: {text}", at(&path, line, col, what));
        assert!(
            err.lines().any(|l| l
                .trim_start_matches("hqx: ")
                .starts_with(&at(&path, line, col, what))
                && l.contains(text)),
            "missing `{expect}` in:\n{err}"
        );
    }
    assert!(err.contains("4 errors in"), "{err}");
    assert!(!err.contains("price_band"), "validate has no price: {err}");

    // plan and run: the price band and the market order too, from the ticker.
    for cmd in ["plan", "run"] {
        let mut c = if cmd == "run" { env.run(&f) } else { env.hqx() };
        if cmd == "plan" {
            c.arg("plan").arg(&f);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        for (line, col, what, text) in [
            (
                13,
                15,
                "orders[0] (too-many).quantity",
                "above max_quantity 2",
            ),
            (
                14,
                12,
                "orders[0] (too-many).price",
                "99.96% below the reference price 24000",
            ),
            (
                16,
                15,
                "orders[1] (too-big).quantity",
                "above max_order_notional 50000",
            ),
            (
                16,
                15,
                "orders[1] (too-big).quantity",
                "above max_batch_notional 60000",
            ),
            (17, 12, "orders[1] (too-big).price", "allows 22800 to 25200"),
            (20, 12, "orders[2] (off-band).price", "90% below"),
            (
                22,
                11,
                "orders[3] (not-allowed).pair",
                "allows only BTC-USDC, ETH-USDC",
            ),
            // 31 x 1600 x 1.01 = 50096.
            (
                28,
                15,
                "orders[4] (market-big).quantity",
                "notional 50096 USDC (quantity 31 x reference price 1600 + market_slippage 1%)",
            ),
        ] {
            assert!(
                err.lines().any(|l| l
                    .trim_start_matches("hqx: ")
                    .starts_with(&at(&path, line, col, what))
                    && l.contains(text)),
                "{cmd}: missing {line}:{col} {what}: {text} in:\n{err}"
            );
        }
        assert!(err.contains("8 errors in"), "{cmd}: {err}");
        assert!(err.contains("nothing was sent or written"), "{err}");
    }
    assert!(env.accepted().is_empty());
    assert!(
        !env.journal_path().exists(),
        "a refused batch wrote the journal"
    );
}

#[test]
fn a_shared_limits_file_is_merged_stricter_wins_and_its_errors_point_into_it() {
    let env = Env::new();
    let f = env.write(
        "b.yaml",
        "version: 1\nbatch: shared-1\ndefaults: { pair: BTC-USDC, type: limit, side: buy }\nlimits: { max_order_notional: \"100000\" }\norders:\n  - id: a\n    quantity: \"1\"\n    price: \"24000\"\n",
    );
    // The file's 20000 is stricter than the batch's 100000: it wins.
    let lim = env.write(
        "limits.yaml",
        "# desk limits\nmax_order_notional: \"20000\"\n",
    );
    env.hqx()
        .arg("validate")
        .arg(&f)
        .env("HQX_LIMITS", &lim)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:7:15: orders[0] (a).quantity: notional 24000 USDC",
            f.display()
        )))
        .stderr(predicate::str::contains(format!(
            "max_order_notional 20000 (set at {}:2:21)",
            lim.display()
        )));
    // A looser file leaves the batch's own rule in force.
    let loose = env.write("loose.yaml", "max_order_notional: \"1000000\"\n");
    env.hqx()
        .arg("validate")
        .arg(&f)
        .arg("--limits")
        .arg(&loose)
        .assert()
        .code(0);
    // A broken limits file: its own line and column, exit 2, nothing run.
    let bad = env.write(
        "bad.yaml",
        "pairs: [BTC-USDC]\nmax_order_notionl: \"5\"\nprice_band: \"5\"\n",
    );
    env.run(&f)
        .arg("--limits")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:2:1: max_order_notionl: unknown field",
            bad.display()
        )))
        .stderr(predicate::str::contains(format!(
            "{}:3:13: price_band: `price_band` is a percentage and must end in `%`",
            bad.display()
        )));
    assert!(env.accepted().is_empty());
    assert!(!env.journal_path().exists());
}

#[test]
fn without_a_reference_price_a_price_band_fails_closed() {
    let env = Env::new();
    let f = env.write(
        "b.yaml",
        "version: 1\nbatch: band-1\ndefaults: { pair: BTC-USDC, type: limit, side: buy }\nlimits: { price_band: \"5%\" }\norders:\n  - id: a\n    quantity: \"0.1\"\n    price: \"24000\"\n",
    );
    // The sandbox serves the ticker at the default path: 404 here.
    let venue = env.write(
        "venue.yaml",
        "paths: { ticker: /trading/api/v1/no-ticker }\n",
    );
    env.run(&f)
        .arg("--venue")
        .arg(&venue)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:8:12: orders[0] (a).price: no reference price for BTC-USDC: GET /trading/api/v1/no-ticker?pair=BTC-USDC answered HTTP 404",
            f.display()
        )))
        .stderr(predicate::str::contains("fail closed"))
        .stderr(predicate::str::contains("paths.ticker"));
    assert!(env.accepted().is_empty());
    assert!(!env.journal_path().exists());
    // With the ticker where the sandbox serves it, the same batch runs and
    // the ticker request is journaled with the run.
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 1);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log WHERE path = '/trading/api/v1/ticker?pair=BTC-USDC' AND status = 200 AND run_id IS NOT NULL"),
        1
    );
}

#[test]
fn batch_notional_counts_only_orders_not_yet_placed() {
    let env = Env::new();
    let two = "version: 1\nbatch: sum-1\ndefaults: { pair: BTC-USDC, type: limit, side: buy }\nlimits: { max_batch_notional: \"30000\" }\norders:\n  - { id: a, quantity: \"0.5\", price: \"24100\" }\n  - { id: b, quantity: \"0.5\", price: \"24100\" }\n";
    let f = env.write("b.yaml", two);
    env.run(&f).assert().code(0);
    // A third order: 12050 new, under 30000; the two placed ones no longer count.
    let three = format!("{two}  - {{ id: c, quantity: \"0.5\", price: \"24100\" }}\n");
    std::fs::write(&f, &three).unwrap();
    env.hqx()
        .arg("plan")
        .arg(&f)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("to place"));
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 3);
    // validate has no journal: it counts all three (36150).
    env.hqx()
        .arg("validate")
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "total 36150 USDC, above max_batch_notional 30000",
        ));
}

fn key_file(env: &Env, name: &str, expired_at: &str, mode: u32) -> std::path::PathBuf {
    let p = env.write(
        name,
        &format!(
            r#"{{"apiKey":"{}","secretKey":"{}","ips":["203.0.113.7"],"title":"t","createdAt":"2026-01-01T00:00:00Z","expiredAt":"{expired_at}"}}"#,
            env.api_key, env.secret
        ),
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn a_key_file_others_may_read_is_refused_saying_which_chmod() {
    let env = Env::new();
    let f = env.write("b.yaml", &crate::util::batch_of("key-1", 1));
    let key = key_file(&env, "key.json", "2999-01-01T00:00:00Z", 0o644);
    for cmd in ["run", "reconcile"] {
        let mut c = env.hqx();
        if cmd == "run" {
            c.arg("run").arg(&f);
        } else {
            c.arg("reconcile");
        }
        c.arg("--key-file")
            .arg(&key)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "chmod 600 {}",
                key.display()
            )))
            .stderr(predicate::str::contains("mode 644"))
            .stderr(predicate::str::contains(&env.secret).not());
    }
    assert!(env.accepted().is_empty());
    assert!(!env.journal_path().exists());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.run(&f).arg("--key-file").arg(&key).assert().code(0);
    assert_eq!(env.accepted().len(), 1);
}

#[test]
fn a_key_expiring_within_7_days_warns_on_every_run_and_reconcile() {
    let env = Env::new();
    let f = env.write("b.yaml", &crate::util::batch_of("exp-1", 1));
    // Three days and a half from now, to the second.
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(84 * 3600);
    let at = at.replace_nanosecond(0).unwrap();
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let shown = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let key = key_file(&env, "key.json", &text, 0o600);
    for args in [&["run"][..], &["run"], &["reconcile"]] {
        let mut c = env.hqx();
        c.args(args);
        if args[0] == "run" {
            c.arg(&f);
        }
        c.arg("--key-file")
            .arg(&key)
            .assert()
            .code(0)
            .stderr(predicate::str::contains(format!(
                "warning: API key {} expires at {shown} (in 3 day(s) 11 hour(s))",
                env.api_key
            )))
            .stderr(predicate::str::contains(&env.secret).not());
    }
    // A key good for longer says nothing.
    let later = key_file(&env, "later.json", "2999-01-01T00:00:00Z", 0o600);
    env.run(&f)
        .arg("--key-file")
        .arg(&later)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("expires").not());
}
