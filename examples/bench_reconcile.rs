//! What a scheduled `hqx reconcile` costs on a big account: the real
//! binary against the sandbox on loopback, with an account that already
//! has `--trades` (default 100,000) journaled trades and then gets `--new`
//! (default 1,000) more.
//!
//! Steps, each printed with its wall time, hqx's CPU time and the requests
//! it made (from the journal's `http_log`):
//! 1. `hqx run` places `--orders` resting buys (journaled orders);
//! 2. the sandbox fills them in `--trades` partial fills (in-process, no
//!    HTTP), and a first reconcile journals them all;
//! 3. `--new` more fills, then the reconcile being measured;
//! 4. a reconcile with nothing new: it must cost at most one trade request
//!    per pair (one here: the sandbox lists every pair at once).
//!
//! Reconciles run at `--rate` requests/s (default: unlimited, so only
//! hqx's and the sandbox's own cost count); the venue's default of 5/s
//! adds about (requests - 5) / 5 seconds.
//!
//! `scripts/bench-reconcile` builds in release mode and runs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use hqx::sandbox::{Control, Sandbox, SandboxConfig};

struct Step {
    secs: f64,
    cpu_secs: f64,
    requests: i64,
    trade_requests: i64,
    exit: i32,
    summary: String,
}

fn main() {
    let mut hqx = "target/release/hqx".to_string();
    let mut orders = 200usize;
    let mut trades = 100_000usize;
    let mut new = 1_000usize;
    let mut rate = "1000000".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hqx" => hqx = v,
            "--orders" => orders = v.parse().unwrap(),
            "--trades" => trades = v.parse().unwrap(),
            "--new" => new = v.parse().unwrap(),
            "--rate" => rate = v,
            _ => panic!("unknown argument {k}"),
        }
    }
    assert!(orders > 0 && trades + new <= orders * 1000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = hqx::sandbox::generate_credentials();
    let cfg = SandboxConfig::new(key.clone(), secret.clone());
    let sb = rt
        .block_on(Sandbox::start(cfg, ([127, 0, 0, 1], 0).into()))
        .unwrap();
    let journal = dir.path().join("hqx.db");
    let hqx_cmd = |args: &[&str]| {
        let mut c = Command::new(&hqx);
        c.env("HQX_JOURNAL", &journal)
            .env("HQX_BASE_URL", sb.base_url())
            .env("HAQQEX_PUBLIC_KEY", &key)
            .env("HAQQEX_PRIVATE_KEY", secret.expose())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };

    // 1. Resting buys of 1000 SOL at 1 USDC: each takes up to 1000 fills of 1.
    let mut text = String::from("version: 1\nbatch: bench-reconcile\norders:\n");
    for i in 0..orders {
        text.push_str(&format!(
            "  - {{ id: o{i}, pair: SOL-USDC, side: buy, type: limit, quantity: \"1000\", price: \"1\" }}\n"
        ));
    }
    let file = dir.path().join("batch.yaml");
    std::fs::write(&file, text).unwrap();
    let run = timed(
        hqx_cmd(&["run", file.to_str().unwrap(), "--rate", "1000000"]),
        &journal,
        "run",
    );
    assert_eq!(run.exit, 0, "hqx run failed");
    let ids: Vec<String> = sb.accepted_orders().into_iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), orders);

    let mut next = 0usize;
    let mut fill = |n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            let id = &ids[next / 1000];
            next += 1;
            sb.control(Control::Fill {
                order_id: id.clone(),
                quantity: Some("1".into()),
            })
            .unwrap();
        }
        t.elapsed().as_secs_f64()
    };

    // 2. The history, and a first reconcile that journals it.
    let made = fill(trades);
    println!("sandbox: {trades} fills made in {made:.1} s");
    let reconcile = ["reconcile", "--rate", rate.as_str(), "--burst", "50"];
    let first = timed(hqx_cmd(&reconcile), &journal, "reconcile");
    report("first reconcile (whole history)", &first);
    assert_eq!(first.exit, 0, "{}", first.summary);

    // 3. The measured one.
    fill(new);
    let measured = timed(hqx_cmd(&reconcile), &journal, "reconcile");
    report(
        &format!("reconcile of {new} new trade(s) over {trades} journaled"),
        &measured,
    );
    assert_eq!(measured.exit, 0, "{}", measured.summary);

    // 4. Nothing new.
    let quiet = timed(hqx_cmd(&reconcile), &journal, "reconcile");
    report("reconcile with nothing new", &quiet);
    assert_eq!(quiet.exit, 0, "{}", quiet.summary);

    let journaled: i64 = rusqlite::Connection::open(&journal)
        .unwrap()
        .query_row("SELECT count(*) FROM trades", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journaled as usize, trades + new);
    let size = std::fs::metadata(&journal).unwrap().len();
    println!(
        "journal: {journaled} trades, {:.1} MB",
        size as f64 / 1_048_576.0
    );
    rt.block_on(sb.shutdown());
}

/// Run one hqx command; its wall time, CPU time (getrusage of the child)
/// and the requests of the run it journaled.
fn timed(mut cmd: Command, journal: &Path, command: &str) -> Step {
    let before = children_cpu();
    let t = Instant::now();
    let out = cmd.output().expect("run hqx; build it first");
    let secs = t.elapsed().as_secs_f64();
    let cpu_secs = children_cpu() - before;
    let exit = out.status.code().unwrap_or(-1);
    if exit != 0 && exit != 5 {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let db = rusqlite::Connection::open(journal).unwrap();
    let (run_id, summary): (i64, String) = db
        .query_row(
            "SELECT id, coalesce(summary, '') FROM runs WHERE command = ?1 ORDER BY id DESC LIMIT 1",
            [command],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let count = |like: &str| -> i64 {
        db.query_row(
            "SELECT count(*) FROM http_log WHERE run_id = ?1 AND path LIKE ?2",
            rusqlite::params![run_id, like],
            |r| r.get(0),
        )
        .unwrap()
    };
    Step {
        secs,
        cpu_secs,
        requests: count("%"),
        trade_requests: count("%/trades/my%"),
        exit,
        summary,
    }
}

fn report(what: &str, s: &Step) {
    println!(
        "{what}: {:.3} s, hqx CPU {:.3} s, {} request(s) ({} for trades), exit {}: {}",
        s.secs, s.cpu_secs, s.requests, s.trade_requests, s.exit, s.summary
    );
}

/// User + system CPU seconds of the children waited for so far
/// (`cutime` + `cstime` of /proc/self/stat, in 1/100 s ticks).
fn children_cpu() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap();
    ticks / 100.0
}
