//! How a command reaches the exchange: the connection options shared by
//! `run` and `reconcile`, the key, the venue profile, the in-process
//! sandbox, and the account a journal binds batches to.
//!
//! Why one module: every command that talks to the exchange must agree on
//! what "the account" is (base URL and public key), because the journal
//! binds batches, trades and cursors to it. Two copies of that logic
//! would drift apart.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::client::{now_ms, Client, ClientConfig};
use crate::cmd::Failure;
use crate::executor::exit;
use crate::key::Credentials;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::sign::Secret;
use crate::venue::{Venue, PRODUCTION_BASE_URL};

/// How to reach the exchange (`run`, `reconcile`).
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// Run against the built-in sandbox exchange, in-process; its state is
    /// kept beside the journal so reruns meet the same exchange.
    #[arg(long, conflicts_with_all = ["base_url", "key_file"])]
    pub sandbox: bool,
    /// The exchange's base URL.
    #[arg(long, env = "HQX_BASE_URL", default_value = PRODUCTION_BASE_URL)]
    pub base_url: String,
    /// The exchange's key object as JSON ({"apiKey", "secretKey", "expiredAt", ...});
    /// otherwise HAQQEX_PUBLIC_KEY and HAQQEX_PRIVATE_KEY are used.
    #[arg(long, env = "HQX_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Venue profile (YAML) overriding hqx's assumptions about the exchange.
    #[arg(long, env = "HQX_VENUE")]
    pub venue: Option<PathBuf>,
    /// Requests per second (default: the venue profile's, 5).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Rate limiter burst (default: the venue profile's, 5).
    #[arg(long)]
    pub burst: Option<u32>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Per-request timeout in milliseconds (default: the venue profile's, 10000).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

/// Everything needed to talk to one exchange account, checked, before
/// anything is sent: the runtime, the in-process sandbox if asked for,
/// the URL, the key, and the journal's name for the account.
pub struct Exchange {
    /// The async runtime the client and the sandbox run on.
    pub rt: tokio::runtime::Runtime,
    /// The in-process sandbox (`--sandbox`), stopped by [`Exchange::shutdown`].
    pub sandbox: Option<Sandbox>,
    /// Where requests go.
    pub base_url: String,
    /// The account's name in the journal: the base URL, or for the
    /// in-process sandbox (whose port changes every run) its state file.
    pub binding: String,
    /// The key.
    pub creds: Credentials,
    /// The venue profile, with `--timeout-ms` applied.
    pub venue: Venue,
    /// Whether this is a throw-away exchange (sandbox or loopback): no
    /// confirmation is asked before placing orders there.
    pub is_local: bool,
}

impl Exchange {
    /// Check the key and the venue profile, start the runtime and, with
    /// `--sandbox`, the sandbox. Sends nothing.
    pub fn open(journal_path: &Path, conn: &Connection) -> Result<Exchange, Failure> {
        let venue = load_venue(conn)?;
        let creds = if conn.sandbox {
            sandbox_credentials(journal_path)?
        } else {
            credentials(conn)?
        };
        creds.check_expiry(now_ms()).map_err(Failure::usage)?;
        if let Some(w) = creds.expiry_warning(now_ms()) {
            eprintln!("{w}");
        }
        let rt = client_runtime()?;
        let sandbox = if conn.sandbox {
            let mut cfg = SandboxConfig::new(creds.api_key.clone(), creds.secret.clone());
            cfg.state_path = Some(sidecar(journal_path, ".sandbox.jsonl"));
            cfg.venue = venue.clone();
            let sb = rt
                .block_on(Sandbox::start(cfg, ([127, 0, 0, 1], 0).into()))
                .map_err(|e| Failure::failed(format!("cannot start the sandbox: {e}")))?;
            Some(sb)
        } else {
            None
        };
        let base_url = match &sandbox {
            Some(sb) => sb.base_url(),
            None => conn.base_url.trim_end_matches('/').to_string(),
        };
        let binding = if conn.sandbox {
            format!(
                "sandbox:{}",
                sidecar(journal_path, ".sandbox.jsonl").display()
            )
        } else {
            base_url.clone()
        };
        let is_local = conn.sandbox || is_loopback(&base_url);
        Ok(Exchange {
            rt,
            sandbox,
            base_url,
            binding,
            creds,
            venue,
            is_local,
        })
    }

    /// The signed, rate-limited client for this account.
    pub fn client(&self, conn: &Connection) -> Result<Arc<Client>, Failure> {
        Client::new(
            ClientConfig {
                base_url: self.base_url.clone(),
                rate: conn.rate.unwrap_or(self.venue.rate),
                burst: conn.burst.or(conn.rate).unwrap_or(self.venue.burst),
                concurrency: conn.concurrency,
                venue: self.venue.clone(),
            },
            self.creds.clone(),
        )
        .map(Arc::new)
        .map_err(Failure::failed)
    }

    /// Stop the in-process sandbox, if any, letting requests finish.
    pub fn shutdown(&mut self) {
        if let Some(sb) = self.sandbox.take() {
            self.rt.block_on(sb.shutdown());
        }
    }
}

/// A file beside the journal: `<journal><suffix>`.
pub fn sidecar(journal_path: &Path, suffix: &str) -> PathBuf {
    let mut name = journal_path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The lock file that makes one batch run at a time per journal. Held
/// until the returned file is dropped (or the process dies).
pub fn lock_batch(journal_path: &Path, batch_id: &str) -> Result<std::fs::File, Failure> {
    use sha2::{Digest, Sha256};
    let tag = &hex::encode(Sha256::digest(batch_id.as_bytes()))[..16];
    let path = sidecar(journal_path, &format!(".{tag}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::failed(format!("cannot create lock file {}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Failure::with_code(
            exit::BUSY,
            format!(
                "batch `{batch_id}` is busy: another hqx is running it on journal {}; wait for it to finish, then run again",
                journal_path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Failure::failed(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Credentials for the in-process sandbox: made once, kept beside the
/// journal in the exchange's own key-object format.
fn sandbox_credentials(journal_path: &Path) -> Result<Credentials, Failure> {
    sandbox_key_file(&sidecar(journal_path, ".sandbox-key.json"))
}

/// A sandbox's key pair, kept in `path` as the exchange's key object
/// (owner-only): read if it is there, made and written if not.
pub fn sandbox_key_file(path: &Path) -> Result<Credentials, Failure> {
    let path = path.to_path_buf();
    if path.exists() {
        return Credentials::from_key_file(&path).map_err(Failure::usage);
    }
    let (api_key, secret) = crate::sandbox::generate_credentials();
    let obj = serde_json::json!({
        "apiKey": api_key,
        "secretKey": secret.expose(),
        "ips": null,
        "title": "hqx sandbox key",
        "createdAt": null,
        "expiredAt": null,
    });
    // Readable by its owner only, like any key file (even a throw-away one).
    let mut file = {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&path)
    }
    .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(serde_json::to_string_pretty(&obj).expect("json").as_bytes())
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(Credentials {
        api_key,
        secret,
        expires_at: None,
        ips: None,
    })
}

fn credentials(conn: &Connection) -> Result<Credentials, Failure> {
    if let Some(f) = &conn.key_file {
        Credentials::check_key_file_mode(f).map_err(Failure::usage)?;
        return Credentials::from_key_file(f).map_err(Failure::usage);
    }
    match (
        std::env::var("HAQQEX_PUBLIC_KEY"),
        std::env::var("HAQQEX_PRIVATE_KEY"),
    ) {
        (Ok(k), Ok(s)) if !k.is_empty() && !s.is_empty() => Ok(Credentials {
            api_key: k,
            secret: Secret::new(s),
            expires_at: None,
            ips: None,
        }),
        _ => Err(Failure::usage(
            "no API key: set HAQQEX_PUBLIC_KEY and HAQQEX_PRIVATE_KEY, or pass --key-file with the key object Haqqex showed you; or try --sandbox",
        )),
    }
}

fn load_venue(conn: &Connection) -> Result<Venue, Failure> {
    let mut v = match &conn.venue {
        Some(p) => Venue::load(p).map_err(Failure::usage)?,
        None => Venue::default(),
    };
    if let Some(t) = conn.timeout_ms {
        v.request_timeout_ms = t;
    }
    Ok(v)
}

/// The runtime of a command that talks to the exchange (`run`, `plan`,
/// `reconcile`): one thread, the one that waits on it. Its work is small
/// pieces of I/O per request (sign, send, read the answer) between waits
/// on the exchange and on the journal thread, which does the heavy part
/// (SQLite) on its own thread. A multi-threaded runtime on top of that
/// handed every answer and every journal acknowledgement between its
/// workers and the thread waiting on it: 2 to 3 times the context
/// switches, about 10 % more CPU, and no more throughput (`hqx run` of
/// 10,000 orders against an `hqx sandbox`, `perf stat`).
pub fn client_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))
}

/// A multi-threaded tokio runtime (the `hqx sandbox` server).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))
}

fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}
