//! The sandbox's HTTP face: routing, the rate limit, faults,
//! authentication, and the endpoints of the contract.
//!
//! Why routing by hand rather than with an axum `Router`: the API paths
//! come from the venue profile at run time (a bad profile must be an error,
//! not a panic inside the router), and the fault layer must know which
//! route a request is for *before* anything is done, and must be able to
//! answer with no response at all (a closed connection), which a `Router`
//! cannot express. Each request is one plain async function call.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::Query;
use governor::clock::Clock;
use governor::DefaultDirectRateLimiter;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::model::{Amount, OrderType, Pair};
use crate::sign::{verify, Secret};
use crate::venue::Paths;

use super::exchange::{
    is_currency, BalanceView, CancelRefusal, ControlRefusal, Event, Order, OrderFilter, OrderView,
    PlaceRefusal, PlaceRequest, Status, TradeFilter, TradeView,
};
use super::faults::{Fault, FaultState};
use super::store::{Books, Trigger};
use super::{AcceptedOrder, AcceptedTrade, Control};

/// Largest request body read, in bytes.
const MAX_BODY: usize = 1 << 20;
/// Longest client order id accepted.
const MAX_CLIENT_ORDER_ID: usize = 64;
/// Page size of the my-orders listing when `limit` is not given: 100, as
/// an exchange that caps its lists would. hqx always pages this list
/// (`limit`, `page`) and proves absence only from a list read to its end;
/// a client that reads one page and stops would miss newer orders here,
/// which is the point.
const DEFAULT_ORDERS_LIMIT: Option<i64> = Some(100);

/// Everything a request handler needs, shared by all connections.
pub(super) struct Shared {
    pub(super) api_key: String,
    pub(super) secret: Secret,
    pub(super) timestamp_window_ms: u64,
    pub(super) trades_page_limit: u32,
    pub(super) orders_page_limit: u32,
    pub(super) client_order_id_field: Option<String>,
    pub(super) routes: Routes,
    /// The one lock around the state (books and state file).
    pub(super) books: Mutex<Books>,
    pub(super) faults: Mutex<FaultState>,
    pub(super) limiter: Option<RateLimit>,
    /// Turns true (or is dropped) when the sandbox stops.
    pub(super) shutdown: watch::Receiver<bool>,
}

/// The sandbox's own rate limit.
pub(super) struct RateLimit {
    pub(super) limiter: DefaultDirectRateLimiter,
    pub(super) per_second: u32,
}

/// Lock, ignoring poisoning: the state is changed only after every check,
/// so a panicking holder cannot leave it half-changed.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returned by the service to make hyper close the connection without
/// answering (the `reset` and `drop` faults).
#[derive(Debug)]
pub(super) struct ConnectionClosed;

impl std::fmt::Display for ConnectionClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed without an answer (sandbox fault)")
    }
}

impl std::error::Error for ConnectionClosed {}

/// An authenticated API endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Api {
    Place,
    MyOrders,
    MyTrades,
    Balances,
    DepositAddress,
    Ticker,
    GetOrder(String),
    Cancel(String),
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Api(Api),
    SandboxOrders,
    SandboxTrades,
    /// A `POST /sandbox/...` control endpoint.
    SandboxControl(ControlKind),
    SandboxAfterTradesPages,
    Health,
    /// The path exists, with these methods.
    MethodNotAllowed(String),
    NotFound,
}

/// Which control endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ControlKind {
    Market,
    Fill,
    Deposit,
}

/// The API paths of the venue profile, checked.
pub(super) struct Routes {
    place_order: String,
    my_orders: String,
    my_trades: String,
    balances: String,
    deposit_address: String,
    ticker: String,
    order_prefix: String,
    order_suffix: String,
}

impl Routes {
    /// Check the venue's paths: absolute, no query, `{id}` exactly once in
    /// `order_by_id` and nowhere else, not under `/sandbox/`, and no two
    /// endpoints on the same method and path.
    pub(super) fn new(paths: &Paths) -> Result<Routes, String> {
        let check = |name: &str, p: &str, template: bool| -> Result<(), String> {
            let problem = if !p.starts_with('/') {
                Some("must start with `/`")
            } else if p.contains(['?', '#', ' ']) {
                Some("must not contain `?`, `#` or spaces")
            } else if template
                && (p.matches("{id}").count() != 1 || p.matches(['{', '}']).count() != 2)
            {
                Some("must contain `{id}` exactly once and no other braces")
            } else if !template && p.contains(['{', '}']) {
                Some("must not contain braces")
            } else if p == "/sandbox" || p.starts_with("/sandbox/") {
                Some("is reserved for the sandbox's own endpoints")
            } else {
                None
            };
            match problem {
                Some(why) => Err(format!("venue path `{name}` (`{p}`) {why}")),
                None => Ok(()),
            }
        };
        check("place_order", &paths.place_order, false)?;
        check("my_orders", &paths.my_orders, false)?;
        check("my_trades", &paths.my_trades, false)?;
        check("balances", &paths.balances, false)?;
        check("deposit_address", &paths.deposit_address, false)?;
        check("ticker", &paths.ticker, false)?;
        check("order_by_id", &paths.order_by_id, true)?;
        if paths.place_order == paths.deposit_address {
            return Err(format!(
                "venue paths `place_order` and `deposit_address` are both POST {}",
                paths.place_order
            ));
        }
        let gets = [
            ("my_orders", &paths.my_orders),
            ("my_trades", &paths.my_trades),
            ("balances", &paths.balances),
            ("ticker", &paths.ticker),
        ];
        for (i, (a, pa)) in gets.iter().enumerate() {
            for (b, pb) in &gets[i + 1..] {
                if pa == pb {
                    return Err(format!("venue paths `{a}` and `{b}` are both GET {pa}"));
                }
            }
        }
        let (prefix, suffix) = paths.order_by_id.split_once("{id}").expect("checked above");
        Ok(Routes {
            place_order: paths.place_order.clone(),
            my_orders: paths.my_orders.clone(),
            my_trades: paths.my_trades.clone(),
            balances: paths.balances.clone(),
            deposit_address: paths.deposit_address.clone(),
            ticker: paths.ticker.clone(),
            order_prefix: prefix.to_string(),
            order_suffix: suffix.to_string(),
        })
    }

    /// Route a request. Fixed paths win over the `{id}` template.
    pub(super) fn resolve(&self, method: &Method, path: &str) -> Route {
        let fixed = [
            (&self.place_order, Method::POST, Api::Place),
            (&self.my_orders, Method::GET, Api::MyOrders),
            (&self.my_trades, Method::GET, Api::MyTrades),
            (&self.balances, Method::GET, Api::Balances),
            (&self.deposit_address, Method::POST, Api::DepositAddress),
            (&self.ticker, Method::GET, Api::Ticker),
        ];
        let mut allowed: Vec<&'static str> = Vec::new();
        for (p, m, api) in fixed {
            if path == p.as_str() {
                if *method == m {
                    return Route::Api(api);
                }
                allowed.push(if m == Method::GET { "GET" } else { "POST" });
            }
        }
        if !allowed.is_empty() {
            return Route::MethodNotAllowed(allowed.join(", "));
        }
        if let Some(id) = self.order_id(path) {
            return match *method {
                Method::GET => Route::Api(Api::GetOrder(id.to_string())),
                Method::DELETE => Route::Api(Api::Cancel(id.to_string())),
                _ => Route::MethodNotAllowed("GET, DELETE".into()),
            };
        }
        match (path, method) {
            ("/sandbox/orders", &Method::GET) => Route::SandboxOrders,
            ("/sandbox/trades", &Method::GET) => Route::SandboxTrades,
            ("/sandbox/health", &Method::GET) => Route::Health,
            ("/sandbox/market", &Method::POST) => Route::SandboxControl(ControlKind::Market),
            ("/sandbox/fill", &Method::POST) => Route::SandboxControl(ControlKind::Fill),
            ("/sandbox/deposit", &Method::POST) => Route::SandboxControl(ControlKind::Deposit),
            ("/sandbox/after-trades-pages", &Method::POST) => Route::SandboxAfterTradesPages,
            ("/sandbox/orders" | "/sandbox/trades" | "/sandbox/health", _) => {
                Route::MethodNotAllowed("GET".into())
            }
            (
                "/sandbox/market"
                | "/sandbox/fill"
                | "/sandbox/deposit"
                | "/sandbox/after-trades-pages",
                _,
            ) => Route::MethodNotAllowed("POST".into()),
            _ => Route::NotFound,
        }
    }

    fn order_id<'p>(&self, path: &'p str) -> Option<&'p str> {
        let id = path
            .strip_prefix(self.order_prefix.as_str())?
            .strip_suffix(self.order_suffix.as_str())?;
        (!id.is_empty() && !id.contains('/')).then_some(id)
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Serve one request. `Err` makes hyper close the connection unanswered.
pub(super) async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ConnectionClosed> {
    let (parts, body) = req.into_parts();
    let route = shared.routes.resolve(&parts.method, parts.uri.path());
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Ok(error(
            413,
            "body_too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        ));
    }
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return Ok(error(
                400,
                "bad_body",
                format!("the body could not be read: {e}"),
            ));
        }
    };
    let result = match route {
        Route::Api(api) => api_request(&shared, api, &parts.headers, &parts.uri, &body).await,
        Route::SandboxOrders => Ok(json(200, &accepted_orders(&shared))),
        Route::SandboxTrades => Ok(json(200, &accepted_trades(&shared))),
        Route::SandboxControl(kind) => Ok(respond(
            parse_control(kind, &body, &shared.api_key).and_then(|c| control(&shared, &c)),
        )),
        Route::SandboxAfterTradesPages => Ok(respond(after_trades_pages(&shared, &body))),
        Route::Health => Ok(json(200, &serde_json::json!({"ok": true}))),
        Route::MethodNotAllowed(allow) => {
            let mut r = error(
                405,
                "method_not_allowed",
                format!(
                    "{} is not allowed on {}; use {allow}",
                    parts.method,
                    parts.uri.path()
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&allow) {
                r.headers_mut().insert(ALLOW, v);
            }
            Ok(r)
        }
        Route::NotFound => Ok(error(
            404,
            "not_found",
            format!("no endpoint {} {}", parts.method, parts.uri.path()),
        )),
    };
    tracing::trace!(
        method = %parts.method,
        path = parts.uri.path(),
        status = result.as_ref().map_or(0, |r| r.status().as_u16()),
        "sandbox request"
    );
    result
}

/// Every accepted order, in sequence.
pub(super) fn accepted_orders(shared: &Shared) -> Vec<AcceptedOrder> {
    let books = lock(&shared.books);
    books
        .exchange
        .orders()
        .iter()
        .map(Order::accepted)
        .collect()
}

/// Every trade, oldest first.
pub(super) fn accepted_trades(shared: &Shared) -> Vec<AcceptedTrade> {
    let books = lock(&shared.books);
    books
        .exchange
        .all_trades()
        .iter()
        .map(TradeView::to_accepted)
        .collect()
}

/// A control answer: 200 with the JSON, or the refusal.
fn respond(r: Result<Value, Refusal>) -> Response<Body> {
    match r {
        Ok(v) => json(200, &v),
        Err(r) => error(r.status, r.code, r.message),
    }
}

impl From<ControlRefusal> for Refusal {
    fn from(r: ControlRefusal) -> Refusal {
        match r {
            ControlRefusal::Invalid(m) => Refusal::bad_request("invalid_request", m),
            ControlRefusal::NotFound(m) => Refusal::new(404, "not_found", m),
            ControlRefusal::NotOpen(m) => Refusal::new(409, "not_open", m),
        }
    }
}

/// Run a control action: decide, make durable, apply; answer what happened.
pub(super) fn control(shared: &Shared, c: &Control) -> Result<Value, Refusal> {
    let mut books = lock(&shared.books);
    run_control(&mut books, c, now_ms())
}

/// [`control`] with the state already locked (also used by triggers).
fn run_control(books: &mut Books, c: &Control, now: i64) -> Result<Value, Refusal> {
    let event = match c {
        Control::Market { pair, price } => books.exchange.decide_market(pair, price, now),
        Control::Fill { order_id, quantity } => {
            books
                .exchange
                .decide_fill(order_id, quantity.as_deref(), now)
        }
        Control::Deposit { currency, amount } => {
            books.exchange.decide_deposit(currency, amount, now)
        }
    }?;
    let trades = match &event {
        Event::Market { fills, .. } => fills.len(),
        Event::Fill { .. } => 1,
        _ => 0,
    };
    books.commit(event).map_err(Refusal::server_error)?;
    let x = &books.exchange;
    let made = x.last_trades(trades);
    let answer = match c {
        Control::Market { pair, .. } => {
            let q = x.quote(&pair.parse().map_err(Refusal::server_error)?);
            serde_json::json!({
                "pair": pair,
                "price": q.reference.normalize().to_string(),
                "trades": made,
            })
        }
        Control::Fill { order_id, .. } => {
            let o = x
                .order(order_id)
                .ok_or_else(|| Refusal::not_found(order_id))?;
            serde_json::json!({"order": o.view(), "trade": made.first()})
        }
        Control::Deposit { currency, amount } => {
            let b = x.balance(currency);
            serde_json::json!({
                "currency": currency,
                "amount": amount.parse::<rust_decimal::Decimal>().map_or_else(|_| amount.clone(), |a| a.normalize().to_string()),
                "available": b.available.normalize().to_string(),
            })
        }
    };
    Ok(answer)
}

/// Read a control endpoint's body.
fn parse_control(kind: ControlKind, body: &[u8], api_key: &str) -> Result<Control, Refusal> {
    let invalid = |m: String| Refusal::bad_request("invalid_request", m);
    let obj = object(body).map_err(invalid)?;
    control_from(kind, &obj, api_key).map_err(invalid)
}

/// A control action from its JSON object.
fn control_from(
    kind: ControlKind,
    obj: &Map<String, Value>,
    api_key: &str,
) -> Result<Control, String> {
    let allowed: &[&str] = match kind {
        ControlKind::Market => &["pair", "price"],
        ControlKind::Fill => &["orderId", "quantity"],
        ControlKind::Deposit => &["currency", "amount", "apiKey"],
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "unknown field `{k}`: the fields are {}",
            allowed.join(", ")
        ));
    }
    Ok(match kind {
        ControlKind::Market => Control::Market {
            pair: required_str(obj, "pair")?.to_string(),
            price: required_str(obj, "price")?.to_string(),
        },
        ControlKind::Fill => Control::Fill {
            order_id: required_str(obj, "orderId")?.to_string(),
            quantity: optional_str(obj, "quantity")?.map(str::to_string),
        },
        ControlKind::Deposit => {
            if let Some(k) = optional_str(obj, "apiKey")? {
                if k != api_key {
                    return Err(format!(
                        "apiKey `{k}` is not the key this sandbox serves; leave it out"
                    ));
                }
            }
            let currency = required_str(obj, "currency")?;
            if !is_currency(currency) {
                return Err(format!(
                    "currency must be 2 to 12 upper-case letters or digits, like USDC, not `{currency}`"
                ));
            }
            Control::Deposit {
                currency: currency.to_string(),
                amount: required_str(obj, "amount")?.to_string(),
            }
        }
    })
}

/// `POST /sandbox/after-trades-pages {"pages":N,"action":{"market":{...}}}`.
fn after_trades_pages(shared: &Shared, body: &[u8]) -> Result<Value, Refusal> {
    let invalid = |m: String| Refusal::bad_request("invalid_request", m);
    let obj = object(body).map_err(invalid)?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["pages", "action"].contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "unknown field `{k}`: the fields are pages, action"
        )));
    }
    let pages = obj
        .get("pages")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid("`pages` must be a whole number from 0".into()))?;
    let action = match obj.get("action") {
        Some(Value::Object(a)) if a.len() == 1 => {
            let (name, inner) = a.iter().next().expect("one entry");
            let kind = match name.as_str() {
                "market" => ControlKind::Market,
                "fill" => ControlKind::Fill,
                "deposit" => ControlKind::Deposit,
                other => {
                    return Err(invalid(format!(
                        "unknown action `{other}`: use market, fill or deposit"
                    )))
                }
            };
            let Value::Object(inner) = inner else {
                return Err(invalid(format!("action `{name}` must be an object")));
            };
            control_from(kind, inner, &shared.api_key).map_err(invalid)?
        }
        _ => {
            return Err(invalid(
                "`action` must be an object with one of market, fill, deposit, like {\"market\":{\"pair\":\"BTC-USDC\",\"price\":\"26000\"}}"
                    .into(),
            ))
        }
    };
    let echo = obj.get("action").cloned().unwrap_or(Value::Null);
    let ran = arm_trigger(shared, pages, action);
    Ok(serde_json::json!({"pages": pages, "action": echo, "ran": ran}))
}

/// Arm a trigger; with `pages == 0`, run it now. Returns the answer of
/// an action run now.
pub(super) fn arm_trigger(shared: &Shared, pages: u32, action: Control) -> Option<Value> {
    let mut books = lock(&shared.books);
    if pages == 0 {
        return fire(&mut books, &action, now_ms());
    }
    books.triggers.push(Trigger { pages, action });
    None
}

/// Run a trigger's action; a refusal is logged and dropped.
fn fire(books: &mut Books, action: &Control, now: i64) -> Option<Value> {
    match run_control(books, action, now) {
        Ok(v) => Some(v),
        Err(r) => {
            tracing::warn!(?action, "sandbox trigger refused: {}", r.message);
            None
        }
    }
}

/// One more trades page was answered: count down, run what is due.
fn trades_page_answered(books: &mut Books, now: i64) {
    if books.triggers.is_empty() {
        return;
    }
    let mut due = Vec::new();
    books.triggers.retain_mut(|t| {
        t.pages -= 1;
        if t.pages == 0 {
            due.push(t.action.clone());
            false
        } else {
            true
        }
    });
    for action in due {
        fire(books, &action, now);
    }
}

/// An API request: the rate limit, then faults, then the endpoint.
async fn api_request(
    shared: &Shared,
    api: Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
) -> Result<Response<Body>, ConnectionClosed> {
    if let Some(rl) = &shared.limiter {
        if let Err(not_until) = rl.limiter.check() {
            let wait = not_until.wait_time_from(rl.limiter.clock().now());
            let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
            return Ok(rate_limited(
                secs,
                format!(
                    "more than {} requests per second: retry after {secs} s",
                    rl.per_second
                ),
            ));
        }
    }
    let (latency, fault) = lock(&shared.faults).draw();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if fault != Fault::None {
        tracing::debug!(?fault, ?api, "sandbox fault");
    }
    // Faults that commit before failing (drop, stall) apply to the calls
    // that act: placements and cancels.
    let placement = matches!(api, Api::Place | Api::Cancel(_));
    match fault {
        Fault::Reset => Err(ConnectionClosed),
        Fault::Error5xx(code) => Ok(error(
            code,
            "server_error",
            format!("the exchange failed (sandbox fault error5xx, HTTP {code})"),
        )),
        Fault::Limit429 => Ok(rate_limited(
            1,
            "too many requests (sandbox fault limit429)".into(),
        )),
        Fault::Stall { commit, hang } => {
            if commit && placement {
                let _ = handle(shared, &api, headers, uri, body);
            }
            stall(shared, hang).await;
            Ok(error(
                504,
                "gateway_timeout",
                "the exchange did not answer in time (sandbox fault stall)",
            ))
        }
        Fault::Drop { close } if placement => {
            let r = handle(shared, &api, headers, uri, body);
            if r.status() != StatusCode::OK {
                Ok(r)
            } else if close {
                Err(ConnectionClosed)
            } else {
                Ok(error(
                    500,
                    "server_error",
                    "the exchange failed (sandbox fault drop)",
                ))
            }
        }
        Fault::Drop { .. } | Fault::None => Ok(handle(shared, &api, headers, uri, body)),
    }
}

/// Hang for `hang`, or until the sandbox stops.
async fn stall(shared: &Shared, hang: Duration) {
    let mut stop = shared.shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(hang) => {}
        _ = super::stopped(&mut stop) => {}
    }
}

/// A refusal: an error answer `{"error":"<code>","message":"<text>"}`.
#[derive(Debug)]
pub(super) struct Refusal {
    status: u16,
    code: &'static str,
    pub(super) message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(400, code, message)
    }

    fn not_found(id: &str) -> Refusal {
        Refusal::new(404, "not_found", format!("no order {id}"))
    }

    fn server_error(message: impl Into<String>) -> Refusal {
        let message = message.into();
        tracing::error!("sandbox: {message}");
        Refusal::new(500, "server_error", message)
    }
}

/// What an endpoint answers.
type Answer = Result<Response<Body>, Refusal>;

/// Authenticate, then run the endpoint.
fn handle(
    shared: &Shared,
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
) -> Response<Body> {
    let answer = authenticate(shared, headers, body).and_then(|()| match api {
        Api::Place => place(shared, body),
        Api::MyOrders => my_orders(shared, uri),
        Api::MyTrades => my_trades(shared, uri),
        Api::Balances => balances(shared),
        Api::DepositAddress => deposit_address(shared, body),
        Api::Ticker => ticker(shared, uri),
        Api::GetOrder(id) => {
            let books = lock(&shared.books);
            let o = books
                .exchange
                .order(id)
                .ok_or_else(|| Refusal::not_found(id))?;
            Ok(json(200, &o.view()))
        }
        Api::Cancel(id) => cancel(shared, id),
    });
    answer.unwrap_or_else(|r| error(r.status, r.code, r.message))
}

/// Check `x-api-key`, `x-api-timestamp` and `x-api-sign` as the contract
/// says: HMAC-SHA256 over `<timestamp>.<the exact body bytes received>`.
fn authenticate(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let unauthorized = |code, message: String| Err(Refusal::new(401, code, message));
    let names = ["x-api-key", "x-api-timestamp", "x-api-sign"];
    let values = names.map(|n| headers.get(n).map(|v| v.to_str().unwrap_or("")));
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return unauthorized(
            "missing_credentials",
            format!(
                "missing header {}: every API request carries x-api-key, x-api-timestamp and x-api-sign",
                missing.join(", ")
            ),
        );
    }
    let [Some(key), Some(ts_text), Some(signature)] = values else {
        unreachable!("checked above")
    };
    if key != shared.api_key {
        return unauthorized("invalid_key", "unknown API key".into());
    }
    let ts = match ts_text.parse::<i64>() {
        Ok(ts) if ts_text.bytes().all(|b| b.is_ascii_digit()) => ts,
        _ => {
            return unauthorized(
                "invalid_timestamp",
                format!("x-api-timestamp `{ts_text}` is not milliseconds since the epoch as a decimal string"),
            )
        }
    };
    if !verify(&shared.secret, ts_text, body, signature) {
        return unauthorized(
            "invalid_signature",
            "x-api-sign does not match: it must be the lowercase hex HMAC-SHA256, keyed with the secret key, of `<x-api-timestamp>.<body>` over the exact body bytes sent".into(),
        );
    }
    let skew = now_ms().saturating_sub(ts);
    if skew.unsigned_abs() > shared.timestamp_window_ms {
        return unauthorized(
            "timestamp_outside_window",
            format!(
                "x-api-timestamp {ts} is outside the {} ms window: it is {} ms {} the exchange's clock; check this machine's clock",
                shared.timestamp_window_ms,
                skew.unsigned_abs(),
                if skew > 0 { "behind" } else { "ahead of" }
            ),
        );
    }
    Ok(())
}

/// A body field that must be a JSON string when present.
fn optional_str<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Err(format!(
            "`{name}` must be a JSON string such as \"{n}\", not the number {n}: decimals travel as strings"
        )),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    optional_str(obj, name)?.ok_or_else(|| format!("missing `{name}`"))
}

fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("the body is not valid JSON: {e}")),
    }
}

/// Validate a placement body.
fn parse_place(text: &str, client_order_id_field: Option<&str>) -> Result<PlaceRequest, String> {
    let obj = object(text.as_bytes())?;
    let pair: Pair = required_str(&obj, "pair")?.parse()?;
    let kind: OrderType = required_str(&obj, "type")?.parse()?;
    let side = required_str(&obj, "side")?.parse()?;
    let quantity: Amount = required_str(&obj, "quantity")?
        .parse()
        .map_err(|e| format!("quantity: {e}"))?;
    let price: Option<Amount> = optional_str(&obj, "price")?
        .map(|p| p.parse().map_err(|e| format!("price: {e}")))
        .transpose()?;
    match (kind, &price) {
        (OrderType::Limit, None) => return Err("a limit order needs a `price`".into()),
        (OrderType::Market, Some(_)) => {
            return Err(
                "a market order must not carry a `price`: it fills at the best price on the book"
                    .into(),
            )
        }
        _ => {}
    }
    let client_order_id = match client_order_id_field {
        Some(field) => match optional_str(&obj, field)? {
            Some(id) if id.is_empty() || id.len() > MAX_CLIENT_ORDER_ID => {
                return Err(format!(
                    "`{field}` must be 1 to {MAX_CLIENT_ORDER_ID} characters"
                ))
            }
            id => id.map(str::to_string),
        },
        None => None,
    };
    Ok(PlaceRequest {
        pair,
        kind,
        side,
        quantity,
        price,
        client_order_id,
    })
}

fn place(shared: &Shared, body: &Bytes) -> Answer {
    let invalid = |m| Refusal::bad_request("invalid_order", m);
    let text =
        std::str::from_utf8(body).map_err(|_| invalid("the body is not UTF-8 text".into()))?;
    let req = parse_place(text, shared.client_order_id_field.as_deref()).map_err(invalid)?;
    let received = text.to_string();
    let now = now_ms();
    let mut books = lock(&shared.books);
    let event = books
        .exchange
        .decide_place(req, received, now)
        .map_err(|r| match r {
            PlaceRefusal::InsufficientFunds(m) => Refusal::new(422, "insufficient_funds", m),
            PlaceRefusal::TooLarge(m) => invalid(m),
            PlaceRefusal::DuplicateClientId(m) => Refusal::new(409, "duplicate_client_order_id", m),
        })?;
    books.commit(event).map_err(Refusal::server_error)?;
    let o = books
        .exchange
        .last_order()
        .ok_or_else(|| Refusal::server_error("the order vanished"))?;
    Ok(json(200, &o.view()))
}

fn cancel(shared: &Shared, id: &str) -> Answer {
    let mut books = lock(&shared.books);
    let event = books
        .exchange
        .decide_cancel(id, now_ms())
        .map_err(|r| match r {
            CancelRefusal::NotFound => Refusal::not_found(id),
            CancelRefusal::NotOpen(s) => Refusal::new(
                409,
                "not_open",
                format!(
                    "order {id} is {}: only open orders can be cancelled",
                    s.as_str()
                ),
            ),
        })?;
    books.commit(event).map_err(Refusal::server_error)?;
    let o = books
        .exchange
        .order(id)
        .ok_or_else(|| Refusal::not_found(id))?;
    Ok(json(200, &o.view()))
}

fn balances(shared: &Shared) -> Answer {
    #[derive(Serialize)]
    struct Out<'a> {
        balances: Vec<BalanceView<'a>>,
    }
    let books = lock(&shared.books);
    Ok(json(
        200,
        &Out {
            balances: books.exchange.balances(),
        },
    ))
}

fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, Refusal> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| Refusal::bad_request("invalid_query", format!("bad query string: {e}")))
}

/// A `pair` query parameter: absent or empty means all pairs.
fn pair_filter(pair: &Option<String>) -> Result<Option<&str>, Refusal> {
    match pair.as_deref() {
        None | Some("") => Ok(None),
        Some(p) => match p.parse::<Pair>() {
            Ok(_) => Ok(Some(p)),
            Err(m) => Err(Refusal::bad_request("invalid_query", m)),
        },
    }
}

/// A whole-number query parameter.
fn number(name: &str, v: &Option<String>) -> Result<Option<i64>, Refusal> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => t.parse::<i64>().map(Some).map_err(|_| {
            Refusal::bad_request(
                "invalid_query",
                format!("{name} must be a whole number, not `{t}`"),
            )
        }),
    }
}

/// `limit` and `page` of a paged listing: `limit` from 1 to `max`
/// (`default` when absent; `None` there means no limit), `page` from 1.
fn paging(
    limit: &Option<String>,
    page: &Option<String>,
    default: Option<i64>,
    max: i64,
) -> Result<(Option<usize>, usize), Refusal> {
    let given = number("limit", limit)?;
    let page = number("page", page)?.unwrap_or(1);
    if page < 1 {
        return Err(Refusal::bad_request(
            "invalid_query",
            format!("page starts at 1, not {page}"),
        ));
    }
    let page = usize::try_from(page).unwrap_or(usize::MAX);
    let Some(limit) = given.or(default.map(|d| d.min(max))) else {
        return Ok((None, page));
    };
    if !(1..=max).contains(&limit) {
        return Err(Refusal::bad_request(
            "invalid_query",
            format!("limit must be from 1 to {max}, not {limit}"),
        ));
    }
    Ok((Some(limit as usize), page))
}

fn my_orders(shared: &Shared, uri: &Uri) -> Answer {
    #[derive(Deserialize)]
    struct Q {
        pair: Option<String>,
        status: Option<String>,
        from: Option<String>,
        to: Option<String>,
        limit: Option<String>,
        page: Option<String>,
    }
    #[derive(Serialize)]
    struct Out<'a> {
        orders: Vec<OrderView<'a>>,
        page: usize,
        limit: usize,
        total: usize,
    }
    let q: Q = query(uri)?;
    let pair = pair_filter(&q.pair)?;
    let status = match q.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some("open") => Some(Status::Open),
        Some("filled") => Some(Status::Filled),
        Some("cancelled") => Some(Status::Cancelled),
        Some(other) => {
            return Err(Refusal::bad_request(
                "invalid_query",
                format!("status must be open, filled, cancelled or all, not `{other}`"),
            ))
        }
    };
    let from = number("from", &q.from)?;
    let to = number("to", &q.to)?;
    let (limit, page) = paging(
        &q.limit,
        &q.page,
        DEFAULT_ORDERS_LIMIT,
        i64::from(shared.orders_page_limit),
    )?;
    let filter = OrderFilter {
        pair,
        status,
        from,
        to,
    };
    let books = lock(&shared.books);
    let (total, orders) = books
        .exchange
        .orders_page(&filter, limit.unwrap_or(usize::MAX), page);
    Ok(json(
        200,
        &Out {
            orders,
            page,
            // Without a limit, one page holds them all.
            limit: limit.unwrap_or(total),
            total,
        },
    ))
}

fn ticker(shared: &Shared, uri: &Uri) -> Answer {
    #[derive(Deserialize)]
    struct Q {
        pair: Option<String>,
    }
    let q: Q = query(uri)?;
    let pair: Pair = match q.pair.as_deref() {
        None | Some("") => {
            return Err(Refusal::bad_request(
                "invalid_query",
                "missing `pair`, e.g. ?pair=BTC-USDC",
            ))
        }
        Some(p) => p
            .parse()
            .map_err(|m: String| Refusal::bad_request("invalid_query", m))?,
    };
    let books = lock(&shared.books);
    let t = books.exchange.quote(&pair);
    drop(books);
    Ok(json(
        200,
        &serde_json::json!({
            "pair": pair.as_str(),
            "price": t.reference.normalize().to_string(),
            "bid": t.bid.normalize().to_string(),
            "ask": t.ask.normalize().to_string(),
            "timestamp": now_ms(),
        }),
    ))
}

fn my_trades(shared: &Shared, uri: &Uri) -> Answer {
    #[derive(Deserialize)]
    struct Q {
        pair: Option<String>,
        from: Option<String>,
        to: Option<String>,
        limit: Option<String>,
        page: Option<String>,
    }
    #[derive(Serialize)]
    struct Out<'a> {
        trades: Vec<TradeView<'a>>,
        page: usize,
        limit: usize,
        total: usize,
    }
    let q: Q = query(uri)?;
    let pair = pair_filter(&q.pair)?;
    let from = number("from", &q.from)?;
    let to = number("to", &q.to)?;
    let (limit, page) = paging(
        &q.limit,
        &q.page,
        Some(100),
        i64::from(shared.trades_page_limit),
    )?;
    let limit = limit.unwrap_or(100);
    let filter = TradeFilter { pair, from, to };
    let mut books = lock(&shared.books);
    let (total, trades) = books.exchange.trades(&filter, limit, page);
    let answer = json(
        200,
        &Out {
            trades,
            page,
            limit,
            total,
        },
    );
    // Still inside the critical section that made this page: actions
    // armed to run after it do so before anyone can read again.
    trades_page_answered(&mut books, now_ms());
    drop(books);
    Ok(answer)
}

/// The fake, stable address for a currency on a network.
fn fake_address(currency: &str, network: &str) -> String {
    let h = Sha256::digest(format!("hqx-sandbox-deposit\0{currency}\0{network}").as_bytes());
    format!("0x{}", &hex::encode(h)[..40])
}

/// Validate a deposit address body: (currency, network).
fn parse_deposit(body: &[u8]) -> Result<(String, String), String> {
    let obj = object(body)?;
    let currency = required_str(&obj, "currency")?.to_string();
    let network = required_str(&obj, "network")?.to_string();
    let asset_ok = (2..=12).contains(&currency.len())
        && currency
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !asset_ok {
        return Err(format!(
            "currency must be 2 to 12 upper-case letters or digits, like USDC, not `{currency}`"
        ));
    }
    let network_ok = (1..=32).contains(&network.len())
        && network
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !network_ok {
        return Err(format!(
            "network must be 1 to 32 letters, digits, `-` or `_`, like ERC20, not `{network}`"
        ));
    }
    Ok((currency, network))
}

fn deposit_address(shared: &Shared, body: &Bytes) -> Answer {
    let (currency, network) =
        parse_deposit(body).map_err(|m| Refusal::bad_request("invalid_request", m))?;
    let address = fake_address(&currency, &network);
    let mut books = lock(&shared.books);
    if !books.exchange.has_address(&currency, &network) {
        let event = Event::DepositAddress {
            currency: currency.clone(),
            network: network.clone(),
            address: address.clone(),
        };
        books.commit(event).map_err(Refusal::server_error)?;
    }
    drop(books);
    Ok(json(
        200,
        &serde_json::json!({"currency": currency, "network": network, "address": address}),
    ))
}

/// A JSON answer.
fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_body(status, bytes),
        Err(e) => error(
            500,
            "server_error",
            format!("cannot encode the answer: {e}"),
        ),
    }
}

fn with_body(status: u16, bytes: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A JSON error: `{"error":"<code>","message":"<human text>"}`.
fn error(status: u16, code: &str, message: impl AsRef<str>) -> Response<Body> {
    #[derive(Serialize)]
    struct E<'a> {
        error: &'a str,
        message: &'a str,
    }
    let bytes = serde_json::to_vec(&E {
        error: code,
        message: message.as_ref(),
    })
    .unwrap_or_else(|_| {
        br#"{"error":"server_error","message":"cannot encode the error"}"#.to_vec()
    });
    with_body(status, bytes)
}

fn rate_limited(retry_after_secs: u64, message: String) -> Response<Body> {
    let mut r = error(429, "rate_limited", message);
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_and_bad_paths_are_refused() {
        let r = Routes::new(&Paths::default()).unwrap();
        let get = |p: &str| r.resolve(&Method::GET, p);
        assert_eq!(
            r.resolve(&Method::POST, "/trading/api/v1/order"),
            Route::Api(Api::Place)
        );
        assert_eq!(get("/trading/api/v1/orders/my"), Route::Api(Api::MyOrders));
        assert_eq!(
            get("/trading/api/v1/order/O1"),
            Route::Api(Api::GetOrder("O1".into()))
        );
        assert_eq!(
            r.resolve(&Method::DELETE, "/trading/api/v1/order/O1"),
            Route::Api(Api::Cancel("O1".into()))
        );
        assert_eq!(get("/trading/api/v1/order/O1/x"), Route::NotFound);
        assert_eq!(get("/trading/api/v1/order/"), Route::NotFound);
        assert_eq!(
            get("/trading/api/v1/order"),
            Route::MethodNotAllowed("POST".into())
        );
        assert_eq!(get("/nope"), Route::NotFound);
        assert_eq!(get("/sandbox/orders"), Route::SandboxOrders);
        assert_eq!(get("/sandbox/trades"), Route::SandboxTrades);
        assert_eq!(get("/trading/api/v1/ticker"), Route::Api(Api::Ticker));
        let post = |p: &str| r.resolve(&Method::POST, p);
        assert_eq!(
            post("/sandbox/market"),
            Route::SandboxControl(ControlKind::Market)
        );
        assert_eq!(
            post("/sandbox/fill"),
            Route::SandboxControl(ControlKind::Fill)
        );
        assert_eq!(
            post("/sandbox/deposit"),
            Route::SandboxControl(ControlKind::Deposit)
        );
        assert_eq!(
            post("/sandbox/after-trades-pages"),
            Route::SandboxAfterTradesPages
        );
        assert_eq!(get("/sandbox/fill"), Route::MethodNotAllowed("POST".into()));
        assert_eq!(
            post("/sandbox/trades"),
            Route::MethodNotAllowed("GET".into())
        );
        let bad = |f: fn(&mut Paths)| {
            let mut p = Paths::default();
            f(&mut p);
            Routes::new(&p).err().unwrap()
        };
        assert!(bad(|p| p.balances = "balances".into()).contains("start with `/`"));
        assert!(bad(|p| p.order_by_id = "/order/:id".into()).contains("{id}"));
        assert!(bad(|p| p.my_orders = "/sandbox/x".into()).contains("reserved"));
        assert!(bad(|p| p.my_trades = p.balances.clone()).contains("both GET"));
        assert!(bad(|p| p.ticker = p.my_orders.clone()).contains("both GET"));
        assert!(bad(|p| p.ticker = "/ticker?pair=".into()).contains("`ticker`"));
        assert!(bad(|p| p.ticker = "/sandbox/ticker".into()).contains("reserved"));
    }

    #[test]
    fn placement_bodies_are_validated() {
        let ok = parse_place(
            r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00"}"#,
            None,
        )
        .unwrap();
        assert_eq!(ok.price.unwrap().text(), "24321.00");
        let cases = [
            (
                r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":2,"price":"1"}"#,
                "not the number 2",
            ),
            (
                r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2"}"#,
                "needs a `price`",
            ),
            (
                r#"{"pair":"BTC-USDC","type":"market","side":"buy","quantity":"2","price":"1"}"#,
                "must not carry",
            ),
            (
                r#"{"pair":"btc","type":"market","side":"buy","quantity":"2"}"#,
                "pair must look like",
            ),
            (
                r#"{"pair":"BTC-USDC","type":"stop","side":"buy","quantity":"2"}"#,
                "type must be",
            ),
            (
                r#"{"pair":"BTC-USDC","type":"market","side":"hold","quantity":"2"}"#,
                "side must be",
            ),
            (
                r#"{"pair":"BTC-USDC","type":"market","side":"buy","quantity":"-2"}"#,
                "quantity:",
            ),
            (
                r#"{"pair":"BTC-USDC","type":"market","side":"buy"}"#,
                "missing `quantity`",
            ),
            (r#"[1]"#, "JSON object"),
            (r#"{"#, "not valid JSON"),
        ];
        for (body, needle) in cases {
            let e = parse_place(body, None).err().unwrap();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let with_id = parse_place(
            r#"{"pair":"BTC-USDC","type":"market","side":"buy","quantity":"2","cid":"abc"}"#,
            Some("cid"),
        )
        .unwrap();
        assert_eq!(with_id.client_order_id.as_deref(), Some("abc"));
    }

    #[test]
    fn deposit_addresses_are_stable_and_distinct() {
        assert_eq!(fake_address("USDC", "ERC20"), fake_address("USDC", "ERC20"));
        assert_ne!(fake_address("USDC", "ERC20"), fake_address("USDC", "TRC20"));
        assert_eq!(fake_address("USDC", "ERC20").len(), 42);
    }
}
