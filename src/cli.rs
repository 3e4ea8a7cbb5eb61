//! The command line: argument parsing, and one `run_*` function per
//! subcommand that sets things up and hands over to the library.
//!
//! Errors that reach the user are [`Failure`]s: an exit code and a message
//! that says what to do next. `main` maps them to the process exit code.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::batch::{self, Batch};
use crate::client::{now_ms, Client, ClientConfig, Credentials};
use crate::executor::{exit, Executor, RunOptions, RunReport, Stop};
use crate::journal::{Journal, JournalWriter, Registration, StateChange, Write};
use crate::order::{transition, Event, OrderState};
use crate::sandbox::{FaultSpec, Sandbox, SandboxConfig};
use crate::sign::Secret;
use crate::venue::{Venue, PRODUCTION_BASE_URL};

/// hqx: run declarative order batches on Haqqex, exactly once, journaled in SQLite.
#[derive(Debug, Parser)]
#[command(name = "hqx", version, about, long_about = None)]
pub struct Cli {
    /// The SQLite journal.
    #[arg(long, global = true, env = "HQX_JOURNAL", default_value = "hqx.db")]
    pub journal: PathBuf,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the exchange (shared by `run` and `plan`).
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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a batch file; send and write nothing.
    Validate {
        /// The batch file.
        file: PathBuf,
    },
    /// Show what `run` would do; send and write nothing.
    Plan {
        /// The batch file.
        file: PathBuf,
    },
    /// Place the batch's orders, run its queries, journal everything.
    Run {
        /// The batch file.
        file: PathBuf,
        /// How to reach the exchange.
        #[command(flatten)]
        conn: Connection,
        /// Don't ask for confirmation before placing orders on a real exchange.
        #[arg(long, short = 'y')]
        yes: bool,
        /// How long (ms) after its last send an order not seen on the
        /// exchange counts as absent, so that it may be sent again.
        #[arg(long, default_value_t = 30_000)]
        absent_grace_ms: u64,
    },
    /// Serve the sandbox exchange on 127.0.0.1 until interrupted.
    Sandbox(SandboxArgs),
    /// Settle an order whose outcome is unknown, by what you know.
    Resolve {
        /// The batch id.
        batch: String,
        /// The order id within the batch.
        order: String,
        /// What happened: `placed` (it is on the exchange) or `absent` (it is not; it will be sent again).
        #[arg(long = "as", value_enum)]
        outcome: Outcome,
        /// The exchange's order id (required with --as placed: hqx tracks the order by it).
        #[arg(long)]
        exchange_id: Option<String>,
    },
}

/// Options of `hqx sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Public key (default: random; also HAQQEX_PUBLIC_KEY).
    #[arg(long, env = "HAQQEX_PUBLIC_KEY")]
    pub api_key: Option<String>,
    /// Secret key (default: random; also HAQQEX_PRIVATE_KEY).
    #[arg(long, env = "HAQQEX_PRIVATE_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub secret: Option<Secret>,
    /// Keep the exchange's state in this file across restarts.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Requests per second it accepts before answering 429.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Injected faults, e.g. latency=5ms,error5xx=0.1,drop=0.1,reset=0.05,limit429=0.05,stall=0.02
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed of the fault draws (same seed, same faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Venue profile (YAML): the paths to serve, the timestamp window, and
    /// whether orders carry a client order id.
    #[arg(long, env = "HQX_VENUE")]
    pub venue: Option<PathBuf>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// A person's verdict on an unknown order.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Outcome {
    /// The order is on the exchange.
    Placed,
    /// The order is not on the exchange.
    Absent,
}

/// An error for the user: exit code and message.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: i32,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
    fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::FAILED,
            message: message.into(),
        }
    }
}

impl From<crate::journal::JournalError> for Failure {
    fn from(e: crate::journal::JournalError) -> Self {
        Failure::failed(e.to_string())
    }
}

/// Run the parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Validate { ref file } => validate(file),
        Command::Plan { ref file } => plan(&cli.journal, file),
        Command::Run {
            ref file,
            ref conn,
            yes,
            absent_grace_ms,
        } => run_batch(&cli.journal, file, conn, yes, absent_grace_ms),
        Command::Sandbox(ref args) => serve_sandbox(args),
        Command::Resolve {
            ref batch,
            ref order,
            outcome,
            ref exchange_id,
        } => resolve(&cli.journal, batch, order, outcome, exchange_id.as_deref()),
    }
}

fn load_batch(file: &Path) -> Result<Batch, Failure> {
    batch::load(file).map_err(|e| Failure::usage(e.to_string()))
}

fn validate(file: &Path) -> Result<i32, Failure> {
    let b = load_batch(file)?;
    println!(
        "{}: batch `{}` is valid: {} order(s), {} quer{}",
        file.display(),
        b.id,
        b.orders.len(),
        b.queries.len(),
        if b.queries.len() == 1 { "y" } else { "ies" }
    );
    Ok(exit::OK)
}

fn conflicts_message(b: &Batch, reg: &Registration) -> String {
    let mut m = String::new();
    for (id, old, new) in &reg.conflicts {
        m.push_str(&format!(
            "{}: order `{id}` was journaled as {old} but the file now says {new}\n",
            b.path.display()
        ));
    }
    m.push_str(&format!(
        "{} order(s) changed under an id already journaled; nothing was sent. An order id names one order forever: restore the original text, or give the changed order a new id.",
        reg.conflicts.len()
    ));
    m
}

fn plan(journal_path: &Path, file: &Path) -> Result<i32, Failure> {
    let b = load_batch(file)?;
    let rows = if journal_path.exists() {
        Journal::open(journal_path)?.orders(&b.id)?
    } else {
        Vec::new()
    };
    let by_id: std::collections::HashMap<&str, &crate::journal::OrderRow> =
        rows.iter().map(|r| (r.order_id.as_str(), r)).collect();
    let (mut place, mut done, mut conflict, mut other) = (0, 0, 0, 0);
    println!("batch `{}` ({}):", b.id, file.display());
    for spec in &b.orders {
        let body = spec.intent.body(None);
        let (what, extra) = match by_id.get(spec.id.as_str()) {
            None => {
                place += 1;
                ("to place", String::new())
            }
            Some(r) if r.body != body => {
                conflict += 1;
                ("CONFLICT", format!(" (journal has {})", r.body))
            }
            Some(r) if r.state == OrderState::Pending => {
                place += 1;
                ("to place", " (journaled, not yet placed)".into())
            }
            Some(r) if r.state.is_placed() || r.state == OrderState::Rejected => {
                done += 1;
                ("already", format!(" ({})", r.state))
            }
            Some(r) => {
                other += 1;
                (
                    "to resolve",
                    format!(" ({}: will be looked up on the exchange first)", r.state),
                )
            }
        };
        let i = &spec.intent;
        println!(
            "  {what:<10} {:<16} {} {} {} {}{}{extra}",
            spec.id,
            i.side,
            i.quantity,
            i.pair,
            i.kind,
            i.price
                .as_ref()
                .map(|p| format!(" @ {p}"))
                .unwrap_or_default()
        );
    }
    println!(
        "{place} to place, {done} already placed or rejected, {other} to resolve, {conflict} conflict(s); {} quer{} to run",
        b.queries.len(),
        if b.queries.len() == 1 { "y" } else { "ies" }
    );
    Ok(if conflict > 0 { exit::USAGE } else { exit::OK })
}

/// The lock file that makes one batch run at a time per journal.
fn lock_batch(journal_path: &Path, batch_id: &str) -> Result<std::fs::File, Failure> {
    use sha2::{Digest, Sha256};
    let tag = &hex::encode(Sha256::digest(batch_id.as_bytes()))[..16];
    let mut name = journal_path.as_os_str().to_owned();
    name.push(format!(".{tag}.lock"));
    let path = PathBuf::from(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::failed(format!("cannot create lock file {}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Failure {
            code: exit::BUSY,
            message: format!(
                "batch `{batch_id}` is busy: another hqx is running it on journal {}; wait for it to finish, then run again",
                journal_path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Failure::failed(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn sidecar(journal_path: &Path, suffix: &str) -> PathBuf {
    let mut name = journal_path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Credentials for the in-process sandbox: made once, kept beside the
/// journal in the exchange's own key-object format.
fn sandbox_credentials(journal_path: &Path) -> Result<Credentials, Failure> {
    let path = sidecar(journal_path, ".sandbox-key.json");
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
    })
}

fn credentials(conn: &Connection) -> Result<Credentials, Failure> {
    if let Some(f) = &conn.key_file {
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

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
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

fn run_batch(
    journal_path: &Path,
    file: &Path,
    conn: &Connection,
    yes: bool,
    absent_grace_ms: u64,
) -> Result<i32, Failure> {
    // Everything that can be refused is checked before anything is
    // written or sent.
    let b = Arc::new(load_batch(file)?);
    let venue = load_venue(conn)?;
    let creds = if conn.sandbox {
        sandbox_credentials(journal_path)?
    } else {
        credentials(conn)?
    };
    creds.check_expiry(now_ms()).map_err(Failure::usage)?;
    let _lock = lock_batch(journal_path, &b.id)?;

    let rt = runtime()?;
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
    // The journal binds a batch to an exchange: the in-process sandbox's
    // port changes every run, so it is named by its state file instead.
    let binding = if conn.sandbox {
        format!(
            "sandbox:{}",
            sidecar(journal_path, ".sandbox.jsonl").display()
        )
    } else {
        base_url.clone()
    };

    // A refusal at the prompt leaves no journal behind: with no journal
    // yet, every order is to place, so ask before creating it.
    let ask = !yes && !conn.sandbox && !is_loopback(&base_url);
    let journal_existed = journal_path.exists();
    if ask && !journal_existed && !b.orders.is_empty() {
        confirm(&b, b.orders.len(), &base_url, &creds.api_key)?;
    }
    let mut journal = Journal::open(journal_path)?;
    let reg = journal.compare(&b)?;
    if !reg.conflicts.is_empty() {
        return Err(Failure::usage(conflicts_message(&b, &reg)));
    }
    if let Some(row) = journal.batch(&b.id)? {
        if row.base_url != binding || row.api_key != creds.api_key {
            return Err(Failure::usage(format!(
                "batch `{}` is journaled against {} with key {}, not {} with key {}; an order batch runs against one exchange account. Use another journal (--journal) or another batch id.",
                b.id, row.base_url, row.api_key, binding, creds.api_key
            )));
        }
    }
    let to_place = b.orders.len() - reg.known;
    if ask && journal_existed && to_place > 0 {
        confirm(&b, to_place, &base_url, &creds.api_key)?;
    }
    match journal.register(&b, &binding, &creds.api_key, now_ms())? {
        Ok(_) => {}
        Err(m) => {
            return Err(Failure::usage(format!(
                "batch `{}` is journaled against {}; refusing to run it elsewhere",
                b.id, m.journal.base_url
            )))
        }
    }
    let run_id = journal.begin_run(&b.id, "run", now_ms())?;

    let client = Arc::new(
        Client::new(
            ClientConfig {
                base_url: base_url.clone(),
                rate: conn.rate.unwrap_or(venue.rate),
                burst: conn.burst.or(conn.rate).unwrap_or(venue.burst),
                concurrency: conn.concurrency,
                venue,
            },
            creds,
        )
        .map_err(Failure::failed)?,
    );
    let (writer, thread) = JournalWriter::spawn(journal);
    let stop = Arc::new(Stop::default());
    let opts = RunOptions {
        absent_grace: Duration::from_millis(absent_grace_ms),
        ..RunOptions::default()
    };
    let exec = Executor::new(
        client,
        writer.clone(),
        b.clone(),
        run_id,
        opts,
        stop.clone(),
    );
    let report = rt.block_on(async {
        let stopper = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "interrupted: no new orders will be sent; waiting for requests in flight"
                );
                stopper.set();
                // A second Ctrl-C means "now": leaving at once is as safe
                // as a crash, which the next run recovers from.
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "interrupted again: exiting now; the next run resolves what was in flight"
                    );
                    std::process::exit(exit::INTERRUPTED);
                }
            }
        });
        let r = exec.run().await;
        if let Some(sb) = sandbox {
            sb.shutdown().await;
        }
        r
    });
    // Whatever the run's outcome, let the journal thread write everything
    // still queued (answers of requests that completed) before leaving.
    drop(exec);
    drop(writer);
    let mut journal = thread
        .join()
        .map_err(|_| Failure::failed("the journal thread panicked"))?;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = journal.finish_run(run_id, exit::FAILED, &format!("error: {e}"), now_ms());
            return Err(e.into());
        }
    };
    let summary = print_report(&b, &report, journal_path);
    journal.finish_run(run_id, report.exit_code, &summary, now_ms())?;
    Ok(report.exit_code)
}

fn confirm(b: &Batch, n: usize, base_url: &str, api_key: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "about to place {n} order(s) of batch `{}` on {base_url}; standard input is not a terminal, so pass --yes to confirm",
            b.id
        )));
    }
    eprint!(
        "Place {n} order(s) of batch `{}` on {base_url} with key {api_key}? [y/N] ",
        b.id
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::usage("not confirmed; nothing was sent"))
    }
}

/// Print the run's summary to stdout; returns a one-line summary for the journal.
fn print_report(b: &Batch, r: &RunReport, journal_path: &Path) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<18} {:<10} {:<14} {:<14} {}\n",
        "ORDER", "STATE", "EXCHANGE ID", "FILLED", "NOTE"
    ));
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let show_each = r.orders.len() <= 200;
    for o in &r.orders {
        *counts.entry(o.state.as_str()).or_default() += 1;
        if show_each || !matches!(o.state, OrderState::Open | OrderState::Filled) {
            out.push_str(&format!(
                "{:<18} {:<10} {:<14} {:<14} {}\n",
                o.order_id,
                o.state.as_str(),
                o.exchange_order_id.as_deref().unwrap_or("-"),
                o.filled_quantity.as_deref().unwrap_or("-"),
                o.last_error.as_deref().unwrap_or("")
            ));
        }
    }
    for (id, q) in &r.queries {
        match q {
            Ok(s) => out.push_str(&format!("query {id}: {s}\n")),
            Err(e) => out.push_str(&format!("query {id}: FAILED: {e}\n")),
        }
    }
    let counts_text = counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let line = format!(
        "batch `{}`: {} order(s): {}",
        b.id,
        r.orders.len(),
        if counts_text.is_empty() {
            "none".into()
        } else {
            counts_text
        }
    );
    out.push_str(&line);
    out.push_str(&format!("; journal: {}\n", journal_path.display()));
    print!("{out}");
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if !r.unresolved.is_empty() {
        eprintln!(
            "{} order(s) have an outcome hqx could not prove: {}. Nothing more was sent for this batch. Run again once the exchange answers, or check the exchange's order history and settle each with `hqx resolve {} ORDER --as placed|absent`.",
            r.unresolved.len(),
            r.unresolved.join(", "),
            b.id
        );
    }
    if r.interrupted {
        eprintln!(
            "interrupted: orders not yet sent stay pending; run the same file again to continue"
        );
    }
    line
}

fn serve_sandbox(args: &SandboxArgs) -> Result<i32, Failure> {
    let port = args.port;
    let faults: FaultSpec = args
        .faults
        .parse()
        .map_err(|e: String| Failure::usage(format!("--faults: {e}")))?;
    let (gk, gs) = crate::sandbox::generate_credentials();
    let key = args.api_key.clone().unwrap_or(gk);
    let secret = args.secret.clone().unwrap_or(gs);
    let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
    cfg.state_path = args.state.clone();
    cfg.rate = args.rate;
    cfg.faults = faults;
    cfg.seed = args.seed;
    if let Some(p) = &args.venue {
        cfg.venue = Venue::load(p).map_err(Failure::usage)?;
    }
    let rt = runtime()?;
    rt.block_on(async {
        let sb = Sandbox::start(cfg, ([127, 0, 0, 1], port).into())
            .await
            .map_err(|e| {
                Failure::failed(format!("cannot start the sandbox on port {port}: {e}"))
            })?;
        println!("sandbox listening on {}", sb.base_url());
        println!("HQX_BASE_URL={}", sb.base_url());
        println!("HAQQEX_PUBLIC_KEY={key}");
        // The sandbox's own, throw-away key: printing it is the point.
        println!("HAQQEX_PRIVATE_KEY={}", secret.expose());
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        sb.shutdown().await;
        Ok(exit::OK)
    })
}

fn resolve(
    journal_path: &Path,
    batch_id: &str,
    order_id: &str,
    outcome: Outcome,
    exchange_id: Option<&str>,
) -> Result<i32, Failure> {
    if !journal_path.exists() {
        return Err(Failure::usage(format!(
            "no journal at {}; pass --journal",
            journal_path.display()
        )));
    }
    let _lock = lock_batch(journal_path, batch_id)?;
    let mut j = Journal::open(journal_path)?;
    let rows = j.orders(batch_id)?;
    let Some(o) = rows.iter().find(|o| o.order_id == order_id) else {
        return Err(Failure::usage(format!(
            "batch `{batch_id}` has no order `{order_id}` in {}",
            journal_path.display()
        )));
    };
    let event = match outcome {
        Outcome::Placed => Event::DeclaredPlaced,
        Outcome::Absent => Event::DeclaredAbsent,
    };
    let to = transition(o.state, event).map_err(|_| {
        Failure::usage(format!(
            "order `{order_id}` is `{}`, not `unknown`: there is nothing to resolve",
            o.state
        ))
    })?;
    match (outcome, exchange_id) {
        (Outcome::Placed, None) => {
            return Err(Failure::usage(format!(
                "--as placed needs --exchange-id: the exchange's id of order `{order_id}`, from the account's order history; hqx follows the order by it"
            )))
        }
        (Outcome::Absent, Some(_)) => {
            return Err(Failure::usage(
                "--exchange-id goes with --as placed; an absent order has none (drop it, or say --as placed)",
            ))
        }
        (Outcome::Placed, Some(x)) if j.exchange_ids_in_use()?.contains(x) => {
            return Err(Failure::usage(format!(
                "exchange order `{x}` already belongs to another journal order; one exchange order cannot be two batch orders: check the id (SELECT batch_id, order_id FROM orders WHERE exchange_order_id = '{x}')"
            )))
        }
        _ => {}
    }
    let run_id = j.begin_run(batch_id, "resolve", now_ms())?;
    let change = StateChange {
        batch_id: batch_id.into(),
        order_id: order_id.into(),
        run_id: Some(run_id),
        at_ms: now_ms(),
        event: event.name(),
        from: Some(o.state),
        to: Some(to),
        detail: Some(format!("declared by hand ({outcome:?})")),
        exchange_order_id: exchange_id.map(str::to_string),
        last_error: Some(None),
        ..Default::default()
    };
    for r in j.apply(&[Write::State(change)])? {
        r?;
    }
    let msg = format!(
        "order `{order_id}` of batch `{batch_id}`: {} -> {to}",
        o.state
    );
    j.finish_run(run_id, exit::OK, &msg, now_ms())?;
    println!("{msg}");
    Ok(exit::OK)
}
