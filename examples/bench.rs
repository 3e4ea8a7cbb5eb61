//! Throughput of the whole pipeline: the real `hqx run` binary placing a
//! large batch (parse, validate, journal every intent durably, sign, send,
//! journal every answer, fetch trades) against the sandbox on loopback,
//! with the client's rate limit lifted so only hqx's own cost and the
//! sandbox's remain.
//!
//! `scripts/bench` builds in release mode and runs it; figures go in
//! BENCHMARKS.md. Arguments: `--hqx PATH --orders N --concurrency C --runs R`.

use std::process::{Command, Stdio};
use std::time::Instant;

use hqx::sandbox::{Sandbox, SandboxConfig};

fn main() {
    let mut hqx = "target/release/hqx".to_string();
    let mut orders = 10_000usize;
    let mut concurrency = 64usize;
    let mut runs = 3usize;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hqx" => hqx = v,
            "--orders" => orders = v.parse().unwrap(),
            "--concurrency" => concurrency = v.parse().unwrap(),
            "--runs" => runs = v.parse().unwrap(),
            _ => panic!("unknown argument {k}"),
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rates = Vec::new();
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let (key, secret) = hqx::sandbox::generate_credentials();
        let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
        cfg.state_path = Some(dir.path().join("exchange.jsonl"));
        let sb = rt
            .block_on(Sandbox::start(cfg, ([127, 0, 0, 1], 0).into()))
            .unwrap();
        let mut text = String::from("version: 1\nbatch: bench\norders:\n");
        for i in 0..orders {
            // Half fill at once (trades), half rest on the book; small enough
            // that 10,000 orders stay within the sandbox's funds.
            let price = if i % 2 == 0 { "25000.00" } else { "20000.00" };
            text.push_str(&format!(
                "  - {{ id: o{i}, pair: BTC-USDC, side: buy, type: limit, quantity: \"0.00{:03}\", price: \"{price}\" }}\n",
                i % 999 + 1
            ));
        }
        let file = dir.path().join("batch.yaml");
        std::fs::write(&file, text).unwrap();
        let t = Instant::now();
        let st = Command::new(&hqx)
            .env("HQX_JOURNAL", dir.path().join("hqx.db"))
            .env("HQX_BASE_URL", sb.base_url())
            .env("HAQQEX_PUBLIC_KEY", &key)
            .env("HAQQEX_PRIVATE_KEY", secret.expose())
            .arg("run")
            .arg(&file)
            .args([
                "--rate",
                "1000000",
                "--concurrency",
                &concurrency.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run hqx; build it first");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(
            st.status.code(),
            Some(0),
            "hqx run failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let placed = sb.accepted_orders().len();
        assert_eq!(placed, orders);
        let rate = orders as f64 / secs;
        println!("run {run}: {orders} orders in {secs:.2} s = {rate:.0} orders/s (concurrency {concurrency})");
        rates.push(rate);
        rt.block_on(sb.shutdown());
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "median {:.0} orders/s over {runs} run(s)",
        rates[rates.len() / 2]
    );
}
