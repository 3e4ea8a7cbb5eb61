//! The test harness: a temp dir, a sandbox on 127.0.0.1:0 served from this
//! test process, and `hqx` commands wired to both.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use hqx::sandbox::{AcceptedOrder, AcceptedTrade, Control, FaultSpec, Sandbox, SandboxConfig};
use tempfile::TempDir;

/// One test's world.
pub struct Env {
    pub dir: TempDir,
    pub rt: tokio::runtime::Runtime,
    pub sandbox: Option<Sandbox>,
    pub api_key: String,
    pub secret: String,
}

impl Env {
    /// A fresh temp dir and a sandbox with a random key pair.
    pub fn new() -> Env {
        Env::with(|_| {})
    }

    /// Like `new`, with the sandbox configuration adjusted.
    pub fn with(adjust: impl FnOnce(&mut SandboxConfig)) -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (api_key, secret) = hqx::sandbox::generate_credentials();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SandboxConfig::new(api_key.clone(), secret.clone());
        cfg.state_path = Some(dir.path().join("exchange.jsonl"));
        adjust(&mut cfg);
        let sandbox = rt
            .block_on(Sandbox::start(cfg, ([127, 0, 0, 1], 0).into()))
            .unwrap();
        Env {
            dir,
            rt,
            sandbox: Some(sandbox),
            api_key,
            secret: secret.expose().to_string(),
        }
    }

    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().unwrap()
    }

    pub fn base_url(&self) -> String {
        self.sandbox().base_url()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path("hqx.db")
    }

    /// `hqx` as a plain process in the temp dir, with the journal, base
    /// URL and keys set (for tests that must signal or kill it).
    pub fn process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("hqx"));
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HQX_JOURNAL", self.journal_path())
            .env("HQX_BASE_URL", self.base_url())
            .env("HAQQEX_PUBLIC_KEY", &self.api_key)
            .env("HAQQEX_PRIVATE_KEY", &self.secret);
        c
    }

    /// The same, as an assert_cmd command.
    pub fn hqx(&self) -> Command {
        Command::from_std(self.process())
    }

    /// `hqx run FILE` as a plain process; the caller adds options and stdio.
    pub fn run_process(&self, file: &Path) -> std::process::Command {
        let mut c = self.process();
        c.arg("run").arg(file);
        c
    }

    /// `hqx run FILE` with a fast client.
    pub fn run(&self, file: &Path) -> Command {
        let mut c = self.hqx();
        c.arg("run")
            .arg(file)
            .args(["--rate", "2000", "--concurrency", "16"]);
        c
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// What really reached the exchange, through its HTTP endpoint.
    pub fn accepted(&self) -> Vec<AcceptedOrder> {
        let url = format!("{}/sandbox/orders", self.base_url());
        self.rt
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
    }

    /// Every trade the exchange made, oldest first, through its HTTP endpoint.
    pub fn exchange_trades(&self) -> Vec<AcceptedTrade> {
        let url = format!("{}/sandbox/trades", self.base_url());
        self.rt
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
    }

    /// Move the market, fill an order or deposit (see `Control`); panics
    /// if the sandbox refuses.
    pub fn control(&self, c: Control) -> serde_json::Value {
        self.sandbox()
            .control(c.clone())
            .unwrap_or_else(|e| panic!("{c:?}: {e}"))
    }

    /// Set `pair`'s reference price; what crosses fills.
    pub fn market(&self, pair: &str, price: &str) -> serde_json::Value {
        self.control(Control::Market {
            pair: pair.into(),
            price: price.into(),
        })
    }

    /// Fill `quantity` of an exchange order (all that remains if `None`).
    pub fn fill(&self, exchange_id: &str, quantity: Option<&str>) -> serde_json::Value {
        self.control(Control::Fill {
            order_id: exchange_id.into(),
            quantity: quantity.map(str::to_string),
        })
    }

    pub fn set_faults(&self, spec: &str, seed: u64) {
        let f: FaultSpec = spec.parse().unwrap();
        self.sandbox().set_faults(f, seed);
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.journal_path()).unwrap()
    }

    /// `SELECT` one value.
    pub fn one<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// (order id, state, exchange order id) for every journal order.
    pub fn journal_orders(&self) -> Vec<(String, String, Option<String>)> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT order_id, state, exchange_order_id FROM orders ORDER BY batch_id, seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(sb) = self.sandbox.take() {
            self.rt.block_on(sb.shutdown());
        }
    }
}

/// A batch of `n` limit orders on BTC-USDC that fill at once, plus `extra` YAML.
pub fn batch_of(id: &str, n: usize) -> String {
    let mut s =
        format!("version: 1\nbatch: {id}\ndefaults: {{ pair: BTC-USDC, type: limit }}\norders:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - {{ id: o{i}, side: buy, quantity: \"0.{:03}\", price: \"25000.00\" }}\n",
            i % 997 + 1
        ));
    }
    s
}

pub const QUICK: &str = r#"version: 1
batch: quick-1
defaults: { pair: BTC-USDC, type: limit }
orders:
  - id: buy-1
    side: buy
    quantity: "2"
    price: "24321.00"
  - id: rest-1
    side: buy
    quantity: 0.5
    price: 20000.10
  - id: sell-eth
    pair: ETH-USDC
    side: sell
    type: market
    quantity: "1.5"
queries:
  - id: fills
    trades: { pair: BTC-USDC }
  - id: open
    orders: { status: open }
  - id: funds
    balances: {}
  - id: addr
    deposit_address: { currency: USDC, network: ERC20 }
"#;
