//! A Haqqex-compatible exchange on loopback: the sandbox.
//!
//! Why it exists: hqx's promise is "every order exactly once", and that
//! can only be shown against an exchange that misbehaves on demand. The
//! real exchange cannot be asked to drop an answer after accepting an
//! order, or to be killed mid-request. The sandbox implements the
//! contract's published facts and every assumption in [`crate::venue`]
//! (paths, timestamp window, client order ids), with:
//!
//! - the real authentication (HMAC over the exact bytes received, a GET
//!   carrying `{}` as the published sample client sends it);
//! - an account with funds, house liquidity around a reference price per
//!   pair, fills (partial ones too) with fees, resting orders, cancels,
//!   trades and balances;
//! - a market that moves on demand ([`Control`]: `POST /sandbox/market`,
//!   `/sandbox/fill`, `/sandbox/deposit`, or [`Sandbox::control`]), and a
//!   trigger that moves it between two pages of a client's trade reads
//!   ([`Sandbox::after_trades_pages`]);
//! - seeded, replayable faults ([`FaultSpec`]): latency, 5xx, answers
//!   lost after the order was committed, reset connections, 429s, stalls;
//! - an optional rate limit;
//! - an optional state file, an append-only log written before each
//!   answer, so state survives restarts and `kill -9` of its host;
//! - `GET /sandbox/orders` (no auth, never faulted): every order it
//!   accepted with the raw body received, so tests can compare what hqx
//!   sent with what it journaled; `GET /sandbox/trades` likewise lists
//!   every trade.
//!
//! It runs inside `hqx run --sandbox`, `hqx sandbox`, and the tests.
//! Submodules: `faults` (the spec and its seeded draws), `exchange` (the
//! books, pure), `store` (the state file), `http` (routing, auth,
//! endpoints). This file holds the public API and the accept loop.

mod exchange;
mod faults;
mod http;
mod store;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{Quota, RateLimiter};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::sign::Secret;
use crate::venue::Venue;

pub use faults::{FaultSpec, DEFAULT_STALL_FOR};

use faults::FaultState;
use http::{lock, RateLimit, Routes, Shared};
use store::Books;

/// How long [`Sandbox::shutdown`] waits for requests in flight before it
/// drops their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to run a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The one API key it accepts.
    pub api_key: String,
    /// The secret that key signs with.
    pub secret: Secret,
    /// Where to keep state across restarts; `None` keeps it in memory.
    pub state_path: Option<PathBuf>,
    /// Requests per second it accepts on API routes (burst the same);
    /// `None` for no limit.
    pub rate: Option<u32>,
    /// Faults to inject from the start.
    pub faults: FaultSpec,
    /// Seed of the fault draws.
    pub seed: u64,
    /// Paths served and the timestamp window (the venue's assumptions).
    pub venue: Venue,
    /// The fee on every fill, as a share of its notional (price ×
    /// quantity), charged in the pair's quote currency. From 0 (no fees)
    /// to less than 1; default 0.001 (0.1 %).
    pub fee_rate: Decimal,
}

impl SandboxConfig {
    /// A configuration with no state file, no rate limit, no faults, seed
    /// 0, the default venue and a fee rate of 0.001.
    pub fn new(api_key: impl Into<String>, secret: Secret) -> Self {
        SandboxConfig {
            api_key: api_key.into(),
            secret,
            state_path: None,
            rate: None,
            faults: FaultSpec::default(),
            seed: 0,
            venue: Venue::default(),
            fee_rate: Decimal::new(1, 3),
        }
    }
}

/// A fresh key pair in the shape Haqqex issues: the API key a UUID v4, the
/// secret 32 URL-safe characters (`A-Z a-z 0-9 _ -`) from the OS's
/// random source.
pub fn generate_credentials() -> (String, Secret) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rngs::OsRng;
    // Never a leading `-`: `--secret -x...` reads as an option to clap
    // (and to most command lines), 1 time in 64.
    let secret: String = (0..32)
        .map(|i| {
            let choices = if i == 0 { 62 } else { ALPHABET.len() };
            ALPHABET[rng.gen_range(0..choices)] as char
        })
        .collect();
    (uuid::Uuid::new_v4().to_string(), Secret::new(secret))
}

/// One order as the sandbox received it: what `GET /sandbox/orders`
/// lists (camelCase on the wire).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedOrder {
    /// Acceptance sequence number, from 1, continuing across restarts.
    pub seq: u64,
    /// The exchange's order id.
    pub id: String,
    /// The pair, e.g. `BTC-USDC`.
    pub pair: String,
    /// `limit` or `market`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `buy` or `sell`.
    pub side: String,
    /// The quantity as received.
    pub quantity: String,
    /// The limit price as received; `None` for market orders.
    pub price: Option<String>,
    /// The client order id, where the venue profile enables one.
    pub client_order_id: Option<String>,
    /// The request body exactly as received.
    pub received_body: String,
    /// When it was accepted, ms since the epoch.
    pub created_at: i64,
    /// `open`, `filled` or `cancelled`, as it stands now.
    pub status: String,
}

/// One trade as the sandbox made it: what `GET /sandbox/trades` lists,
/// the trade object of the API (camelCase on the wire). Decimals are
/// normalized decimal strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedTrade {
    /// The trade id, e.g. `T0000000001`.
    pub id: String,
    /// The id of the order it filled.
    pub order_id: String,
    /// The pair, e.g. `BTC-USDC`.
    pub pair: String,
    /// The order's side, `buy` or `sell`.
    pub side: String,
    /// The fill price.
    pub price: String,
    /// This fill's quantity (not the order's).
    pub quantity: String,
    /// The fee: price × quantity × the fee rate.
    pub fee: String,
    /// The fee's currency: the pair's quote currency.
    pub fee_currency: String,
    /// When it traded, ms since the epoch.
    pub timestamp: i64,
}

/// A change to the sandbox's market or account, made from outside the
/// exchange API: by a test ([`Sandbox::control`]) or over HTTP
/// (`POST /sandbox/market`, `/sandbox/fill`, `/sandbox/deposit`).
/// Decimals are given as text, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Set `pair`'s reference price to `price`; every open order on the
    /// pair that now crosses it (a buy with limit ≥ price, a sell with
    /// limit ≤ price) fills its whole remainder at its own limit price.
    Market {
        /// e.g. `BTC-USDC`.
        pair: String,
        /// e.g. `26000`.
        price: String,
    },
    /// Fill `quantity` of an open order at its limit price (`None`: all
    /// that remains).
    Fill {
        /// The exchange's order id.
        order_id: String,
        /// How much to fill; more than zero and at most what remains.
        quantity: Option<String>,
    },
    /// Credit `amount` `currency` to the available balance.
    Deposit {
        /// e.g. `USDC`.
        currency: String,
        /// e.g. `1000`.
        amount: String,
    },
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The configuration cannot be served (e.g. a bad venue path).
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file could not be opened, read or replayed.
    #[error("sandbox state file {}: {message}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// A running sandbox. Stop it with [`Sandbox::shutdown`]; dropping it
/// stops it too, without waiting.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Replay the state file (if any), bind `addr` (port 0 picks a free
    /// port), and serve on the current tokio runtime. Returns once
    /// listening.
    pub async fn start(config: SandboxConfig, addr: SocketAddr) -> Result<Sandbox, SandboxError> {
        let routes = Routes::new(&config.venue.paths).map_err(SandboxError::Config)?;
        let limiter = match config.rate {
            None => None,
            Some(n) => {
                let n = NonZeroU32::new(n).ok_or_else(|| {
                    SandboxError::Config(
                        "rate must be at least 1 request/s; leave it unset for no limit".into(),
                    )
                })?;
                Some(RateLimit {
                    limiter: RateLimiter::direct(Quota::per_second(n).allow_burst(n)),
                    per_second: n.get(),
                })
            }
        };
        if config.fee_rate.is_sign_negative() || config.fee_rate >= Decimal::ONE {
            return Err(SandboxError::Config(format!(
                "fee rate {} must be from 0 to less than 1, like 0.001",
                config.fee_rate
            )));
        }
        let path = config.state_path.clone();
        let fee_rate = config.fee_rate;
        let books = tokio::task::spawn_blocking(move || Books::open(path.as_deref(), fee_rate))
            .await
            .map_err(|e| SandboxError::Config(format!("replaying the state file failed: {e}")))??;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            api_key: config.api_key,
            secret: config.secret,
            timestamp_window_ms: config.venue.timestamp_window_ms,
            trades_page_limit: config.venue.trades_page_limit.max(1),
            orders_page_limit: config.venue.orders_page_limit.max(1),
            client_order_id_field: config.venue.client_order_id_field.clone(),
            routes,
            books: Mutex::new(books),
            faults: Mutex::new(FaultState::new(config.faults, config.seed)),
            limiter,
            shutdown: stopped.clone(),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        tracing::debug!(addr = %local, "sandbox listening");
        Ok(Sandbox {
            shared,
            addr: local,
            stop,
            server,
        })
    }

    /// The base URL to give a client, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Replace the faults in force and restart their draws from `seed`.
    pub fn set_faults(&self, faults: FaultSpec, seed: u64) {
        *lock(&self.shared.faults) = FaultState::new(faults, seed);
    }

    /// Every order accepted, in sequence: the data of `GET /sandbox/orders`.
    pub fn accepted_orders(&self) -> Vec<AcceptedOrder> {
        http::accepted_orders(&self.shared)
    }

    /// Every trade made, oldest first: the data of `GET /sandbox/trades`.
    pub fn accepted_trades(&self) -> Vec<AcceptedTrade> {
        http::accepted_trades(&self.shared)
    }

    /// Change the market or the account (see [`Control`]), exactly as the
    /// `POST /sandbox/...` endpoints do (they call this same code): made
    /// durable in the state file, then applied. Returns the JSON those
    /// endpoints answer; `Err` holds the message of their 400/404/409.
    pub fn control(&self, c: Control) -> Result<serde_json::Value, String> {
        http::control(&self.shared, &c).map_err(|r| r.message)
    }

    /// Arm `action` to run once the sandbox has answered `n` more
    /// `GET` my-trades requests successfully (counted from this call):
    /// it runs inside the same critical section that produced the n-th
    /// page, so the very next request sees its effect. `n = 0` runs it
    /// now. If the action is refused when it runs (e.g. the order is no
    /// longer open), it is dropped with a warning in the log.
    pub fn after_trades_pages(&self, n: u32, action: Control) {
        http::arm_trigger(&self.shared, n, action);
    }

    /// Stop: no new connections; requests in flight finish (stalls end at
    /// once with their 504), idle connections close. Waits at most a few
    /// seconds, then drops what is left.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
    }
}

/// Resolves once the sandbox is told to stop, or its handle is dropped.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accept connections until told to stop, then drain them.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    let for_conns = stop.clone();
    loop {
        tokio::select! {
            // Also ends when the `Sandbox` is dropped (the sender goes).
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, shared.clone(), for_conns.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!("sandbox cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// Serve one HTTP/1.1 connection; on stop, finish the request in flight
/// and close.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| http::serve(shared.clone(), req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!("sandbox connection ended: {e}");
            }
            return;
        }
        _ = stopped(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
