//! The journal as an analyst's database, at scale: journal N trades (in
//! pages of 500, one transaction each, as a run or a reconcile writes a
//! page of the exchange's trade list, with the position figures kept in
//! the same transaction), then time `SELECT * FROM positions` through the
//! real `hqx sql` binary and the sqlite3 shell (wall time and peak memory,
//! by /usr/bin/time), one late trade (its pair recomputed), `hqx journal
//! rebuild`, and report the journal's size.
//!
//! `scripts/positions-bench` builds in release mode and runs it; figures go
//! in BENCHMARKS.md. Arguments: `--hqx PATH --trades N --pairs P --dir DIR`
//! (DIR default: a temp dir, removed at the end).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use hqx::journal::{Journal, TradeRow};

/// A small deterministic generator (no dependency, same trades every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn trade(i: u64, pairs: u64, rng: &mut Lcg, ms: i64) -> TradeRow {
    let pair = format!("P{}-USDC", i % pairs);
    let buy = rng.next().is_multiple_of(2);
    let price = format!("{}.{:02}", 20_000 + rng.next() % 2_000, rng.next() % 100);
    let qty = format!("0.{:04}", 1 + rng.next() % 9_999);
    TradeRow {
        trade_id: format!("T{i:010}"),
        exchange_order_id: Some(format!("O{:010}", i / 2)),
        pair: Some(pair),
        side: Some(if buy { "buy" } else { "sell" }.into()),
        price: Some(price),
        quantity: Some(qty),
        fee: Some("0.01".into()),
        fee_currency: Some("USDC".into()),
        traded_ms: Some(ms),
        raw: String::new(),
    }
}

/// Run a command under /usr/bin/time; returns (seconds, peak KiB, stdout lines).
fn timed(cmd: &mut Command) -> (f64, u64, usize) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    let secs: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    let kib: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (secs, kib, out.stdout.split(|b| *b == b'\n').count() - 1)
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    let mut hqx = "target/release/hqx".to_string();
    let mut n: u64 = 1_000_000;
    let mut pairs: u64 = 10;
    let mut dir_arg: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hqx" => hqx = v,
            "--trades" => n = v.parse().unwrap(),
            "--pairs" => pairs = v.parse().unwrap(),
            "--dir" => dir_arg = Some(v),
            _ => panic!("unknown argument {k}"),
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_arg
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    assert!(!path.exists(), "{} exists", path.display());

    let mut j = Journal::open(&path).unwrap();
    let account = j.account("http://bench", "bench-key", 1).unwrap();
    let mut rng = Lcg(42);
    let page = 500u64;
    let t0 = Instant::now();
    let mut i = 0u64;
    let start_ms = 1_790_000_000_000i64;
    while i < n {
        let rows: Vec<TradeRow> = (i..(i + page).min(n))
            .map(|k| trade(k, pairs, &mut rng, start_ms + k as i64))
            .collect();
        i += rows.len() as u64;
        assert_eq!(j.insert_trades(account, 1, &rows).unwrap(), rows.len());
    }
    let insert = t0.elapsed().as_secs_f64();
    println!(
        "journaled {n} trades on {pairs} pairs in pages of {page}: {insert:.1} s, {:.0} trades/s",
        n as f64 / insert
    );

    // A late trade: earlier than every trade of its pair, so the pair
    // (n / pairs trades) is recomputed.
    let t = Instant::now();
    let mut late = trade(n, pairs, &mut rng, start_ms - 1);
    late.pair = Some("P0-USDC".into());
    j.insert_trades(account, 2, &[late]).unwrap();
    println!(
        "one late trade (its pair of {} trades recomputed): {:.2} s",
        n / pairs + 1,
        t.elapsed().as_secs_f64()
    );
    drop(j);

    let db = rusqlite::Connection::open(&path).unwrap();
    db.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(db);
    let size = file_size(&path);
    println!(
        "journal size: {:.1} MiB ({:.0} bytes per trade)",
        size as f64 / 1048576.0,
        size as f64 / (n + 1) as f64
    );

    let query = "SELECT * FROM positions";
    for run in 1..=3 {
        let (s, kib, lines) = timed(
            Command::new("/usr/bin/time")
                .args(["-f", "%e %M", &hqx, "sql", "--format", "csv", "--journal"])
                .arg(&path)
                .arg(query),
        );
        println!(
            "hqx sql \"{query}\" (run {run}): {s:.2} s, peak {:.1} MiB, {} rows",
            kib as f64 / 1024.0,
            lines - 1
        );
    }
    let (s, kib, lines) = timed(
        Command::new("/usr/bin/time")
            .args(["-f", "%e %M", "sqlite3", "-csv", "-header", "-readonly"])
            .arg(&path)
            .arg(query),
    );
    println!(
        "sqlite3 shell, same query: {s:.2} s, peak {:.1} MiB, {} rows",
        kib as f64 / 1024.0,
        lines - 1
    );
    let (s, kib, _) = timed(
        Command::new("/usr/bin/time")
            .args(["-f", "%e %M", &hqx, "journal", "rebuild", "--journal"])
            .arg(&path),
    );
    println!(
        "hqx journal rebuild ({} trades): {s:.1} s, peak {:.1} MiB",
        n + 1,
        kib as f64 / 1024.0
    );
}
