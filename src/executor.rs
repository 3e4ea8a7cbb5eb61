//! Runs a validated, journaled batch against the exchange.
//!
//! The order of work in a run, and why:
//! 1. Orders left `sending` by a process that died become `unknown`.
//! 2. Every `unknown` order is resolved against the exchange (found, or
//!    proven absent after a grace period) *before anything new is sent*:
//!    otherwise a resend could duplicate an order the exchange already has.
//!    What cannot be proven either way stops the run (exit 3).
//! 3. Pending orders are placed, each journaled `sending` (durably) inside
//!    its rate-limit slot, just before its request leaves.
//! 4. Orders whose outcome was lost during this run are resolved the same
//!    way and, if proven absent, placed again, for a few rounds.
//! 5. Statuses of open orders, the trade history and the batch's queries
//!    are fetched and journaled.
//!
//! Every state change goes through [`crate::order::transition`]; this
//! module only decides which event happened.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::batch::{Batch, QueryKind, QuerySpec};
use crate::client::{
    field, list_of, ms_of, now_ms, text_of, Client, ExchangeOrder, Method, Reply, SendError,
};
use crate::journal::{
    HttpRecord, JournalError, JournalWriter, OrderRow, QueryResult, StateChange, TradeRow, Write,
};
use crate::order::{transition, Event, OrderState};

/// Exit codes, documented in the README.
pub mod exit {
    /// Everything done.
    pub const OK: i32 = 0;
    /// Some order rejected or not placed, or a query failed.
    pub const FAILED: i32 = 1;
    /// Invalid input or usage; nothing sent or written.
    pub const USAGE: i32 = 2;
    /// Some order's outcome is unknown and could not be resolved.
    pub const UNRESOLVED: i32 = 3;
    /// The batch is being run by another hqx process.
    pub const BUSY: i32 = 4;
    /// Interrupted (Ctrl-C); in-flight requests were journaled.
    pub const INTERRUPTED: i32 = 130;
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long after its last send an unseen order counts as absent.
    pub absent_grace: Duration,
    /// Tries for a placement that provably did not reach the exchange.
    pub place_tries: u32,
    /// Tries for a placement the exchange refused with 429.
    pub rate_limited_tries: u32,
    /// Rounds of resolve-and-resend for orders lost during the run.
    pub resolve_rounds: u32,
    /// Tries for a query (GETs are safe to repeat).
    pub query_tries: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            absent_grace: Duration::from_secs(30),
            place_tries: 5,
            rate_limited_tries: 20,
            resolve_rounds: 10,
            query_tries: 5,
        }
    }
}

/// What a run ended with.
#[derive(Debug)]
pub struct RunReport {
    /// Every order of the batch as the journal holds it at the end.
    pub orders: Vec<OrderRow>,
    /// `(query id, Ok(summary) | Err(error))`.
    pub queries: Vec<(String, Result<String, String>)>,
    /// Orders still unknown.
    pub unresolved: Vec<String>,
    /// Things the user should read (auth problems, skew, ...).
    pub notes: Vec<String>,
    /// Ctrl-C was pressed.
    pub interrupted: bool,
    /// The exit code.
    pub exit_code: i32,
}

/// Ctrl-C, as the executor sees it: a flag to check and a moment to wait
/// for.
#[derive(Debug, Default)]
pub struct Stop {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stop {
    /// Ask the run to stop sending.
    pub fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_set() {
            return;
        }
        notified.await;
    }
}

/// A run in progress. Cloning is cheap (shared handles); each placement
/// task holds a clone.
#[derive(Clone)]
pub struct Executor {
    client: Arc<Client>,
    journal: JournalWriter,
    batch: Arc<Batch>,
    run_id: i64,
    opts: RunOptions,
    stop: Arc<Stop>,
    notes: Arc<std::sync::Mutex<Vec<String>>>,
    auth_failed: Arc<AtomicBool>,
}

impl Executor {
    /// Prepare a run. `stop` is set by Ctrl-C: no new order is sent after it.
    pub fn new(
        client: Arc<Client>,
        journal: JournalWriter,
        batch: Arc<Batch>,
        run_id: i64,
        opts: RunOptions,
        stop: Arc<Stop>,
    ) -> Executor {
        Executor {
            client,
            journal,
            batch,
            run_id,
            opts,
            stop,
            notes: Default::default(),
            auth_failed: Default::default(),
        }
    }

    fn note(&self, s: String) {
        tracing::warn!("{s}");
        let mut n = self.notes.lock().expect("lock");
        if !n.contains(&s) {
            n.push(s);
        }
    }

    async fn orders(&self) -> Result<Vec<OrderRow>, JournalError> {
        let id = self.batch.id.clone();
        self.journal.call(move |j| j.orders(&id)).await?
    }

    fn change(&self, o: &OrderRow, from: OrderState, event: Event) -> StateChange {
        let to = transition(from, event).unwrap_or_else(|e| {
            // A bug, not a runtime condition: the executor only sends events
            // that are legal in the state it read.
            panic!("{}/{}: {e}", o.batch_id, o.order_id)
        });
        StateChange {
            batch_id: o.batch_id.clone(),
            order_id: o.order_id.clone(),
            run_id: Some(self.run_id),
            at_ms: now_ms(),
            event: event.name(),
            from: Some(from),
            to: Some(to),
            ..Default::default()
        }
    }

    fn http(&self, mut rec: HttpRecord, order_id: Option<&str>) -> Write {
        rec.run_id = Some(self.run_id);
        rec.batch_id = Some(self.batch.id.clone());
        rec.order_id = order_id.map(str::to_string);
        Write::Http(rec)
    }

    /// Run the batch to the end and report.
    pub async fn run(&self) -> Result<RunReport, JournalError> {
        // 1. A previous process died while these were on the wire.
        let mut recovered = Vec::new();
        for o in self.orders().await? {
            if o.state == OrderState::Sending {
                let mut c = self.change(&o, OrderState::Sending, Event::Recovered);
                c.detail =
                    Some("found `sending` at start: the previous run stopped mid-request".into());
                recovered.push(Write::State(c));
            }
        }
        if !recovered.is_empty() {
            self.journal.write_durable(recovered).await?;
        }

        // 2-4. Resolve, place, and resolve what was lost, in rounds.
        let mut unresolved: Vec<String> = Vec::new();
        for round in 0..=self.opts.resolve_rounds {
            unresolved = self.resolve_unknown().await?;
            if !unresolved.is_empty() || self.stop.is_set() {
                break;
            }
            let sent = self.place_pending().await?;
            let lost = self
                .orders()
                .await?
                .iter()
                .any(|o| o.state == OrderState::Unknown);
            if !lost || (sent == 0 && round > 0) {
                break;
            }
            if round == self.opts.resolve_rounds {
                unresolved = self.resolve_unknown().await?;
            }
        }
        let interrupted = self.stop.is_set();

        // 5. What the exchange says now.
        let mut queries = Vec::new();
        if !interrupted && !self.auth_failed.load(Ordering::SeqCst) {
            self.refresh_open().await?;
            self.sync_trades().await?;
            for q in &self.batch.queries {
                let r = self.run_query(q).await?;
                queries.push((q.id.clone(), r));
            }
        }

        let orders = self.orders().await?;
        let unresolved: Vec<String> = if unresolved.is_empty() {
            orders
                .iter()
                .filter(|o| matches!(o.state, OrderState::Unknown | OrderState::Sending))
                .map(|o| o.order_id.clone())
                .collect()
        } else {
            unresolved
        };
        let failed = orders
            .iter()
            .any(|o| matches!(o.state, OrderState::Rejected | OrderState::Pending))
            || queries.iter().any(|(_, r)| r.is_err());
        let exit_code = if interrupted {
            exit::INTERRUPTED
        } else if !unresolved.is_empty() {
            exit::UNRESOLVED
        } else if failed {
            exit::FAILED
        } else {
            exit::OK
        };
        let notes = self.notes.lock().expect("lock").clone();
        Ok(RunReport {
            orders,
            queries,
            unresolved,
            notes,
            interrupted,
            exit_code,
        })
    }

    /// Place every pending order, bounded by the client's concurrency and
    /// rate. Returns how many placement requests were sent.
    async fn place_pending(&self) -> Result<usize, JournalError> {
        let pending: Vec<OrderRow> = self
            .orders()
            .await?
            .into_iter()
            .filter(|o| o.state == OrderState::Pending)
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for o in pending {
            let me = self.clone();
            let sent = sent.clone();
            tasks.spawn(async move { me.place_one(o, &sent).await });
        }
        let mut first_err = None;
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(sent.load(Ordering::SeqCst))
    }

    /// One order: journal `sending`, send, journal what the answer proves.
    async fn place_one(
        &self,
        o: OrderRow,
        sent: &std::sync::atomic::AtomicUsize,
    ) -> Result<(), JournalError> {
        let venue = self.client.venue().clone();
        let (mut not_sent, mut refused) = (0u32, 0u32);
        let mut attempt = o.attempts;
        while not_sent < self.opts.place_tries && refused < self.opts.rate_limited_tries {
            if self.stop.is_set() || self.auth_failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            // Waiting for a slot (the rate limit, a 429 pause) gives way to
            // Ctrl-C: nothing has been sent for this order yet.
            let slot = tokio::select! {
                slot = self.client.slot() => slot,
                _ = self.stop.wait() => return Ok(()),
            };
            if self.stop.is_set() {
                return Ok(());
            }
            attempt += 1;
            let client_id = venue
                .client_order_id_field
                .as_ref()
                .map(|f| (f.clone(), client_order_id(&o.batch_id, &o.order_id)));
            let body = match &client_id {
                None => o.body.clone(),
                Some((f, v)) => with_field(&o.body, f, v),
            };
            let mut c = self.change(&o, OrderState::Pending, Event::Send);
            c.is_send = true;
            c.send_deadline_ms = Some(c.at_ms + venue.request_timeout_ms as i64);
            c.client_order_id = client_id.map(|(_, v)| v);
            c.detail = Some(format!("attempt {attempt}"));
            // The intent to send is durable before the request leaves.
            self.journal.write_durable(vec![Write::State(c)]).await?;
            sent.fetch_add(1, Ordering::SeqCst);
            let (result, rec) = self
                .client
                .send_in(&slot, Method::Post, &venue.paths.place_order, Some(&body))
                .await;
            drop(slot);
            let http = self.http(rec, Some(&o.order_id));
            let (event, mut c, retry_after) = match result {
                Err(SendError::NotSent(e)) => {
                    let mut c = self.change(&o, OrderState::Sending, Event::NotSent);
                    c.last_error = Some(Some(e));
                    (Event::NotSent, c, None)
                }
                Err(SendError::NoAnswer(e)) => {
                    let mut c = self.change(&o, OrderState::Sending, Event::Lost);
                    c.last_error = Some(Some(e));
                    (Event::Lost, c, None)
                }
                Ok(reply) => self.placement_answer(&o, &reply),
            };
            c.detail.get_or_insert_with(|| format!("attempt {attempt}"));
            // Durable before the next step: an answer that is not journaled
            // would leave the order `sending` for the next run to resolve.
            self.journal
                .write_durable(vec![http, Write::State(c)])
                .await?;
            match (event, retry_after) {
                _ if self.auth_failed.load(Ordering::SeqCst) => return Ok(()),
                (Event::Refused, Some(wait)) => {
                    // The next slot waits out the pause for every request.
                    refused += 1;
                    self.client.back_off(wait);
                }
                (Event::NotSent, _) => {
                    tokio::time::sleep(backoff(not_sent)).await;
                    not_sent += 1;
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// What a placement's HTTP answer proves.
    fn placement_answer(
        &self,
        o: &OrderRow,
        reply: &Reply,
    ) -> (Event, StateChange, Option<Duration>) {
        let s = reply.status;
        if (200..300).contains(&s) {
            let parsed = serde_json::from_str::<Value>(&reply.body)
                .ok()
                .and_then(|v| ExchangeOrder::from_json(&v));
            return match parsed {
                Some(eo) => {
                    // An answer that carries an order but says "rejected"
                    // is a rejection, final; anything else is placed.
                    let st = exchange_state(&eo);
                    let ev = if st == OrderState::Rejected {
                        Event::Rejected
                    } else {
                        Event::Acknowledged(st)
                    };
                    let mut c = self.change(o, OrderState::Sending, ev);
                    fill_from(&mut c, &eo);
                    c.last_error = Some((ev == Event::Rejected).then(|| {
                        format!(
                            "HTTP {s}: the exchange answered order {} with status rejected",
                            eo.id
                        )
                    }));
                    (ev, c, None)
                }
                None => {
                    // Accepted, but we cannot tell which order it is: resolve it.
                    let mut c = self.change(o, OrderState::Sending, Event::Lost);
                    c.last_error = Some(Some(format!(
                        "HTTP {s} without an order id in the answer; will be resolved against the exchange"
                    )));
                    (Event::Lost, c, None)
                }
            };
        }
        let msg = reply.message();
        match s {
            429 => {
                let mut c = self.change(o, OrderState::Sending, Event::Refused);
                c.last_error = Some(Some(msg));
                let wait = reply.retry_after.unwrap_or(Duration::from_secs(1));
                (Event::Refused, c, Some(wait))
            }
            401 | 403 => {
                self.auth_failed.store(true, Ordering::SeqCst);
                let mut text = format!("the exchange refused the key: {msg}");
                if let Some(skew) = reply.clock_skew_secs().filter(|s| s.abs() >= 5) {
                    text.push_str(&format!(
                        "; the exchange's clock is {} s {} ours: the timestamp may be outside its window, so check this machine's clock (NTP)",
                        skew.abs(),
                        if skew > 0 { "ahead of" } else { "behind" }
                    ));
                } else if s == 403 {
                    text.push_str("; the key may be bound to other IP addresses");
                } else {
                    text.push_str("; check the key pair and that it has not expired");
                }
                self.note(text.clone());
                let mut c = self.change(o, OrderState::Sending, Event::Refused);
                c.last_error = Some(Some(text));
                (Event::Refused, c, None)
            }
            // With client order ids, a conflict means the exchange has this
            // order already (an earlier attempt did reach it): find it.
            409 if self.client.venue().client_order_id_field.is_some() => {
                let mut c = self.change(o, OrderState::Sending, Event::Lost);
                c.last_error = Some(Some(format!(
                    "{msg}; the exchange already holds this client order id: it will be matched by it"
                )));
                (Event::Lost, c, None)
            }
            400..=499 => {
                let mut c = self.change(o, OrderState::Sending, Event::Rejected);
                c.last_error = Some(Some(msg));
                (Event::Rejected, c, None)
            }
            _ => {
                // 5xx: the exchange may have acted before failing.
                let mut c = self.change(o, OrderState::Sending, Event::Lost);
                c.last_error = Some(Some(msg));
                (Event::Lost, c, None)
            }
        }
    }

    /// Resolve every `unknown` order of the batch. Returns the ids that
    /// could not be resolved (the run must stop sending).
    async fn resolve_unknown(&self) -> Result<Vec<String>, JournalError> {
        let orders = self.orders().await?;
        let unknown: Vec<&OrderRow> = orders
            .iter()
            .filter(|o| o.state == OrderState::Unknown)
            .collect();
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        // A request may still be in the exchange's hands for a while after
        // we gave up on it; only after the grace period does "not listed"
        // prove "absent".
        // Counted from when the last attempt gave up: its deadline as
        // journaled by the run that sent it (an older journal has only the
        // send time: add this run's timeout).
        let timeout = self.client.venue().request_timeout_ms as i64;
        let newest = unknown
            .iter()
            .filter_map(|o| o.last_deadline_ms.or(o.last_sent_ms.map(|t| t + timeout)))
            .max()
            .unwrap_or(0);
        let wait = newest + self.opts.absent_grace.as_millis() as i64 - now_ms();
        if wait > 0 {
            tracing::info!(
                "waiting {wait} ms before looking for {} order(s) whose outcome was not seen",
                unknown.len()
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                // Interrupted: they stay unknown for the next run.
                _ = self.stop.wait() => {
                    return Ok(unknown.iter().map(|o| o.order_id.clone()).collect());
                }
            }
        }
        let pairs: BTreeSet<&str> = unknown.iter().map(|o| o.pair.as_str()).collect();
        let mut listed: Vec<ExchangeOrder> = Vec::new();
        for pair in pairs {
            // "Not listed" proves absence only if the whole list was read:
            // an entry hqx cannot read might be the very order it looks for.
            let read = self.my_orders(pair).await.and_then(|l| {
                l.into_iter()
                    .map(|e| e.filter(ExchangeOrder::is_complete))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        format!("an entry of the {pair} order list lacks a field the match needs (pair, side, type, quantity, limit price)")
                    })
            });
            match read {
                Ok(l) => listed.extend(l),
                Err(e) => {
                    self.note(format!(
                        "cannot list orders on the exchange to resolve unknown orders: {e}"
                    ));
                    return Ok(unknown.iter().map(|o| o.order_id.clone()).collect());
                }
            }
        }
        let in_use = self.journal.call(|j| j.exchange_ids_in_use()).await??;
        let margin = self.client.venue().match_window_ms as i64;
        let by_client_id = self.client.venue().client_order_id_field.is_some();
        let mut taken: HashSet<String> = in_use;
        let mut writes = Vec::new();
        let mut unknown = unknown;
        unknown.sort_by_key(|o| (o.first_sent_ms, o.seq));
        listed.sort_by_key(|e| e.created_ms);
        for o in unknown {
            let found = listed.iter().find(|e| {
                !taken.contains(&e.id)
                    && match (&e.client_order_id, by_client_id) {
                        // The venue echoes client ids: they decide.
                        (Some(cid), true) => *cid == client_order_id(&o.batch_id, &o.order_id),
                        // No client id on this listing entry: fall back to
                        // the fingerprint rather than calling it absent.
                        _ => fingerprint_matches(o, e, margin),
                    }
            });
            let c = match found {
                Some(e) => {
                    taken.insert(e.id.clone());
                    let st = exchange_state(e);
                    let mut c = self.change(o, OrderState::Unknown, Event::Found(st));
                    fill_from(&mut c, e);
                    c.detail = Some(format!(
                        "matched exchange order {} by {}",
                        e.id,
                        if by_client_id && e.client_order_id.is_some() {
                            "client order id"
                        } else {
                            "fingerprint"
                        }
                    ));
                    c.last_error = Some(None);
                    c
                }
                None => {
                    let mut c = self.change(o, OrderState::Unknown, Event::ProvenAbsent);
                    c.detail = Some(format!(
                        "not among the exchange's {} order(s) on {} {} ms after the last send",
                        listed.len(),
                        o.pair,
                        now_ms() - o.last_sent_ms.unwrap_or(0)
                    ));
                    c
                }
            };
            writes.push(Write::State(c));
        }
        self.journal.write_durable(writes).await?;
        Ok(Vec::new())
    }

    /// A GET with retries: queries are safe to repeat.
    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let mut last = String::new();
        for try_no in 0..self.opts.query_tries {
            let (result, rec) = self.client.send(Method::Get, path, None).await;
            self.journal.write(vec![self.http(rec, None)]);
            match result {
                Ok(r) if (200..300).contains(&r.status) => {
                    return serde_json::from_str(&r.body)
                        .map_err(|e| format!("GET {path}: answer is not JSON: {e}"));
                }
                Ok(r) if r.status == 429 => {
                    let wait = r.retry_after.unwrap_or(Duration::from_secs(1));
                    self.client.back_off(wait);
                    last = r.message();
                }
                Ok(r) if r.status >= 500 => last = r.message(),
                Ok(r) => return Err(format!("GET {path}: {}", r.message())),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(backoff(try_no)).await;
        }
        Err(format!(
            "GET {path}: gave up after {} tries: {last}",
            self.opts.query_tries
        ))
    }

    /// The account's orders on `pair` as the exchange lists them, each
    /// entry read, or `None` where hqx cannot read it.
    async fn my_orders(&self, pair: &str) -> Result<Vec<Option<ExchangeOrder>>, String> {
        let path = format!(
            "{}?pair={pair}&status=all",
            self.client.venue().paths.my_orders
        );
        let v = self.get_json(&path).await?;
        let Some(list) = list_of(&v) else {
            tracing::debug!("unreadable order list: {v}");
            return Err(format!(
                "GET {path}: the answer is not an order list hqx can read; check the venue profile's `paths.my_orders` and the answer's shape (hqx -vv logs it)"
            ));
        };
        Ok(list.iter().map(ExchangeOrder::from_json).collect())
    }

    /// Bring `open` orders up to date from the exchange's listing.
    async fn refresh_open(&self) -> Result<(), JournalError> {
        let orders = self.orders().await?;
        let open: Vec<&OrderRow> = orders
            .iter()
            .filter(|o| o.state == OrderState::Open && o.exchange_order_id.is_some())
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let pairs: BTreeSet<&str> = open.iter().map(|o| o.pair.as_str()).collect();
        let mut by_id: HashMap<String, ExchangeOrder> = HashMap::new();
        for pair in pairs {
            match self.my_orders(pair).await {
                Ok(l) => by_id.extend(l.into_iter().flatten().map(|e| (e.id.clone(), e))),
                Err(e) => self.note(format!("cannot refresh open orders: {e}")),
            }
        }
        let mut writes = Vec::new();
        for o in open {
            let Some(e) = o.exchange_order_id.as_ref().and_then(|id| by_id.get(id)) else {
                continue;
            };
            let st = exchange_state(e);
            if !st.is_placed() {
                continue;
            }
            if st != o.state || e.filled_quantity != o.filled_quantity {
                let mut c = self.change(o, OrderState::Open, Event::StatusReport(st));
                fill_from(&mut c, e);
                writes.push(Write::State(c));
            }
        }
        if !writes.is_empty() {
            self.journal.write_durable(writes).await?;
        }
        Ok(())
    }

    /// Fetch the account's trades on the batch's pairs since its first
    /// send, every page, into the `trades` table.
    async fn sync_trades(&self) -> Result<(), JournalError> {
        let orders = self.orders().await?;
        let Some(since) = orders.iter().filter_map(|o| o.first_sent_ms).min() else {
            return Ok(());
        };
        let from = since - self.client.venue().match_window_ms as i64;
        let pairs: BTreeSet<String> = orders
            .iter()
            .filter(|o| o.first_sent_ms.is_some())
            .map(|o| o.pair.clone())
            .collect();
        for pair in pairs {
            if let Err(e) = self.fetch_trades(Some(&pair), Some(from), None, None).await {
                self.note(format!("cannot fetch the trade history of {pair}: {e}"));
            }
        }
        Ok(())
    }

    /// Every page of my trades matching the filter; journaled as trades.
    async fn fetch_trades(
        &self,
        pair: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<Value>, String> {
        let venue = self.client.venue();
        let limit = limit
            .unwrap_or(venue.trades_page_limit)
            .min(venue.trades_page_limit);
        let mut all = Vec::new();
        for page in 1.. {
            let mut q = vec![format!("limit={limit}"), format!("page={page}")];
            if let Some(p) = pair {
                q.insert(0, format!("pair={p}"));
            }
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = to {
                q.push(format!("to={t}"));
            }
            let path = format!("{}?{}", venue.paths.my_trades, q.join("&"));
            let v = self.get_json(&path).await?;
            let items = list_of(&v).cloned().unwrap_or_default();
            let n = items.len();
            let rows: Vec<TradeRow> = items.iter().filter_map(trade_row).collect();
            if !rows.is_empty() {
                self.journal.write(vec![Write::Trades {
                    run_id: self.run_id,
                    trades: rows,
                }]);
            }
            all.extend(items);
            if n < limit as usize || page >= 10_000 {
                break;
            }
        }
        Ok(all)
    }

    /// Run one batch query and journal its answer.
    async fn run_query(&self, q: &QuerySpec) -> Result<Result<String, String>, JournalError> {
        let paths = &self.client.venue().paths;
        let (kind, result): (&'static str, Result<Value, String>) = match &q.kind {
            QueryKind::Trades {
                pair,
                from_ms,
                to_ms,
                limit,
            } => (
                "trades",
                self.fetch_trades(pair.as_ref().map(|p| p.as_str()), *from_ms, *to_ms, *limit)
                    .await
                    .map(Value::Array),
            ),
            QueryKind::Orders { pair, status } => {
                let mut path = format!("{}?status={}", paths.my_orders, status.as_str());
                if let Some(p) = pair {
                    path.push_str(&format!("&pair={p}"));
                }
                ("orders", self.get_json(&path).await)
            }
            QueryKind::Balances => ("balances", self.get_json(&paths.balances).await),
            QueryKind::DepositAddress { currency, network } => {
                let body =
                    serde_json::json!({"currency": currency, "network": network}).to_string();
                let (r, rec) = self
                    .client
                    .send(Method::Post, &paths.deposit_address, Some(&body))
                    .await;
                self.journal.write(vec![self.http(rec, None)]);
                let v = match r {
                    Ok(r) if (200..300).contains(&r.status) => serde_json::from_str(&r.body)
                        .map_err(|e| format!("answer is not JSON: {e}")),
                    Ok(r) => Err(r.message()),
                    Err(e) => Err(e.to_string()),
                };
                ("deposit_address", v)
            }
        };
        let summary = result.as_ref().map(summarise).map_err(Clone::clone);
        self.journal.write(vec![Write::Query(QueryResult {
            run_id: self.run_id,
            batch_id: self.batch.id.clone(),
            query_id: q.id.clone(),
            kind,
            fetched_ms: now_ms(),
            result: result.map(|v| v.to_string()),
        })]);
        Ok(summary)
    }
}

/// One line about a query answer.
fn summarise(v: &Value) -> String {
    match list_of(v) {
        Some(l) => format!("{} item(s)", l.len()),
        None => {
            let t = v.to_string();
            if t.chars().count() > 80 {
                format!("{}...", t.chars().take(77).collect::<String>())
            } else {
                t
            }
        }
    }
}

fn trade_row(v: &Value) -> Option<TradeRow> {
    Some(TradeRow {
        trade_id: text_of(field(v, &["id", "tradeId", "trade_id"]))?,
        exchange_order_id: text_of(field(v, &["orderId", "order_id"])),
        pair: text_of(field(v, &["pair", "symbol"])),
        side: text_of(field(v, &["side"])),
        price: text_of(field(v, &["price"])),
        quantity: text_of(field(v, &["quantity", "qty", "amount"])),
        fee: text_of(field(v, &["fee", "commission"])),
        fee_currency: text_of(field(
            v,
            &["feeCurrency", "fee_currency", "commissionAsset"],
        )),
        traded_ms: ms_of(field(v, &["timestamp", "time", "createdAt"])),
        raw: v.to_string(),
    })
}

fn fill_from(c: &mut StateChange, e: &ExchangeOrder) {
    c.exchange_order_id = Some(e.id.clone());
    c.exchange_status = e.status.clone();
    c.filled_quantity = e.filled_quantity.clone();
    c.average_price = e.average_price.clone();
}

fn dec(s: Option<&str>) -> Option<Decimal> {
    s.and_then(|s| s.parse().ok())
}

/// Is this exchange order the journal order? Same pair, side, type,
/// quantity and price (by value: the exchange may write `24321` for
/// `24321.00`), created within the window around our sends.
/// The journal state an exchange order's status stands for; an order
/// listed or acknowledged without a status is open.
fn exchange_state(e: &ExchangeOrder) -> OrderState {
    e.status
        .as_deref()
        .map(OrderState::from_exchange_status)
        .unwrap_or(OrderState::Open)
}

pub fn fingerprint_matches(o: &OrderRow, e: &ExchangeOrder, margin_ms: i64) -> bool {
    let same = |a: &str, b: Option<&String>| b.is_some_and(|b| b.eq_ignore_ascii_case(a));
    same(&o.pair, e.pair.as_ref())
        && same(&o.side, e.side.as_ref())
        && same(&o.kind, e.kind.as_ref())
        && dec(Some(&o.quantity)).is_some()
        && dec(Some(&o.quantity)) == dec(e.quantity.as_deref())
        && match &o.price {
            // A market order has no price of its own; the exchange may
            // report the fill price there, which proves nothing.
            None => true,
            Some(p) => dec(Some(p)) == dec(e.price.as_deref()),
        }
        && match (e.created_ms, o.first_sent_ms, o.last_sent_ms) {
            (Some(t), Some(first), Some(last)) => t >= first - margin_ms && t <= last + margin_ms,
            // No time from the exchange or no send recorded: cannot narrow.
            _ => true,
        }
}

/// The client order id of a batch order: the same on every attempt, so an
/// exchange that enforces unique client ids refuses a second copy itself.
pub fn client_order_id(batch: &str, order: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{batch}\u{0}{order}").as_bytes());
    format!("hqx-{}", &hex::encode(h)[..24])
}

/// Add a field at the end of a JSON object body.
fn with_field(body: &str, field: &str, value: &str) -> String {
    let mut v: serde_json::Map<String, Value> =
        serde_json::from_str(body).expect("bodies are built by OrderIntent::body");
    v.insert(field.into(), value.into());
    Value::Object(v).to_string()
}

/// Exponential backoff with jitter: 100 ms, 200 ms, 400 ms, ... (max 5 s), ±50%.
fn backoff(try_no: u32) -> Duration {
    use rand::Rng;
    let base = 100u64.saturating_mul(1 << try_no.min(6)).min(5_000);
    let jitter = rand::thread_rng().gen_range(base / 2..=base + base / 2);
    Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, price: Option<&str>) -> OrderRow {
        OrderRow {
            batch_id: "b".into(),
            order_id: "o".into(),
            seq: 0,
            pair: "BTC-USDC".into(),
            side: "buy".into(),
            kind: kind.into(),
            quantity: "2".into(),
            price: price.map(Into::into),
            body: String::new(),
            state: OrderState::Unknown,
            attempts: 1,
            exchange_order_id: None,
            exchange_status: None,
            filled_quantity: None,
            client_order_id: None,
            last_error: None,
            created_ms: 1_000,
            first_sent_ms: Some(1_000),
            last_sent_ms: Some(2_000),
            last_deadline_ms: Some(12_000),
        }
    }

    fn listed(v: serde_json::Value) -> ExchangeOrder {
        ExchangeOrder::from_json(&v).unwrap()
    }

    #[test]
    fn fingerprints_compare_decimals_by_value_and_time_within_the_margin() {
        let o = row("limit", Some("24321.00"));
        let e = listed(
            serde_json::json!({"id": "X", "pair": "BTC-USDC", "side": "buy", "type": "limit", "quantity": "2.0", "price": 24321, "createdAt": 1500}),
        );
        assert!(fingerprint_matches(&o, &e, 0));
        let late = listed(
            serde_json::json!({"id": "X", "pair": "BTC-USDC", "side": "buy", "type": "limit", "quantity": "2", "price": "24321", "createdAt": 9000}),
        );
        assert!(!fingerprint_matches(&o, &late, 1000));
        assert!(fingerprint_matches(&o, &late, 7000));
        let other_price = listed(
            serde_json::json!({"id": "X", "pair": "BTC-USDC", "side": "buy", "type": "limit", "quantity": "2", "price": "24322"}),
        );
        assert!(!fingerprint_matches(&o, &other_price, 0));
    }

    #[test]
    fn long_answers_are_shortened_on_character_boundaries() {
        let v = serde_json::json!({"currency": "USD₮", "address": "₮".repeat(100)});
        let s = summarise(&v);
        assert!(s.ends_with("...") && s.chars().count() == 80, "{s}");
    }

    #[test]
    fn a_market_order_matches_whatever_fill_price_the_exchange_reports() {
        let o = row("market", None);
        let e = listed(
            serde_json::json!({"id": "X", "pair": "BTC-USDC", "side": "buy", "type": "market", "quantity": "2", "price": "24012.5"}),
        );
        assert!(fingerprint_matches(&o, &e, 0));
    }
}
