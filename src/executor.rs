//! Runs a validated, journaled batch against the exchange.
//!
//! The order of work in a run, and why:
//! 1. Orders left `sending` by a process that died become `unknown`.
//! 2. Every `unknown` order is resolved against the exchange (found, or
//!    proven absent after a grace period) *before anything new is sent*:
//!    otherwise a resend could duplicate an order the exchange already has.
//!    What cannot be proven either way stops the run (exit 3).
//!    Then the batch's cancels run ([`crate::cancels`]), before any
//!    placement: a cancel of a still-unknown order waits.
//! 3. Pending orders are placed, each journaled `sending` (durably) once
//!    the rate limit lets it through, then sent as soon as a request slot
//!    is free (a bounded number wait so marked: see
//!    [`crate::client::AHEAD_PER_SLOT`]), giving up on the answer by the
//!    deadline journaled with it.
//! 4. Orders whose outcome was lost during this run are resolved the same
//!    way and, if proven absent, placed again, for a few rounds.
//! 5. Statuses of open orders, the trade history and the batch's queries
//!    are fetched and journaled.
//!
//! Every state change goes through [`crate::order::transition`]; this
//! module only decides which event happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::account::{backoff, exchange_state, fill_from, Account};
pub use crate::account::{client_order_id, fingerprint_matches, Stop};
use crate::batch::{Batch, QueryKind, QuerySpec};
use crate::client::{list_of, now_ms, ExchangeOrder, Method, Reply, SendError, AHEAD_PER_SLOT};
use crate::journal::{
    Journal, JournalError, OrderRow, QueryResult, ReportRow, StateChange, ToPlace, Write,
};
use crate::order::{Event, OrderState};

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
    /// `reconcile` found drift: findings not seen before.
    pub const DRIFT: i32 = 5;
    /// `plan --detailed-exitcode`: there is something to place or resolve.
    pub const CHANGES: i32 = 6;
    /// Interrupted (Ctrl-C); in-flight requests were journaled.
    pub const INTERRUPTED: i32 = 130;
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tries for a placement that provably did not reach the exchange.
    pub place_tries: u32,
    /// Tries for a placement the exchange refused with 429.
    pub rate_limited_tries: u32,
    /// Rounds of resolve-and-resend for orders lost during the run.
    pub resolve_rounds: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            place_tries: 5,
            rate_limited_tries: 20,
            resolve_rounds: 10,
        }
    }
}

/// What a run ended with.
#[derive(Debug)]
pub struct RunReport {
    /// Every order of the batch as the journal holds it at the end.
    pub orders: Vec<ReportRow>,
    /// `(query id, Ok(summary) | Err(error))`.
    pub queries: Vec<(String, Result<String, String>)>,
    /// Orders still unknown.
    pub unresolved: Vec<String>,
    /// The batch's cancels, as the run left them.
    pub cancels: crate::cancels::CancelReport,
    /// Things the user should read (auth problems, skew, ...).
    pub notes: Vec<String>,
    /// Ctrl-C was pressed.
    pub interrupted: bool,
    /// The exit code.
    pub exit_code: i32,
}

/// A run in progress. Cloning is cheap (shared handles); each placement
/// task holds a clone.
#[derive(Clone)]
pub struct Executor {
    acct: Account,
    batch: Arc<Batch>,
    opts: RunOptions,
    auth_failed: Arc<AtomicBool>,
    gathered: Arc<Gathered>,
}

/// The placement tasks' durable writes (each order's `sending` mark and
/// its answer), gathered into one journal message per turn of the
/// runtime.
///
/// Every write still waits for its commit before the task goes on: a
/// request leaves only once its mark is durable. What changes is who is
/// woken by the journal thread: one task per gathered message rather than
/// one per order. A wake from another thread costs a system call (and
/// often a context switch) on the runtime's thread; with two writes per
/// order these were most of its system calls.
#[derive(Default)]
struct Gathered {
    waiting: std::sync::Mutex<Vec<(Vec<Write>, tokio::sync::oneshot::Sender<bool>)>>,
    /// The first error a gathered message met, for the run to report.
    error: std::sync::Mutex<Option<JournalError>>,
}

impl Gathered {
    /// Write `items` with those of every other task ready in this turn,
    /// and wait until they are committed.
    async fn write_durable(
        &self,
        journal: &crate::journal::JournalWriter,
        items: Vec<Write>,
    ) -> Result<(), JournalError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        let first = {
            let mut w = self.waiting.lock().expect("lock");
            w.push((items, ack));
            w.len() == 1
        };
        if first {
            // Let the other tasks that can run now add theirs, then send
            // everything gathered as one message.
            tokio::task::yield_now().await;
            let gathered = std::mem::take(&mut *self.waiting.lock().expect("lock"));
            let mut items = Vec::new();
            let mut acks = Vec::with_capacity(gathered.len());
            for (w, ack) in gathered {
                items.extend(w);
                acks.push(ack);
            }
            let ok = match journal.write_durable(items).await {
                Ok(()) => true,
                Err(e) => {
                    self.error.lock().expect("lock").get_or_insert(e);
                    false
                }
            };
            for ack in acks {
                let _ = ack.send(ok);
            }
        }
        match done.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JournalError::WriterGone(
                "a journal write of this run failed".into(),
            )),
            Err(_) => Err(JournalError::WriterGone("no answer".into())),
        }
    }
}

impl Executor {
    /// Prepare a run of `batch` on the account (whose stop flag, set by
    /// Ctrl-C, means no new order is sent).
    pub fn new(acct: Account, batch: Arc<Batch>, opts: RunOptions) -> Executor {
        Executor {
            acct,
            batch,
            opts,
            auth_failed: Default::default(),
            gathered: Default::default(),
        }
    }

    /// `read` of this batch (given its id), on the journal's thread.
    async fn read_batch<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Journal, &str) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let id = self.batch.id.clone();
        self.acct.journal().call(move |j| read(j, &id)).await?
    }

    /// Every order of the batch, in file order, as much as a report shows.
    async fn orders(&self) -> Result<Vec<ReportRow>, JournalError> {
        self.read_batch(|j, id| j.report_rows(id)).await
    }

    /// The batch's orders in one state (a large batch has few of them).
    async fn orders_in(&self, state: OrderState) -> Result<Vec<OrderRow>, JournalError> {
        self.read_batch(move |j, id| j.orders_in(id, state)).await
    }

    /// Run the batch to the end and report.
    pub async fn run(&self) -> Result<RunReport, JournalError> {
        // 1. A previous process died while these were on the wire.
        let mut recovered = Vec::new();
        for o in self.orders_in(OrderState::Sending).await? {
            let mut c = self.acct.change(&o, OrderState::Sending, Event::Recovered);
            c.detail =
                Some("found `sending` at start: the previous run stopped mid-request".into());
            recovered.push(Write::State(c));
        }
        if !recovered.is_empty() {
            self.acct.journal().write_durable(recovered).await?;
        }

        // A batch new to this journal whose client order ids the exchange
        // already holds was run before from another journal (a lost one):
        // sending it would place it twice.
        if let Some(why) = self.client_ids_already_used().await? {
            self.acct.note(why);
            return Ok(RunReport {
                orders: self.orders().await?,
                queries: Vec::new(),
                unresolved: Vec::new(),
                cancels: Default::default(),
                notes: self.acct.notes(),
                interrupted: false,
                exit_code: exit::USAGE,
            });
        }

        // 2-4. Resolve, place, and resolve what was lost, in rounds.
        let mut unresolved: Vec<String> = Vec::new();
        let mut cancels = crate::cancels::CancelReport::default();
        for round in 0..=self.opts.resolve_rounds {
            unresolved = self.resolve_unknown().await?;
            // Cancels run once, before any placement (src/cancels.rs);
            // those whose target is still unknown wait.
            if round == 0 && !self.acct.stop().is_set() {
                cancels = crate::cancels::run(&self.acct, &self.batch).await?;
            }
            if !unresolved.is_empty() || self.acct.stop().is_set() {
                break;
            }
            let sent = self.place_pending().await?;
            let lost = !self.orders_in(OrderState::Unknown).await?.is_empty();
            if !lost || (sent == 0 && round > 0) {
                break;
            }
            if round == self.opts.resolve_rounds {
                unresolved = self.resolve_unknown().await?;
            }
        }
        let interrupted = self.acct.stop().is_set();

        // 5. What the exchange says now.
        let mut queries = Vec::new();
        if !interrupted && !self.auth_failed.load(Ordering::SeqCst) {
            // The open orders' statuses and the trade history are read
            // side by side: neither reads what the other writes, and each
            // waits on the exchange while the other parses a page. The
            // trades go first: theirs is the longer chain of pages, and
            // every page of it is journaled.
            let (sync, refreshed) = tokio::join!(self.acct.sync_trades(), self.refresh_open());
            refreshed?;
            let sync = sync?;
            if let Some(why) = sync.incomplete {
                self.acct.note(format!(
                    "the account's trade history was not read completely: {why}; the next run or `hqx reconcile` reads it again"
                ));
            }
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
            || queries.iter().any(|(_, r)| r.is_err())
            || !cancels.failed.is_empty();
        let exit_code = if interrupted {
            exit::INTERRUPTED
        } else if !unresolved.is_empty() || !cancels.unresolved.is_empty() {
            exit::UNRESOLVED
        } else if failed {
            exit::FAILED
        } else {
            exit::OK
        };
        let notes = self.acct.notes();
        Ok(RunReport {
            orders,
            queries,
            unresolved,
            cancels,
            notes,
            interrupted,
            exit_code,
        })
    }

    /// [`Account::change`] of an order being placed, addressed by its
    /// rowid as read.
    fn change_of(&self, o: &ToPlace, from: OrderState, event: Event) -> StateChange {
        let mut c = self.acct.change_of(&o.batch_id, &o.order_id, from, event);
        c.row = Some(o.row);
        c
    }

    /// Place every pending order, bounded by the client's concurrency and
    /// rate. Returns how many placement requests were sent.
    async fn place_pending(&self) -> Result<usize, JournalError> {
        let pending = self.read_batch(|j, id| j.orders_to_place(id)).await?;
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // No more orders under way at once than can be marked ahead or be
        // in flight, plus as many again waiting their turn: a task per
        // order of a large batch would hold every order's task (and its
        // memory) at once, all but these waiting on the same semaphores.
        // So that many workers take the orders in file order, one at a
        // time each (a task spawned per order, joined and replaced, cost
        // 1.8 % of a run's instructions).
        let live = 2 * self.acct.client().concurrency() * (AHEAD_PER_SLOT + 1);
        let workers = live.min(pending.len());
        let queue = Arc::new(std::sync::Mutex::new(pending.into_iter()));
        let first_err: Arc<std::sync::Mutex<Option<JournalError>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (me, sent, queue, first_err) =
                (self.clone(), sent.clone(), queue.clone(), first_err.clone());
            tasks.spawn(async move {
                loop {
                    let next = queue.lock().expect("lock").next();
                    let Some(o) = next else { return };
                    if let Err(e) = me.place_one(o, &sent).await {
                        first_err.lock().expect("lock").get_or_insert(e);
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        // The error a gathered write met, rather than a task's word for it.
        if let Some(e) = self.gathered.error.lock().expect("lock").take() {
            return Err(e);
        }
        if let Some(e) = first_err.lock().expect("lock").take() {
            return Err(e);
        }
        Ok(sent.load(Ordering::SeqCst))
    }

    /// One order: journal `sending`, send, journal what the answer proves.
    async fn place_one(
        &self,
        o: ToPlace,
        sent: &std::sync::atomic::AtomicUsize,
    ) -> Result<(), JournalError> {
        let venue = self.acct.client().venue();
        let (mut not_sent, mut refused) = (0u32, 0u32);
        let mut attempt = o.attempts;
        while not_sent < self.opts.place_tries && refused < self.opts.rate_limited_tries {
            if self.acct.stop().is_set() || self.auth_failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            // Waiting for the rate limit or a 429 pause gives way to
            // Ctrl-C: nothing has been sent for this order yet.
            let ready = tokio::select! {
                ready = self.acct.client().ready() => ready,
                _ = self.acct.stop().wait() => return Ok(()),
            };
            if self.acct.stop().is_set() {
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
            let mut c = self.change_of(&o, OrderState::Pending, Event::Send);
            c.is_send = true;
            let deadline_ms = c.at_ms + venue.request_timeout_ms as i64;
            c.send_deadline_ms = Some(deadline_ms);
            c.client_order_id = client_id.map(|(_, v)| v);
            c.detail = Some(format!("attempt {attempt}"));
            // The intent to send is durable before the request leaves.
            self.gathered
                .write_durable(self.acct.journal(), vec![Write::State(c)])
                .await?;
            // Then wait for a request slot. The request gives up on its
            // answer by the deadline just journaled, however long it waited
            // here; one left with less than half its time is not sent.
            let slot = tokio::select! {
                slot = self.acct.client().slot_after(ready) => Some(slot),
                _ = self.acct.stop().wait() => None,
            };
            let left_ms = deadline_ms - now_ms();
            let slot = match slot {
                Some(slot) if left_ms >= venue.request_timeout_ms as i64 / 2 => slot,
                waited => {
                    let why = if waited.is_none() {
                        "interrupted before it was sent"
                    } else {
                        "waited too long for a request slot; not sent"
                    };
                    let mut c = self.change_of(&o, OrderState::Sending, Event::NotSent);
                    c.unsent = true;
                    c.last_error = Some(Some(why.into()));
                    c.detail = Some(format!("attempt {attempt}"));
                    self.acct
                        .journal()
                        .write_durable(vec![Write::State(c)])
                        .await?;
                    if waited.is_none() {
                        return Ok(());
                    }
                    attempt -= 1;
                    not_sent += 1;
                    continue;
                }
            };
            sent.fetch_add(1, Ordering::SeqCst);
            let (result, rec) = self
                .acct
                .client()
                .send_within(
                    &slot,
                    Method::Post,
                    &venue.paths.place_order,
                    Some(&body),
                    Duration::from_millis(left_ms as u64),
                )
                .await;
            drop(slot);
            let http = self.acct.http(rec, Some(&o.order_id));
            let (event, mut c, retry_after) = match result {
                Err(SendError::NotSent(e)) => {
                    let mut c = self.change_of(&o, OrderState::Sending, Event::NotSent);
                    c.last_error = Some(Some(e));
                    (Event::NotSent, c, None)
                }
                Err(SendError::NoAnswer(e)) => {
                    let mut c = self.change_of(&o, OrderState::Sending, Event::Lost);
                    c.last_error = Some(Some(e));
                    (Event::Lost, c, None)
                }
                Ok(reply) => self.placement_answer(&o, &reply),
            };
            c.detail.get_or_insert_with(|| format!("attempt {attempt}"));
            // Durable before the next step: an answer that is not journaled
            // would leave the order `sending` for the next run to resolve.
            self.gathered
                .write_durable(self.acct.journal(), vec![http, Write::State(c)])
                .await?;
            match (event, retry_after) {
                _ if self.auth_failed.load(Ordering::SeqCst) => return Ok(()),
                (Event::Refused, Some(wait)) => {
                    // The next slot waits out the pause for every request.
                    refused += 1;
                    self.acct.client().back_off(wait);
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
        o: &ToPlace,
        reply: &Reply,
    ) -> (Event, StateChange, Option<Duration>) {
        let s = reply.status;
        if (200..300).contains(&s) {
            let parsed = ExchangeOrder::from_answer(&reply.body);
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
                    let mut c = self.change_of(o, OrderState::Sending, ev);
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
                    let mut c = self.change_of(o, OrderState::Sending, Event::Lost);
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
                let mut c = self.change_of(o, OrderState::Sending, Event::Refused);
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
                    text.push_str(&self.acct.client().credentials().forbidden_hint());
                } else {
                    text.push_str("; check the key pair and that it has not expired");
                }
                self.acct.note(text.clone());
                let mut c = self.change_of(o, OrderState::Sending, Event::Refused);
                c.last_error = Some(Some(text));
                (Event::Refused, c, None)
            }
            // With client order ids, a conflict means the exchange has this
            // order already (an earlier attempt did reach it): find it.
            409 if self.acct.client().venue().client_order_id_field.is_some() => {
                let mut c = self.change_of(o, OrderState::Sending, Event::Lost);
                c.last_error = Some(Some(format!(
                    "{msg}; the exchange already holds this client order id: it will be matched by it"
                )));
                (Event::Lost, c, None)
            }
            400..=499 => {
                let mut c = self.change_of(o, OrderState::Sending, Event::Rejected);
                c.last_error = Some(Some(msg));
                (Event::Rejected, c, None)
            }
            _ => {
                // 5xx: the exchange may have acted before failing.
                let mut c = self.change_of(o, OrderState::Sending, Event::Lost);
                c.last_error = Some(Some(msg));
                (Event::Lost, c, None)
            }
        }
    }

    /// Where the venue has client order ids and no order of this batch was
    /// ever sent from this journal: whether the exchange already holds any
    /// of the batch's client ids (a refusal message), read from the whole
    /// order list. `Some` also when the list cannot be read: it fails
    /// closed.
    async fn client_ids_already_used(&self) -> Result<Option<String>, JournalError> {
        if self.acct.client().venue().client_order_id_field.is_none() {
            return Ok(None);
        }
        let orders = self.orders().await?;
        if orders.iter().any(|o| o.attempts > 0) {
            return Ok(None);
        }
        let ours: std::collections::HashMap<String, &str> = orders
            .iter()
            .map(|o| {
                (
                    client_order_id(&self.batch.id, &o.order_id),
                    o.order_id.as_str(),
                )
            })
            .collect();
        let listed = match self.acct.list_orders(None, "all", None, None).await {
            Ok(l) => l,
            Err(e) => {
                return Ok(Some(format!(
                    "batch `{}` is new to this journal and the venue has client order ids, but the account's orders could not be read to check that none of them is already there ({e}); nothing was sent: run again when the exchange answers",
                    self.batch.id
                )))
            }
        };
        let clash: Vec<String> = listed
            .iter()
            .flatten()
            .filter_map(|e| {
                let cid = e.client_order_id.as_ref()?;
                ours.get(cid)
                    .map(|o| format!("{o} (exchange order {})", e.id))
            })
            .collect();
        Ok((!clash.is_empty()).then(|| {
            format!(
                "batch `{}` is new to this journal, but the exchange already holds its orders {}: it was run before from another journal. Nothing was sent. Restore that journal (hqx journal backup makes copies) rather than run the batch again.",
                self.batch.id,
                clash.join(", ")
            )
        }))
    }

    /// Resolve every `unknown` order of the batch. Returns the ids that
    /// could not be resolved (the run must stop sending).
    async fn resolve_unknown(&self) -> Result<Vec<String>, JournalError> {
        let unknown = self.orders_in(OrderState::Unknown).await?;
        let left = self.acct.resolve_unknown(unknown).await?;
        Ok(left.into_iter().map(|o| o.order_id).collect())
    }

    /// Bring the batch's `open` orders up to date.
    async fn refresh_open(&self) -> Result<(), JournalError> {
        let open = self.read_batch(|j, id| j.open_orders(id)).await?;
        let ids: Vec<String> = open.iter().map(|o| o.exchange_order_id.clone()).collect();
        // Only their status: journal orders keep no exchange text.
        let st = self.acct.order_statuses(&ids, false).await;
        if let Some((id, why)) = st.unreadable.first() {
            self.acct.note(format!(
                "cannot refresh {} open order(s) (e.g. {id}: {why}); they keep their last known state",
                st.unreadable.len()
            ));
        }
        self.acct.apply_statuses(&open, &st).await?;
        Ok(())
    }

    /// Run one batch query and journal its answer.
    async fn run_query(&self, q: &QuerySpec) -> Result<Result<String, String>, JournalError> {
        let paths = &self.acct.client().venue().paths;
        let (kind, result): (&'static str, Result<Value, String>) = match &q.kind {
            QueryKind::Trades {
                pair,
                from_ms,
                to_ms,
                limit,
            } => (
                "trades",
                self.acct
                    .fetch_trades(pair.as_ref().map(|p| p.as_str()), *from_ms, *to_ms, *limit)
                    .await
                    .map(Value::Array),
            ),
            QueryKind::Orders { pair, status } => {
                let mut path = format!("{}?status={}", paths.my_orders, status.as_str());
                if let Some(p) = pair {
                    path.push_str(&format!("&pair={p}"));
                }
                ("orders", self.acct.get_json(&path).await)
            }
            QueryKind::Balances => ("balances", self.acct.get_json(&paths.balances).await),
            QueryKind::DepositAddress { currency, network } => {
                let body =
                    serde_json::json!({"currency": currency, "network": network}).to_string();
                let (r, rec) = self
                    .acct
                    .client()
                    .send(Method::Post, &paths.deposit_address, Some(&body))
                    .await;
                self.acct.journal().write(vec![self.acct.http(rec, None)]);
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
        self.acct.journal().write(vec![Write::Query(QueryResult {
            run_id: self.acct.run_id(),
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

/// Add a field at the end of a JSON object body.
fn with_field(body: &str, field: &str, value: &str) -> String {
    let mut v: serde_json::Map<String, Value> =
        serde_json::from_str(body).expect("bodies are built by OrderIntent::body");
    v.insert(field.into(), value.into());
    Value::Object(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_answers_are_shortened_on_character_boundaries() {
        let v = serde_json::json!({"currency": "USD₮", "address": "₮".repeat(100)});
        let s = summarise(&v);
        assert!(s.ends_with("...") && s.chars().count() == 80, "{s}");
    }
}
