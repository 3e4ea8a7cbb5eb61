//! The crash-and-faults campaign at scale: a sandbox exchange with injected
//! faults in this process, and the real `hqx run` killed with SIGKILL at
//! many points across a large batch, then rerun until it finishes. Prints
//! how many orders the exchange holds twice (duplicates) and how many batch
//! orders it does not hold (lost). Both must be zero.
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

fn batch(n: usize) -> String {
    let mut s = String::from("version: 1\nbatch: campaign\norders:\n");
    for i in 0..n {
        // Distinct quantities so that fingerprints differ where they can.
        s.push_str(&format!(
            "  - {{ id: o{i}, pair: BTC-USDC, side: buy, type: limit, quantity: \"0.{:05}\", price: \"25000.00\" }}\n",
            i + 1
        ));
    }
    s
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
    let file = dir.path().join("batch.yaml");
    std::fs::write(&file, batch(a.orders)).unwrap();
    let journal = dir.path().join("hqx.db");
    let run = || {
        let mut c = Command::new(&a.hqx);
        c.env("HQX_JOURNAL", &journal)
            .env("HQX_BASE_URL", sb.base_url())
            .env("HAQQEX_PUBLIC_KEY", &key)
            .env("HAQQEX_PRIVATE_KEY", secret.expose())
            .arg("run")
            .arg(&file)
            .args(["--rate", "100000", "--concurrency", "16"])
            .args(["--timeout-ms", "500", "--absent-grace-ms", "50"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let started = Instant::now();
    let step = (a.orders / a.kills.max(1)).max(1);
    let mut kills = 0;
    let mut target = step;
    let mut exits: HashMap<i32, usize> = HashMap::new();
    while kills < a.kills && target < a.orders {
        let mut child = run().spawn().expect("spawn hqx; build it first");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                *exits.entry(st.code().unwrap_or(-1)).or_default() += 1;
                break;
            }
            if sb.accepted_orders().len() >= target {
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
        let st = run().status().unwrap();
        *exits.entry(st.code().unwrap_or(-1)).or_default() += 1;
        if st.code() == Some(0) {
            finished = true;
            break;
        }
    }
    // Count against the exchange's own record.
    let accepted = sb.accepted_orders();
    let db = rusqlite::Connection::open(&journal).unwrap();
    let mut st = db
        .prepare("SELECT order_id, exchange_order_id, body FROM orders")
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
        "orders {}  kills {}  finished {}  elapsed {:.1}s  exits {:?}",
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
    rt.block_on(sb.shutdown());
    if duplicates != 0 || lost != 0 || disagree != 0 || !finished {
        std::process::exit(1);
    }
}
