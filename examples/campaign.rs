//! The crash-and-faults campaign at scale: a sandbox exchange with injected
//! faults in this process, and the real `hqx run` killed with SIGKILL at
//! many points across a large batch, then rerun until it finishes. Prints
//! how many orders the exchange holds twice (duplicates) and how many batch
//! orders it does not hold (lost). Both must be zero.
//!
//! Then a second batch both places orders and cancels: orders of the first
//! batch by `order:` and by `exchange_order_id:`, every order open on
//! ETH-USDC (`all_open`, while it also places ETH-USDC orders that must
//! survive), and some of its own orders (never to be sent). It is killed
//! the same way, under the same faults, and rerun until done. Every order
//! a cancel targets must end up not live (cancelled, or filled first); no
//! other order may be cancelled; and its placements are checked like the
//! first batch's.
//!
//! Run it with `scripts/campaign` (which builds in release mode first), or:
//! `cargo run --release --example campaign -- --hqx target/release/hqx --orders 5000 --kills 300`

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hqx::sandbox::{Sandbox, SandboxConfig};

struct Args {
    hqx: String,
    orders: usize,
    kills: usize,
    faults: String,
    seed: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        hqx: "target/release/hqx".into(),
        orders: 5000,
        kills: 300,
        faults:
            "latency=1ms,error5xx=0.05,drop=0.05,reset=0.03,limit429=0.03,stall=0.01,stall_for=2s"
                .into(),
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hqx" => a.hqx = v,
            "--orders" => a.orders = v.parse().expect("--orders N"),
            "--kills" => a.kills = v.parse().expect("--kills N"),
            "--faults" => a.faults = v,
            "--seed" => a.seed = v.parse().expect("--seed N"),
            _ => panic!("unknown argument {k}; see the file's doc comment"),
        }
    }
    a
}

/// The first batch: a quarter fill at once, the rest rest on BTC-USDC and
/// ETH-USDC, for the second batch to cancel.
fn batch(n: usize) -> String {
    let mut s = String::from("version: 1\nbatch: campaign\norders:\n");
    for i in 0..n {
        // Distinct quantities so that fingerprints differ where they can.
        let q = format!("0.{:05}", i + 1);
        let line = match i % 4 {
            0 => format!("{{ id: o{i}, pair: BTC-USDC, side: buy, type: limit, quantity: \"{q}\", price: \"25000.00\" }}"),
            2 => format!("{{ id: o{i}, pair: ETH-USDC, side: sell, type: limit, quantity: \"{q}\", price: \"2000.00\" }}"),
            _ => format!("{{ id: o{i}, pair: BTC-USDC, side: buy, type: limit, quantity: \"{q}\", price: \"20000.00\" }}"),
        };
        s.push_str(&format!("  - {line}\n"));
    }
    s
}

/// The second batch: `n / 4` orders and the cancels (see the module docs).
/// Returns the text, the first batch's targeted order ids, and the second
/// batch's own targeted order ids.
fn cancel_batch(n: usize, first: &HashMap<String, String>) -> (String, Vec<String>, Vec<String>) {
    let m = n / 4;
    let mut s = String::from("version: 1\nbatch: campaign-cancels\norders:\n");
    let mut own = Vec::new();
    for j in 0..m {
        let q = format!("0.{:05}", j + 1);
        let line = match j % 3 {
            0 => format!("{{ id: b{j}, pair: ETH-USDC, side: sell, type: limit, quantity: \"{q}\", price: \"2100.00\" }}"),
            1 => format!("{{ id: b{j}, pair: BTC-USDC, side: sell, type: limit, quantity: \"{q}\", price: \"20000.00\" }}"),
            _ => format!("{{ id: b{j}, pair: SOL-USDC, side: buy, type: limit, quantity: \"1{q}\", price: \"10.00\" }}"),
        };
        s.push_str(&format!("  - {line}\n"));
    }
    s.push_str("cancels:\n  - { id: clear-eth, all_open: { pair: ETH-USDC } }\n");
    let mut targets = Vec::new();
    for i in (1..n).step_by(4) {
        let o = format!("o{i}");
        if i % 8 == 1 {
            s.push_str(&format!("  - {{ id: c{i}, order: campaign/{o} }}\n"));
        } else if let Some(x) = first.get(&o) {
            s.push_str(&format!("  - {{ id: c{i}, exchange_order_id: {x} }}\n"));
        } else {
            continue;
        }
        targets.push(o);
    }
    for i in (2..n).step_by(4) {
        targets.push(format!("o{i}"));
    }
    for j in (2..m).step_by(6) {
        s.push_str(&format!("  - {{ id: own{j}, order: b{j} }}\n"));
        own.push(format!("b{j}"));
    }
    (s, targets, own)
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = hqx::sandbox::generate_credentials();
    let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
    cfg.state_path = Some(dir.path().join("exchange.jsonl"));
    cfg.faults = a.faults.parse().expect("--faults");
    cfg.seed = a.seed;
    let sb = rt
        .block_on(Sandbox::start(cfg, ([127, 0, 0, 1], 0).into()))
        .unwrap();
    let first_file = dir.path().join("batch.yaml");
    std::fs::write(&first_file, batch(a.orders)).unwrap();
    let journal = dir.path().join("hqx.db");
    let run_file = |file: &std::path::Path| {
        let mut c = Command::new(&a.hqx);
        c.env("HQX_JOURNAL", &journal)
            .env("HQX_BASE_URL", sb.base_url())
            .env("HAQQEX_PUBLIC_KEY", &key)
            .env("HAQQEX_PRIVATE_KEY", secret.expose())
            .arg("run")
            .arg(file)
            .args(["--rate", "100000", "--concurrency", "16"])
            .args(["--timeout-ms", "500", "--absent-grace-ms", "50"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let started = Instant::now();
    let mut exits: HashMap<i32, usize> = HashMap::new();
    // Kill `run FILE` whenever the exchange's progress (placements plus
    // cancels it acted on) passes the next of `kills` marks up to `total`,
    // then rerun it until it exits 0.
    let mut campaign = |file: &std::path::Path, kills_wanted: usize, total: usize| {
        let progress = || {
            let l = sb.accepted_orders();
            l.len() + l.iter().filter(|o| o.status == "cancelled").count()
        };
        let base = progress();
        let step = (total / kills_wanted.max(1)).max(1);
        let mut kills = 0;
        let mut target = step;
        while kills < kills_wanted && target < total {
            let mut child = run_file(file).spawn().expect("spawn hqx; build it first");
            loop {
                if let Some(st) = child.try_wait().unwrap() {
                    *exits.entry(st.code().unwrap_or(-1)).or_default() += 1;
                    break;
                }
                if progress() >= base + target {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    kills += 1;
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            target += step;
        }
        let mut finished = false;
        for _ in 0..20 {
            let st = run_file(file).status().unwrap();
            *exits.entry(st.code().unwrap_or(-1)).or_default() += 1;
            if st.code() == Some(0) {
                finished = true;
                break;
            }
        }
        (kills, finished)
    };
    let first_kills = a.kills - a.kills / 2;
    let (kills_a, finished_a) = campaign(&first_file, first_kills, a.orders);

    // The second batch places and cancels.
    let db = rusqlite::Connection::open(&journal).unwrap();
    let first_ids: HashMap<String, String> = {
        let mut st = db
            .prepare("SELECT order_id, exchange_order_id FROM orders WHERE batch_id = 'campaign' AND exchange_order_id IS NOT NULL")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (text, targets, own) = cancel_batch(a.orders, &first_ids);
    let second_file = dir.path().join("cancels.yaml");
    std::fs::write(&second_file, &text).unwrap();
    let total_b = targets.len() + a.orders / 4;
    let (kills_b, finished_b) = campaign(&second_file, a.kills / 2, total_b);
    let (kills, finished) = (kills_a + kills_b, finished_a && finished_b);

    // Count against the exchange's own record.
    let accepted = sb.accepted_orders();
    let mut st = db
        .prepare("SELECT order_id, exchange_order_id, body FROM orders WHERE state <> 'cancelled' OR exchange_order_id IS NOT NULL")
        .unwrap();
    let rows: Vec<(String, Option<String>, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut per_body: HashMap<&str, usize> = HashMap::new();
    for o in &accepted {
        *per_body.entry(o.received_body.as_str()).or_default() += 1;
    }
    let duplicates: usize = per_body.values().map(|c| c.saturating_sub(1)).sum();
    let lost = rows
        .iter()
        .filter(|(_, _, body)| !per_body.contains_key(body.as_str()))
        .count();
    let ids: HashSet<&str> = accepted.iter().map(|o| o.id.as_str()).collect();
    let disagree = rows
        .iter()
        .filter(|(_, x, _)| x.as_deref().is_none_or(|x| !ids.contains(x)))
        .count();
    println!(
        "orders {}  kills {} ({kills_a} placing, {kills_b} placing and cancelling)  finished {}  elapsed {:.1}s  exits {:?}",
        a.orders,
        kills,
        finished,
        started.elapsed().as_secs_f64(),
        exits
    );
    println!("faults {}  seed {}", a.faults, a.seed);
    println!(
        "exchange holds {} orders for {} batch orders",
        accepted.len(),
        rows.len()
    );
    println!("duplicates {duplicates}");
    println!("lost {lost}");
    println!("journal orders without a matching exchange order {disagree}");

    // Cancels: every targeted order is not live; nothing else was cancelled.
    let by_id: HashMap<&str, &str> = accepted
        .iter()
        .map(|o| (o.id.as_str(), o.status.as_str()))
        .collect();
    let first_ids = &first_ids;
    let live_targets = targets
        .iter()
        .filter(|o| {
            first_ids
                .get(*o)
                .is_some_and(|x| by_id.get(x.as_str()) == Some(&"open"))
        })
        .count();
    let target_ids: HashSet<&str> = targets
        .iter()
        .filter_map(|o| first_ids.get(o).map(String::as_str))
        .collect();
    let wrongly_cancelled = accepted
        .iter()
        .filter(|o| o.status == "cancelled" && !target_ids.contains(o.id.as_str()))
        .count();
    let cancelled = accepted.iter().filter(|o| o.status == "cancelled").count();
    let own_sent: i64 = own
        .iter()
        .map(|o| {
            db.query_row(
                "SELECT count(*) FROM orders WHERE batch_id = 'campaign-cancels' AND order_id = ?1 AND (attempts > 0 OR state <> 'cancelled')",
                [o],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
        .sum();
    let unsettled: i64 = db
        .query_row(
            "SELECT count(*) FROM cancel_orders WHERE state NOT IN ('done', 'already_filled', 'already_cancelled', 'not_needed')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let deletes: i64 = db
        .query_row(
            "SELECT count(*) FROM http_log WHERE method = 'DELETE'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "cancels: {} targets of the first batch, {cancelled} cancelled on the exchange, {deletes} DELETE requests",
        targets.len()
    );
    println!("targeted orders still live {live_targets}");
    println!("orders cancelled that no cancel targets {wrongly_cancelled}");
    println!("own orders a cancel targets that were sent {own_sent}");
    println!("cancels not settled in the journal {unsettled}");
    rt.block_on(sb.shutdown());
    if duplicates != 0
        || lost != 0
        || disagree != 0
        || !finished
        || live_targets != 0
        || wrongly_cancelled != 0
        || own_sent != 0
        || unsettled != 0
    {
        std::process::exit(1);
    }
}
