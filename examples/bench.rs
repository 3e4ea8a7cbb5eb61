//! Throughput of the whole pipeline against the loopback limit, in one run.
//!
//! For each run, the bench starts the sandbox as its own process
//! (`hqx sandbox`, an empty account), then:
//! 1. **raw limit**: a minimal signed client (hyper-util's pooled client,
//!    which hqx sends with too; the same headers and HMAC as hqx, no
//!    journal, no state) posts N distinct limit orders with C requests in
//!    flight;
//! 2. **hqx**: the real `hqx run` binary places a batch of N orders at
//!    `--concurrency C` with the rate limit lifted (parse, validate, journal
//!    every intent and every `sending` durably, sign, send, journal every
//!    answer, page through the open orders and the trades, print the
//!    summary), against a new sandbox process of the same build and
//!    settings, so that it too starts from an empty account. With
//!    `--shared-sandbox` it runs against the raw client's process instead:
//!    the account then also holds the raw client's N orders and their
//!    trades, which hqx reads back at the end of its run as orders placed
//!    elsewhere (twice the end-of-run work of its own batch).
//!
//! It prints orders/s of both, their ratio, and CPU time per order of each
//! process: the sandbox's from `/proc/<pid>/stat`, hqx's from the bench's
//! reaped-children times (`cutime`+`cstime` of `/proc/self/stat`), the raw
//! client's from the bench's own times. Half the orders fill at once
//! (trades), half rest on the book.
//!
//! `scripts/bench` builds in release mode and runs it; figures go in
//! BENCHMARKS.md. Arguments: `--hqx PATH --orders N --concurrency C --runs R
//! [--shared-sandbox] [--against PATH]`. `--against` another hqx binary
//! (an older build): each run also times it on the same batch, on its own
//! new sandbox process, alternating which of the two goes first, and the
//! bench prints its medians and the paired difference in CPU per order. On
//! a machine whose speed drifts, that difference is the figure to trust.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hqx::sign::{sign, Secret};

/// Clock ticks per second of `/proc/*/stat` (USER_HZ; 100 on Linux).
const TICKS: f64 = 100.0;

/// (utime + stime, cutime + cstime) of a process, in seconds.
fn cpu_of(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    ((f[11] + f[12]) / TICKS, (f[13] + f[14]) / TICKS)
}

fn batch_text(id: &str, orders: usize) -> String {
    let mut text = format!("version: 1\nbatch: {id}\norders:\n");
    for i in 0..orders {
        let (price, qty) = order(i);
        text.push_str(&format!(
            "  - {{ id: o{i}, pair: BTC-USDC, side: buy, type: limit, quantity: \"{qty}\", price: \"{price}\" }}\n"
        ));
    }
    text
}

/// Order i: half fill at once (trades), half rest on the book; small
/// enough that both phases of a run stay within the sandbox's funds.
fn order(i: usize) -> (&'static str, String) {
    let price = if i.is_multiple_of(2) {
        "25000.00"
    } else {
        "20000.00"
    };
    (price, format!("0.00{:03}", i % 999 + 1))
}

struct SandboxProcess {
    child: Child,
    url: String,
}

impl SandboxProcess {
    fn start(hqx: &str, dir: &std::path::Path, key: &str, secret: &str) -> SandboxProcess {
        let mut child = Command::new(hqx)
            .args(["sandbox", "--port", "0"])
            // `=`: a value may begin with `-`.
            .arg(format!("--api-key={key}"))
            .arg(format!("--secret={secret}"))
            .arg("--state")
            .arg(dir.join("exchange.jsonl"))
            .env_remove("HQX_VENUE")
            .stdout(Stdio::piped())
            // To a file, not a pipe nobody reads: shown if it fails to start.
            .stderr(std::fs::File::create(dir.join("sandbox.err")).expect("create sandbox.err"))
            .spawn()
            .expect("start hqx sandbox; build hqx first");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("HQX_BASE_URL=").map(str::to_string));
        let Some(url) = url else {
            let status = child.wait();
            let err = std::fs::read_to_string(dir.join("sandbox.err")).unwrap_or_default();
            panic!("the sandbox printed no URL (exit: {status:?}); its stderr:\n{err}");
        };
        // Keep reading what it prints, so that it never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        SandboxProcess { child, url }
    }

    fn cpu(&self) -> f64 {
        cpu_of(&self.child.id().to_string()).0
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Post `orders` signed orders with `concurrency` in flight; the seconds it took.
fn raw_client(url: &str, key: &str, secret: &str, orders: usize, concurrency: usize) -> f64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The HTTP client hqx sends with (hyper-util's pooled client), plain.
    let http: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let secret = Secret::new(secret);
    let path = hqx::venue::Venue::default().paths.place_order;
    let target: hyper::Uri = format!("{url}{path}").parse().expect("sandbox URL");
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (http, secret, target, key, next) = (
                http.clone(),
                secret.clone(),
                target.clone(),
                key.to_string(),
                next.clone(),
            );
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= orders {
                        return;
                    }
                    let (price, qty) = order(i);
                    let body = format!(
                        r#"{{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"{qty}","price":"{price}"}}"#
                    );
                    let ts = hqx::client::now_ms().to_string();
                    let sig = sign(&secret, &ts, body.as_bytes());
                    let req = hyper::Request::post(target.clone())
                        .header("x-api-key", &key)
                        .header("x-api-timestamp", &ts)
                        .header("x-api-sign", sig)
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                        .expect("raw client: request");
                    let r = http.request(req).await.expect("raw client: POST");
                    let status = r.status();
                    let text = http_body_util::BodyExt::collect(r.into_body())
                        .await
                        .expect("raw client: answer")
                        .to_bytes();
                    assert!(status.is_success(), "raw client: HTTP {status}: {text:?}");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut hqx = "target/release/hqx".to_string();
    let mut orders = 10_000usize;
    let mut concurrency = 16usize;
    let mut runs = 3usize;
    let mut shared = false;
    let mut against: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--shared-sandbox" {
            shared = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hqx" => hqx = v,
            "--orders" => orders = v.parse().unwrap(),
            "--concurrency" => concurrency = v.parse().unwrap(),
            "--runs" => runs = v.parse().unwrap(),
            "--against" => against = Some(v),
            _ => panic!("unknown argument {k}"),
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{orders} orders, concurrency {concurrency}, {runs} run(s); sandbox in its own process, {}; load average at start: {}",
        if shared {
            "hqx against the raw client's (--shared-sandbox)"
        } else {
            "a new one for hqx"
        },
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    let n = orders as f64;
    let (mut ratios, mut raw_rates, mut hqx_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hqx_cpus, mut sb_cpus) = (Vec::new(), Vec::new());
    let (mut b_rates, mut b_cpus, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let (key, secret) = hqx::sandbox::generate_credentials();
        let sb = SandboxProcess::start(&hqx, dir.path(), &key, secret.expose());

        // 1. The raw limit: signed requests, nothing else.
        let (sb0, me0) = (sb.cpu(), cpu_of("self").0);
        let raw_secs = raw_client(&sb.url, &key, secret.expose(), orders, concurrency);
        let (sb_raw, me_raw) = (sb.cpu() - sb0, cpu_of("self").0 - me0);

        // A new sandbox process (an empty account) keeping its state in
        // the run's directory `sub`.
        let fresh_sandbox = |sub: &str| {
            let fresh = dir.path().join(sub);
            std::fs::create_dir(&fresh).unwrap();
            let sb = SandboxProcess::start(&hqx, &fresh, &key, secret.expose());
            (fresh, sb)
        };

        // 2. hqx run, the whole pipeline: against a new sandbox process
        // (an empty account, as the raw client had), or the same one.
        let sb = if shared {
            sb
        } else {
            drop(sb);
            fresh_sandbox("hqx-phase").1
        };
        let file = dir.path().join("batch.yaml");
        std::fs::write(&file, batch_text("bench", orders)).unwrap();
        // With --against, the other binary runs the same batch on its own
        // new sandbox process, first on odd runs: each run gives a pair.
        let other = |sub: &str| {
            against.as_ref().map(|b| {
                let (fresh, sb) = fresh_sandbox(sub);
                hqx_phase(b, &sb, &fresh, &file, &key, secret.expose(), concurrency)
            })
        };
        let before = if run % 2 == 1 { other("b-first") } else { None };
        let (hqx_secs, hqx_cpu, sb_hqx) = hqx_phase(
            &hqx,
            &sb,
            dir.path(),
            &file,
            &key,
            secret.expose(),
            concurrency,
        );
        drop(sb);
        let b = before.or_else(|| other("b-second"));

        let (raw_rate, hqx_rate) = (n / raw_secs, n / hqx_secs);
        let us = |secs: f64| secs / n * 1e6;
        println!(
            "run {run}: raw client {raw_rate:.0} orders/s (client {:.0} us/order, sandbox {:.0} us/order) | hqx run {hqx_rate:.0} orders/s (hqx {:.0} us/order, sandbox {:.0} us/order) | ratio {:.0} %",
            us(me_raw),
            us(sb_raw),
            us(hqx_cpu),
            us(sb_hqx),
            100.0 * hqx_rate / raw_rate
        );
        raw_rates.push(raw_rate);
        hqx_rates.push(hqx_rate);
        ratios.push(hqx_rate / raw_rate);
        hqx_cpus.push(us(hqx_cpu));
        sb_cpus.push(us(sb_hqx));
        if let Some((b_secs, b_cpu, b_sb)) = b {
            println!(
                "run {run}: against {} {:.0} orders/s (hqx {:.0} us/order, sandbox {:.0} us/order) | hqx CPU minus against's {:+.0} us/order",
                against.as_deref().unwrap_or_default(),
                n / b_secs,
                us(b_cpu),
                us(b_sb),
                us(hqx_cpu) - us(b_cpu)
            );
            b_rates.push(n / b_secs);
            b_cpus.push(us(b_cpu));
            diffs.push(us(hqx_cpu) - us(b_cpu));
        }
    }
    println!(
        "median: raw limit {:.0} orders/s, hqx {:.0} orders/s, ratio {:.0} %, hqx CPU {:.0} us/order, sandbox CPU {:.0} us/order (serving hqx)",
        median(raw_rates),
        median(hqx_rates),
        100.0 * median(ratios),
        median(hqx_cpus),
        median(sb_cpus)
    );
    if let Some(b) = &against {
        println!(
            "median: against {b} {:.0} orders/s, CPU {:.0} us/order; hqx CPU minus against's, paired by run: {:+.0} us/order (lower in {} of {runs} runs)",
            median(b_rates),
            median(b_cpus),
            median(diffs.clone()),
            diffs.iter().filter(|d| **d < 0.0).count()
        );
    }
}

/// `hqx run` of the batch `file` against `sb` with its journal in `dir`:
/// (seconds, hqx's CPU seconds, the sandbox's CPU seconds meanwhile).
fn hqx_phase(
    hqx: &str,
    sb: &SandboxProcess,
    dir: &std::path::Path,
    file: &std::path::Path,
    key: &str,
    secret: &str,
    concurrency: usize,
) -> (f64, f64, f64) {
    let (sb1, kids1) = (sb.cpu(), cpu_of("self").1);
    let t = Instant::now();
    let st = Command::new(hqx)
        .env("HQX_JOURNAL", dir.join("hqx.db"))
        .env("HQX_BASE_URL", &sb.url)
        .env("HAQQEX_PUBLIC_KEY", key)
        .env("HAQQEX_PRIVATE_KEY", secret)
        .env_remove("HQX_VENUE")
        .arg("run")
        .arg(file)
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
    let (sb_cpu, hqx_cpu) = (sb.cpu() - sb1, cpu_of("self").1 - kids1);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{hqx} run failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    (secs, hqx_cpu, sb_cpu)
}
