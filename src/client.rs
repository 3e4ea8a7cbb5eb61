//! The signed, rate-limited REST client.
//!
//! Every request goes through [`Client::send`]: wait for a concurrency slot
//! and the rate limiter, stamp and sign the exact body bytes, send, and
//! classify what happened by what it proves. The classification is the
//! heart of exactly-once: [`SendError::NotSent`] means the request provably
//! never reached the exchange (the connection was never made), so it may be
//! sent again; [`SendError::NoAnswer`] means it may have arrived, so a
//! placement must not be blindly resent.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use governor::{Quota, RateLimiter};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::journal::HttpRecord;
pub use crate::key::Credentials;
use crate::sign::Signer;
use crate::venue::Venue;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How the client is set up.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, no trailing slash.
    pub base_url: String,
    /// Venue assumptions (paths, timeouts).
    pub venue: Venue,
    /// Requests per second.
    pub rate: u32,
    /// Burst.
    pub burst: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// A request that got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request provably never reached the exchange.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the exchange; no answer was seen.
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// `Retry-After`, when the exchange sent one.
    pub retry_after: Option<Duration>,
    /// The exchange's clock (`Date` header), when sent.
    pub server_time: Option<SystemTime>,
}

impl Reply {
    /// The message of an error body (`message`, `error`, `msg`), or the raw text.
    pub fn message(&self) -> String {
        let v: Option<Value> = serde_json::from_str(&self.body).ok();
        let m = v.as_ref().and_then(|v| {
            ["message", "error", "msg", "detail"]
                .iter()
                .find_map(|k| v.get(k).and_then(Value::as_str))
                .map(str::to_string)
        });
        let text = m.unwrap_or_else(|| self.body.chars().take(300).collect());
        format!("HTTP {}: {}", self.status, text)
    }

    /// How far the exchange's clock is ahead of ours, in seconds, if known.
    pub fn clock_skew_secs(&self) -> Option<i64> {
        let server = self.server_time?;
        let ours = SystemTime::now();
        Some(match server.duration_since(ours) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        })
    }
}

/// The HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (sent with the `{}` body, as the sample client does).
    Get,
    /// POST.
    Post,
    /// DELETE (sent with the `{}` body).
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// Permission to send one request now: a concurrency slot, taken after
/// the rate limiter let it through.
pub struct Slot<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

/// Permission to journal an order as `sending`: the rate limiter let it
/// through and it is one of at most [`AHEAD_PER_SLOT`] × concurrency orders
/// so marked while they wait for a [`Slot`].
pub struct Ready<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

/// How many orders per concurrency slot may be journaled `sending` while
/// they wait for a slot. Journaling is durable (an fsync per group commit,
/// milliseconds on a shared disk), so orders are marked ahead of the slots
/// they will use, and one commit covers many of them; were each marked only
/// inside its slot, each slot would wait out a commit per request and the
/// throughput would be the concurrency divided by the commit time. After a
/// crash, at most this many orders per slot more are `unknown` and resolved
/// as usual.
pub const AHEAD_PER_SLOT: usize = 8;

/// The signed client.
pub struct Client {
    http: crate::transport::Transport,
    cfg: ClientConfig,
    creds: Credentials,
    limiter: Mutex<Arc<Limiter>>,
    rate: AtomicU32,
    paused_until: Mutex<Option<Instant>>,
    slots: Semaphore,
    ahead: Semaphore,
    observer: std::sync::OnceLock<Observer>,
    /// The secret, keyed for HMAC once.
    signer: Signer,
    /// The key as a header value, checked once.
    api_key_header: Option<hyper::header::HeaderValue>,
    /// Parsed URLs of the paths requested so far (a few: a placement's is
    /// the same for every order), so that each request does not parse its
    /// URL again (about a tenth of a request's instructions).
    urls: Mutex<std::collections::HashMap<String, reqwest::Url>>,
}

/// Most parsed URLs kept (paths with an order id or a query are many).
const URLS_KEPT: usize = 64;

static X_API_KEY: hyper::header::HeaderName = hyper::header::HeaderName::from_static("x-api-key");
static X_API_TIMESTAMP: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-api-timestamp");
static X_API_SIGN: hyper::header::HeaderName = hyper::header::HeaderName::from_static("x-api-sign");

/// What a request did, for a progress display ([`Client::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEvent {
    /// A signed request is about to leave.
    Sent,
    /// Its answer came: `ok` is false for no answer or an HTTP status >= 400.
    Answered {
        /// Whether the exchange answered below 400.
        ok: bool,
    },
}

/// Called for every [`RequestEvent`]; must not block.
pub type Observer = Arc<dyn Fn(RequestEvent) + Send + Sync>;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.cfg.base_url)
            .field("api_key", &self.creds.api_key)
            .finish_non_exhaustive()
    }
}

/// The rate limiter, on the standard monotonic clock. (governor's default
/// clock, quanta's, calibrates the CPU's counter against it first: 8.4 M
/// instructions under callgrind, a few milliseconds of every command that
/// talks to the exchange, for a limiter that waits milliseconds anyway.)
type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::MonotonicClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

fn limiter(rate: u32, burst: u32) -> Arc<Limiter> {
    let rate = std::num::NonZeroU32::new(rate.max(1)).expect("max(1)");
    let burst = std::num::NonZeroU32::new(burst.max(1)).expect("max(1)");
    Arc::new(RateLimiter::direct_with_clock(
        Quota::per_second(rate).allow_burst(burst),
        governor::clock::MonotonicClock,
    ))
}

impl Client {
    /// Build a client.
    pub fn new(cfg: ClientConfig, creds: Credentials) -> Result<Client, String> {
        let http = crate::transport::Transport::new(
            &cfg.base_url,
            Duration::from_millis(cfg.venue.request_timeout_ms.min(5_000)),
            cfg.concurrency.max(1),
            concat!("hqx/", env!("CARGO_PKG_VERSION")),
        )?;
        // A key that is no header value fails each request as before.
        let api_key_header = hyper::header::HeaderValue::from_str(&creds.api_key).ok();
        Ok(Client {
            signer: Signer::new(&creds.secret),
            api_key_header,
            urls: Mutex::new(std::collections::HashMap::new()),
            http,
            limiter: Mutex::new(limiter(cfg.rate, cfg.burst)),
            rate: AtomicU32::new(cfg.rate),
            paused_until: Mutex::new(None),
            slots: Semaphore::new(cfg.concurrency.max(1)),
            ahead: Semaphore::new(cfg.concurrency.max(1) * AHEAD_PER_SLOT),
            observer: std::sync::OnceLock::new(),
            cfg,
            creds,
        })
    }

    /// Tell `f` about every request from now on (once per client; a
    /// second observer is ignored). Used for the progress bar.
    pub fn observe(&self, f: Observer) {
        let _ = self.observer.set(f);
    }

    fn notify(&self, e: RequestEvent) {
        if let Some(f) = self.observer.get() {
            f(e);
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.cfg.base_url
    }

    /// The venue profile in use.
    pub fn venue(&self) -> &Venue {
        &self.cfg.venue
    }

    /// The key (its secret never shows in `Debug`).
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The public key.
    pub fn api_key(&self) -> &str {
        &self.creds.api_key
    }

    /// How many requests may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.cfg.concurrency.max(1)
    }

    /// The request rate now in force (lowered after a 429).
    pub fn current_rate(&self) -> u32 {
        self.rate.load(Ordering::Relaxed)
    }

    /// After a 429: pause every request for `retry_after` and halve the
    /// rate for the rest of the run.
    pub fn back_off(&self, retry_after: Duration) {
        let now = Instant::now();
        let until = now + retry_after;
        let already_paused = {
            let mut p = self.paused_until.lock().expect("lock");
            let already = p.is_some_and(|t| t > now);
            if p.is_none_or(|t| t < until) {
                *p = Some(until);
            }
            already
        };
        // Many requests in flight hit the same limit at once: halve once
        // per pause, not once per 429.
        if already_paused {
            return;
        }
        let old = self.rate.load(Ordering::Relaxed);
        let new = (old / 2).max(1);
        if new < old
            && self
                .rate
                .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let burst = self.cfg.burst.min(new).max(1);
            *self.limiter.lock().expect("lock") = limiter(new, burst);
            tracing::warn!("rate limited by the exchange: slowing to {new} requests/s");
        }
    }

    /// Send one signed request. Returns what happened and the record for
    /// the journal's `http_log` (never holding key, signature or body).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> (Result<Reply, SendError>, HttpRecord) {
        let slot = self.slot().await;
        self.send_in(&slot, method, path_and_query, body).await
    }

    /// Wait for a concurrency slot, any 429 pause, and the rate limiter,
    /// for a request that journals nothing before it leaves. A placement
    /// uses [`Client::ready`], then [`Client::slot_after`].
    pub async fn slot(&self) -> Slot<'_> {
        let permit = self.slots.acquire().await.expect("semaphore never closed");
        let pause = *self.paused_until.lock().expect("lock");
        if let Some(until) = pause {
            tokio::time::sleep_until(until.into()).await;
        }
        let lim = self.limiter.lock().expect("lock").clone();
        lim.until_ready().await;
        Slot { _permit: permit }
    }

    /// Wait for the rate limiter and any 429 pause, within the bound on
    /// orders marked ahead ([`AHEAD_PER_SLOT`]): after this an order may be
    /// journaled `sending`; then [`Client::slot_after`] lets it leave.
    pub async fn ready(&self) -> Ready<'_> {
        let permit = self.ahead.acquire().await.expect("semaphore never closed");
        self.wait_pause().await;
        let lim = self.limiter.lock().expect("lock").clone();
        lim.until_ready().await;
        Ready { _permit: permit }
    }

    /// A concurrency slot for an order made [`Client::ready`] (and
    /// journaled): waits for a request in flight to finish, then for any
    /// 429 pause that began meanwhile.
    pub async fn slot_after(&self, ready: Ready<'_>) -> Slot<'_> {
        let permit = self.slots.acquire().await.expect("semaphore never closed");
        drop(ready);
        self.wait_pause().await;
        Slot { _permit: permit }
    }

    async fn wait_pause(&self) {
        let pause = *self.paused_until.lock().expect("lock");
        if let Some(until) = pause {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Send one signed request inside a slot, giving up on its answer
    /// after `timeout` (at most the client's own request timeout): the
    /// caller journaled when it stops waiting.
    pub async fn send_within(
        &self,
        slot: &Slot<'_>,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> (Result<Reply, SendError>, HttpRecord) {
        self.send_inner(slot, method, path_and_query, body, Some(timeout))
            .await
    }

    /// Send one signed request inside a slot taken with [`Client::slot`].
    pub async fn send_in(
        &self,
        slot: &Slot<'_>,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> (Result<Reply, SendError>, HttpRecord) {
        self.send_inner(slot, method, path_and_query, body, None)
            .await
    }

    async fn send_inner(
        &self,
        _slot: &Slot<'_>,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
        timeout: Option<Duration>,
    ) -> (Result<Reply, SendError>, HttpRecord) {
        // GETs and DELETEs carry `{}` like the published sample client.
        let body = body.unwrap_or("{}");
        let ts = now_ms();
        let ts_text = ts.to_string();
        let signature = self.signer.sign(&ts_text, body.as_bytes());
        let m = match method {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
            Method::Delete => hyper::Method::DELETE,
        };
        let started = Instant::now();
        self.notify(RequestEvent::Sent);
        let result = self
            .exchange(m, path_and_query, &ts_text, signature, body, timeout)
            .await;
        self.notify(RequestEvent::Answered {
            ok: matches!(&result, Ok(r) if r.status < 400),
        });
        let record = HttpRecord {
            run_id: None,
            at_ms: ts,
            method: method.as_str(),
            path: path_and_query.to_string(),
            status: result.as_ref().ok().map(|r| r.status),
            latency_us: started.elapsed().as_micros() as i64,
            error: result.as_ref().err().map(|e| e.to_string()),
            batch_id: None,
            order_id: None,
        };
        (result, record)
    }
}

impl Client {
    /// Sign-stamped headers and body out, the answer back as a [`Reply`].
    async fn exchange(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        ts_text: &str,
        signature: String,
        body: &str,
        timeout: Option<Duration>,
    ) -> Result<Reply, SendError> {
        use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
        // What cannot be a URL or a header value is never sent.
        let not_sent =
            |e: &dyn std::fmt::Display| SendError::NotSent(format!("request failed: {e}"));
        let url = self.url(path_and_query).map_err(|e| not_sent(&e))?;
        let mut headers = HeaderMap::with_capacity(8);
        let key = match &self.api_key_header {
            Some(v) => v.clone(),
            None => HeaderValue::from_str(&self.creds.api_key).map_err(|e| not_sent(&e))?,
        };
        headers.insert(&X_API_KEY, key);
        headers.insert(
            &X_API_TIMESTAMP,
            HeaderValue::from_str(ts_text).map_err(|e| not_sent(&e))?,
        );
        headers.insert(
            &X_API_SIGN,
            HeaderValue::try_from(signature).map_err(|e| not_sent(&e))?,
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let timeout = timeout.unwrap_or(Duration::from_millis(self.cfg.venue.request_timeout_ms));
        let answer = self
            .http
            .send(
                method,
                &url,
                headers,
                bytes::Bytes::copy_from_slice(body.as_bytes()),
                timeout,
            )
            .await;
        match answer {
            Err(crate::transport::Failed::Send(e)) => Err(e),
            Err(crate::transport::Failed::BodyCut { status, why }) => Err(SendError::NoAnswer(
                format!("HTTP {status} but the body was cut: {why}"),
            )),
            Ok(a) => {
                let retry_after = a
                    .headers
                    .get(hyper::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let server_time = a
                    .headers
                    .get(hyper::header::DATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                Ok(Reply {
                    status: a.status,
                    // As `Response::text` (no charset feature): UTF-8, any
                    // invalid sequence replaced. A copy of just the answer:
                    // the body may share hyper's whole read buffer
                    // (kilobytes) behind each small answer (peak RSS 57 ->
                    // 71 MB for 10,000 orders).
                    body: String::from_utf8(a.body.to_vec())
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    retry_after,
                    server_time,
                })
            }
        }
    }

    /// The parsed URL of a path on the exchange, parsed once per path (the
    /// last few dozen kept); the parser's words when it does not parse, so
    /// that the request fails as any unparsable URL does.
    fn url(&self, path_and_query: &str) -> Result<reqwest::Url, String> {
        let mut urls = self.urls.lock().expect("lock");
        if let Some(u) = urls.get(path_and_query) {
            return Ok(u.clone());
        }
        let u = reqwest::Url::parse(&format!("{}{}", self.cfg.base_url, path_and_query))
            .map_err(|e| e.to_string())?;
        // Full of one-off paths (an order's status, a page): start again,
        // so that the paths used again and again are kept.
        if urls.len() >= URLS_KEPT {
            urls.clear();
        }
        urls.insert(path_and_query.to_string(), u.clone());
        Ok(u)
    }
}

/// An order as the exchange reports it, read leniently (the response shape
/// is not published): `id` or `orderId`, numbers as strings or numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeOrder {
    /// The exchange's order id.
    pub id: String,
    /// Pair.
    pub pair: Option<String>,
    /// Side.
    pub side: Option<String>,
    /// Type.
    pub kind: Option<String>,
    /// Quantity.
    pub quantity: Option<String>,
    /// Price.
    pub price: Option<String>,
    /// Status text.
    pub status: Option<String>,
    /// Filled quantity.
    pub filled_quantity: Option<String>,
    /// Average fill price.
    pub average_price: Option<String>,
    /// Creation time, ms.
    pub created_ms: Option<i64>,
    /// Client order id, where supported.
    pub client_order_id: Option<String>,
    /// The order object as the exchange sent it (JSON text).
    pub raw: String,
}

/// A JSON value as text: strings as they are, numbers in their JSON text.
pub fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of several keys present (and not null) in an object.
///
/// The object's few entries are compared with each name rather than
/// looked up: a lookup hashes the name (SipHash), which cost several
/// times more for the dozen fields of an exchange's order or trade.
pub fn field<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let map = v.as_object()?;
    keys.iter().find_map(|k| {
        map.iter()
            .find(|(name, _)| name.as_str() == *k)
            .map(|(_, x)| x)
            .filter(|x| !x.is_null())
    })
}

/// A time field as ms: a number, a numeric string, or RFC 3339.
pub fn ms_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok().or_else(|| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        }),
        _ => None,
    }
}

impl ExchangeOrder {
    /// Whether every field a fingerprint compares is there (a limit order's
    /// price included), so that a mismatch means "not this order".
    pub fn is_complete(&self) -> bool {
        self.pair.is_some()
            && self.side.is_some()
            && self.quantity.is_some()
            && match self.kind.as_deref() {
                Some(k) if k.eq_ignore_ascii_case("limit") => self.price.is_some(),
                Some(_) => true,
                None => false,
            }
    }

    /// Read an order object; `None` when it carries no id.
    pub fn from_json(v: &Value) -> Option<ExchangeOrder> {
        Self::read(v, true)
    }

    /// [`ExchangeOrder::from_json`] without `raw` (left empty), for an
    /// order whose status is all that is wanted: writing each listed order
    /// out again as text was a third of reading it.
    pub fn status_of(v: &Value) -> Option<ExchangeOrder> {
        Self::read(v, false)
    }

    /// An answer's body read as [`ExchangeOrder::from_json`] reads its
    /// JSON value, but without `raw` (left empty: the answer is only read,
    /// never kept, and writing it out again as text cost a third of
    /// reading it), in one pass over the text: only the
    /// fields `from_json` looks at become values, every other one is
    /// skipped; an order wrapped under `order` or `data` is read from its
    /// value. `None` where the text is not a JSON object or has no id.
    ///
    /// Building the whole answer as a [`Value`] (an ordered map hashing
    /// every key) and then looking each field up by several names was
    /// most of the cost of reading a placement's answer.
    pub fn from_answer(body: &str) -> Option<ExchangeOrder> {
        let mut de = serde_json::Deserializer::from_str(body);
        let fields = serde::Deserializer::deserialize_map(&mut de, AnswerVisitor).ok()?;
        de.end().ok()?;
        fields.order()
    }

    fn read(v: &Value, keep_raw: bool) -> Option<ExchangeOrder> {
        let v = field(v, &["order", "data"])
            .filter(|x| x.is_object())
            .unwrap_or(v);
        Some(ExchangeOrder {
            id: text_of(field(v, &ORDER_KEYS[order_key::ID]))?,
            pair: text_of(field(v, &ORDER_KEYS[order_key::PAIR])),
            side: text_of(field(v, &ORDER_KEYS[order_key::SIDE])),
            kind: text_of(field(v, &ORDER_KEYS[order_key::KIND])),
            quantity: text_of(field(v, &ORDER_KEYS[order_key::QUANTITY])),
            price: text_of(field(v, &ORDER_KEYS[order_key::PRICE])),
            status: text_of(field(v, &ORDER_KEYS[order_key::STATUS])),
            filled_quantity: text_of(field(v, &ORDER_KEYS[order_key::FILLED_QUANTITY])),
            average_price: text_of(field(v, &ORDER_KEYS[order_key::AVERAGE_PRICE])),
            created_ms: ms_of(field(v, &ORDER_KEYS[order_key::CREATED])),
            client_order_id: text_of(field(v, &ORDER_KEYS[order_key::CLIENT_ORDER_ID])),
            raw: if keep_raw {
                // The same text as `v.to_string()` (both serde_json's
                // compact writer), written into the string's own buffer
                // rather than through `fmt::Write`, chunk by chunk.
                serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
            } else {
                String::new()
            },
        })
    }
}

/// Every name an order's field goes by in an answer, grouped by field in
/// the order they are tried (the groups are the ranges in [`order_key`]); both
/// [`ExchangeOrder::read`] and the one-pass [`ExchangeOrder::from_answer`]
/// look fields up by these.
const ORDER_KEYS: [&str; 27] = [
    "id",
    "orderId",
    "order_id",
    "pair",
    "symbol",
    "side",
    "type",
    "orderType",
    "quantity",
    "qty",
    "amount",
    "price",
    "status",
    "state",
    "filledQuantity",
    "filled_quantity",
    "executedQty",
    "filled",
    "averagePrice",
    "average_price",
    "avgPrice",
    "createdAt",
    "created_at",
    "timestamp",
    "time",
    "clientOrderId",
    "client_order_id",
];

/// Each field's names in [`ORDER_KEYS`].
mod order_key {
    use std::ops::Range;
    pub const ID: Range<usize> = 0..3;
    pub const PAIR: Range<usize> = 3..5;
    pub const SIDE: Range<usize> = 5..6;
    pub const KIND: Range<usize> = 6..8;
    pub const QUANTITY: Range<usize> = 8..11;
    pub const PRICE: Range<usize> = 11..12;
    pub const STATUS: Range<usize> = 12..14;
    pub const FILLED_QUANTITY: Range<usize> = 14..18;
    pub const AVERAGE_PRICE: Range<usize> = 18..21;
    pub const CREATED: Range<usize> = 21..25;
    pub const CLIENT_ORDER_ID: Range<usize> = 25..27;
}

/// The fields of an order answer [`ExchangeOrder::read`] would look at,
/// by name (the last of a repeated name, as in a [`Value`] map).
struct AnswerFields {
    named: [Option<Value>; 27],
    /// `order`, `data`.
    wrapped: [Option<Value>; 2],
}

impl AnswerFields {
    /// As [`field`]: the first of the names present and not null.
    fn field(&self, names: std::ops::Range<usize>) -> Option<&Value> {
        self.named[names].iter().flatten().find(|v| !v.is_null())
    }

    /// As [`text_of`] of [`AnswerFields::field`], the text moved out.
    fn text(&mut self, names: std::ops::Range<usize>) -> Option<String> {
        match self.named[names]
            .iter_mut()
            .flatten()
            .find(|v| !v.is_null())?
        {
            Value::String(s) => Some(std::mem::take(s)),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn order(mut self) -> Option<ExchangeOrder> {
        if let Some(inner) = self
            .wrapped
            .iter()
            .flatten()
            .find(|v| !v.is_null())
            .filter(|v| v.is_object())
        {
            return ExchangeOrder::read(inner, false);
        }
        Some(ExchangeOrder {
            id: self.text(order_key::ID)?,
            pair: self.text(order_key::PAIR),
            side: self.text(order_key::SIDE),
            kind: self.text(order_key::KIND),
            quantity: self.text(order_key::QUANTITY),
            price: self.text(order_key::PRICE),
            status: self.text(order_key::STATUS),
            filled_quantity: self.text(order_key::FILLED_QUANTITY),
            average_price: self.text(order_key::AVERAGE_PRICE),
            created_ms: ms_of(self.field(order_key::CREATED)),
            client_order_id: self.text(order_key::CLIENT_ORDER_ID),
            raw: String::new(),
        })
    }
}

enum AnswerKey {
    Named(usize),
    Wrapped(usize),
    Other,
}

struct AnswerKeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for AnswerKeySeed {
    type Value = AnswerKey;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<AnswerKey, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for AnswerKeySeed {
    type Value = AnswerKey;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<AnswerKey, E> {
        // A match rather than a search of ORDER_KEYS: compiled to a test
        // of the length and then of a few bytes, not up to 27 comparisons
        // (a test checks that each name maps to its place in the list).
        Ok(match k {
            "order" => AnswerKey::Wrapped(0),
            "data" => AnswerKey::Wrapped(1),
            "id" => AnswerKey::Named(0),
            "orderId" => AnswerKey::Named(1),
            "order_id" => AnswerKey::Named(2),
            "pair" => AnswerKey::Named(3),
            "symbol" => AnswerKey::Named(4),
            "side" => AnswerKey::Named(5),
            "type" => AnswerKey::Named(6),
            "orderType" => AnswerKey::Named(7),
            "quantity" => AnswerKey::Named(8),
            "qty" => AnswerKey::Named(9),
            "amount" => AnswerKey::Named(10),
            "price" => AnswerKey::Named(11),
            "status" => AnswerKey::Named(12),
            "state" => AnswerKey::Named(13),
            "filledQuantity" => AnswerKey::Named(14),
            "filled_quantity" => AnswerKey::Named(15),
            "executedQty" => AnswerKey::Named(16),
            "filled" => AnswerKey::Named(17),
            "averagePrice" => AnswerKey::Named(18),
            "average_price" => AnswerKey::Named(19),
            "avgPrice" => AnswerKey::Named(20),
            "createdAt" => AnswerKey::Named(21),
            "created_at" => AnswerKey::Named(22),
            "timestamp" => AnswerKey::Named(23),
            "time" => AnswerKey::Named(24),
            "clientOrderId" => AnswerKey::Named(25),
            "client_order_id" => AnswerKey::Named(26),
            _ => AnswerKey::Other,
        })
    }
}

struct AnswerVisitor;

impl<'de> serde::de::Visitor<'de> for AnswerVisitor {
    type Value = AnswerFields;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an order object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnswerFields, A::Error> {
        let mut out = AnswerFields {
            named: Default::default(),
            wrapped: Default::default(),
        };
        while let Some(k) = map.next_key_seed(AnswerKeySeed)? {
            match k {
                AnswerKey::Named(i) => out.named[i] = Some(map.next_value()?),
                AnswerKey::Wrapped(i) => out.wrapped[i] = Some(map.next_value()?),
                AnswerKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// The keys a listing's list may be under, in the order they are tried.
const LIST_KEYS: [&str; 6] = ["orders", "trades", "data", "items", "result", "balances"];

/// The list in a listing answer: the value itself if an array, else the
/// first array under a usual key.
pub fn list_of(v: &Value) -> Option<&Vec<Value>> {
    if let Value::Array(a) = v {
        return Some(a);
    }
    LIST_KEYS
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_array))
}

/// A page of an order listing.
#[derive(Debug, PartialEq)]
pub struct OrderPage {
    /// Its list ([`list_of`]), each entry read, or `None` for an entry hqx
    /// cannot read; `None` when the page holds no list.
    pub list: Option<Vec<Option<ExchangeOrder>>>,
    /// Its `total`, when a whole number.
    pub total: Option<u64>,
}

impl OrderPage {
    /// A page's value read with its entries' raw text ([`ExchangeOrder::from_json`]).
    pub fn of_value(v: &Value) -> OrderPage {
        OrderPage {
            list: list_of(v).map(|l| l.iter().map(ExchangeOrder::from_json).collect()),
            total: v.get("total").and_then(Value::as_u64),
        }
    }

    /// A page's text read as [`OrderPage::of_value`] reads its value with
    /// [`ExchangeOrder::status_of`] (no raw text), in one pass: each entry
    /// as [`ExchangeOrder::from_answer`] reads an answer, everything else
    /// skipped. Building every entry as a [`Value`] (an ordered map
    /// hashing each key) was most of the cost of refreshing a large
    /// batch's open orders. `Err` where the text is not JSON.
    pub fn statuses(body: &str) -> serde_json::Result<OrderPage> {
        let mut de = serde_json::Deserializer::from_str(body);
        let page = serde::Deserializer::deserialize_any(&mut de, PageVisitor)?;
        de.end()?;
        Ok(page)
    }
}

/// Implements the visits of a visitor whose value is `$none` for every
/// JSON value but the ones it reads itself.
macro_rules! anything_else_is {
    ($none:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// A whole page: its list and its `total`.
struct PageVisitor;

impl<'de> serde::de::Visitor<'de> for PageVisitor {
    type Value = OrderPage;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an order listing")
    }
    anything_else_is!(OrderPage {
        list: None,
        total: None
    });
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<OrderPage, A::Error> {
        Ok(OrderPage {
            list: EntriesVisitor.visit_seq(seq)?,
            total: None,
        })
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderPage, A::Error> {
        // As a `Value` map: the last of a repeated key counts.
        let mut lists: [Option<Vec<Option<ExchangeOrder>>>; LIST_KEYS.len()] = Default::default();
        let mut total = None;
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if let Some(i) = LIST_KEYS.iter().position(|n| *n == k) {
                lists[i] = map.next_value_seed(EntriesSeed)?;
            } else if k == "total" {
                total = map.next_value::<Value>()?.as_u64();
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(OrderPage {
            list: lists.into_iter().flatten().next(),
            total,
        })
    }
}

/// A list of entries, or `None` for any other value.
struct EntriesSeed;

impl<'de> serde::de::DeserializeSeed<'de> for EntriesSeed {
    type Value = Option<Vec<Option<ExchangeOrder>>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
    type Value = Option<Vec<Option<ExchangeOrder>>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of orders")
    }
    anything_else_is!(None);
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        serde::de::IgnoredAny.visit_map(map)?;
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(e) = seq.next_element_seed(EntrySeed)? {
            out.push(e);
        }
        Ok(Some(out))
    }
}

/// One entry, read as [`ExchangeOrder::status_of`] reads its value.
struct EntrySeed;

impl<'de> serde::de::DeserializeSeed<'de> for EntrySeed {
    type Value = Option<ExchangeOrder>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> serde::de::Visitor<'de> for EntryVisitor {
    type Value = Option<ExchangeOrder>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an order")
    }
    anything_else_is!(None);
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        serde::de::IgnoredAny.visit_seq(seq)?;
        Ok(None)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(AnswerVisitor.visit_map(map)?.order())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_order_reading() {
        let v: Value = serde_json::json!({"orderId": 42, "status": "FILLED", "createdAt": "1700000000000", "quantity": 2});
        let o = ExchangeOrder::from_json(&v).unwrap();
        assert_eq!(o.id, "42");
        assert_eq!(o.quantity.as_deref(), Some("2"));
        assert_eq!(o.created_ms, Some(1_700_000_000_000));
        assert!(ExchangeOrder::from_json(&serde_json::json!({"status": "open"})).is_none());
    }

    /// A listed order's `raw` is the text `Value`'s `Display` gives.
    #[test]
    fn raw_is_the_compact_text_of_the_value() {
        for text in [
            r#"{"id":"a1","price":"25000.00","quantity":2,"note":"tab\t \"q\" \u00e9 \u2028 \\","avg":1.5e-7,"big":12345678901234567890,"neg":-0.0,"n":null,"t":true,"list":[1,{"x":[]}],"o":{}}"#,
            r#"{"order":{"id":7,"status":"open","z":1,"a":2}}"#,
            r#"{ "id" : "spaced" ,  "price" : 1.10 }"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let o = ExchangeOrder::from_json(&v).unwrap();
            let inner = v.get("order").unwrap_or(&v);
            assert_eq!(o.raw, inner.to_string(), "{text}");
        }
    }

    /// The one-pass reader knows each name at its place in the list.
    #[test]
    fn answer_keys_are_numbered_as_listed() {
        use serde::de::Visitor;
        for (i, k) in ORDER_KEYS.iter().enumerate() {
            let got = AnswerKeySeed.visit_str::<serde_json::Error>(k).unwrap();
            assert!(matches!(got, AnswerKey::Named(j) if j == i), "{k}");
        }
        for k in ["updatedAt", "Id", "ID", "ids", "", "orders", "datum"] {
            let got = AnswerKeySeed.visit_str::<serde_json::Error>(k).unwrap();
            assert!(matches!(got, AnswerKey::Other), "{k}");
        }
    }

    /// The one-pass reading of an answer reads what `from_json` reads.
    #[test]
    fn answers_read_in_one_pass_as_from_json_reads_them() {
        let answers = [
            r#"{"id":"A1","pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00","status":"open","filledQuantity":"0","createdAt":1700000000000,"updatedAt":1,"clientOrderId":"c"}"#,
            r#"{"orderId": 42, "symbol": "ETH-USDC", "qty": 1.5, "state": "FILLED", "executedQty": "1.5", "avgPrice": 10, "time": "2023-11-14T22:13:20Z", "extra": {"id": "no", "list": [1, 2.5e3, null, true]}}"#,
            r#"{"id":null,"orderId":"B","status":null,"state":"open","price":[1],"filled_quantity":false}"#,
            r#"{"id":"first","id":"second","order":null,"data":"not an object"}"#,
            r#"{"order":{"id":"inner","status":"open"},"id":"outer"}"#,
            r#"{"order":null,"data":{"orderId":7,"pair":"X"}}"#,
            r#"{"order":"text","data":{"orderId":7}}"#,
            r#"{"data":[],"id":"listed"}"#,
            r#"{"status":"open"}"#,
            r#"{"id":"\u0041\n","pair":"\u20ac"}"#,
            r#"{"id": 18446744073709551615, "created_at": -5, "timestamp": 1.5}"#,
            r#"[{"id":"1"}]"#,
            r#""text""#,
            r#"{"id":"1"} trailing"#,
            r#"{"id":"1""#,
            "",
        ];
        // Every name, with a string and with a number, for each field.
        let mut answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
        for k in ORDER_KEYS {
            answers.push(format!(r#"{{"id":"x","{k}":"1700000000000"}}"#));
            answers.push(format!(r#"{{"{k}":17,"id":"x"}}"#));
            answers.push(format!(r#"{{"order_id":"y","{k}":"v"}}"#));
        }
        let read = answers
            .iter()
            .filter(|a| ExchangeOrder::from_answer(a).is_some());
        assert_eq!(read.count(), 9 + 3 * ORDER_KEYS.len());
        for a in &answers {
            let by_value = serde_json::from_str::<Value>(a)
                .ok()
                .and_then(|v| ExchangeOrder::from_json(&v))
                .map(|o| ExchangeOrder {
                    raw: String::new(),
                    ..o
                });
            assert_eq!(ExchangeOrder::from_answer(a), by_value, "{a}");
        }
    }

    /// A page read for statuses in one pass holds what its value holds.
    #[test]
    fn pages_read_in_one_pass_as_their_values_read() {
        let entries = [
            r#"{"id":"A1","pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00","status":"open","filledQuantity":"0","createdAt":1700000000000,"clientOrderId":"c"}"#,
            r#"{"orderId": 42, "symbol": "ETH-USDC", "qty": 1.5, "state": "FILLED", "time": "2023-11-14T22:13:20Z", "extra": {"id": "no", "list": [1, {"id": 2}]}}"#,
            r#"{"id":"first","id":"second","order":null,"data":"not an object"}"#,
            r#"{"order":{"id":"inner","status":"open"},"id":"outer"}"#,
            r#"{"status":"open"}"#,
            r#"{"id":"\u0041\n"}"#,
            r#"[{"id":"in a list"}]"#,
            r#""text""#,
            "null",
            "7",
            "true",
            "{}",
        ];
        let all = entries.join(",");
        let mut pages = vec![
            format!("[{all}]"),
            format!(r#"{{"orders":[{all}],"total":12}}"#),
            format!(r#"{{"total":3,"page":1,"data":[{all}]}}"#),
            format!(r#"{{"items":[{}],"orders":[{}]}}"#, entries[0], entries[3]),
            format!(r#"{{"orders":"none","data":[{}]}}"#, entries[1]),
            format!(
                r#"{{"orders":[{}],"orders":5,"result":[{}]}}"#,
                entries[0], entries[1]
            ),
            format!(r#"{{"orders":5,"orders":[{}]}}"#, entries[2]),
            format!(
                r#"{{"balances":[{}],"trades":{{"orders":[1]}}}}"#,
                entries[3]
            ),
            r#"{"orders":[],"total":-1}"#.into(),
            r#"{"orders":null,"total":1.5}"#.into(),
            r#"{"total":"3","total":18446744073709551615}"#.into(),
            r#"{"total":{"n":1},"data":[null]}"#.into(),
            r#"{"\u006frders":[{"id":"escaped key"}]}"#.into(),
            "[]".into(),
            "{}".into(),
            r#""text""#.into(),
            "5".into(),
            "null".into(),
            r#"{"orders":["#.into(),
            r#"[{"id":"1"}] trailing"#.into(),
            "".into(),
        ];
        pages.extend(entries.iter().map(|e| format!(r#"{{"data":{e}}}"#)));
        let mut lists = 0;
        for page in &pages {
            let by_value = serde_json::from_str::<Value>(page).ok().map(|v| {
                let mut p = OrderPage::of_value(&v);
                for o in p.list.iter_mut().flatten().flatten() {
                    o.raw.clear();
                }
                p
            });
            let read = OrderPage::statuses(page).ok();
            assert_eq!(read, by_value, "{page}");
            lists += read.is_some_and(|p| p.list.is_some()) as usize;
        }
        assert_eq!(lists, 13);
    }

    #[test]
    fn an_entry_is_complete_only_with_every_fingerprint_field() {
        let full = serde_json::json!({"id": "1", "pair": "BTC-USDC", "side": "buy", "type": "limit", "quantity": "2", "price": "10"});
        assert!(ExchangeOrder::from_json(&full).unwrap().is_complete());
        let market = serde_json::json!({"id": "2", "pair": "BTC-USDC", "side": "buy", "type": "market", "quantity": "2"});
        assert!(ExchangeOrder::from_json(&market).unwrap().is_complete());
        for missing in ["pair", "side", "type", "quantity", "price"] {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(missing);
            let e = ExchangeOrder::from_json(&v).unwrap();
            assert!(!e.is_complete(), "complete without {missing}");
        }
    }
}
