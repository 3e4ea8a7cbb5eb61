//! What the exchange says about one account, read safely and journaled:
//! the layer that `run` ([`crate::executor`]) and `reconcile`
//! ([`crate::reconcile`]) share, so that "is this order on the exchange?"
//! and "which trades are new?" have one answer each.
//!
//! - [`Account::get_json`]: a signed GET, retried (GETs are safe to
//!   repeat), every attempt in `http_log`.
//! - [`Account::list_orders`]: the account's order list, every page.
//!   Absence is proven only by a list read completely: a page that cannot
//!   be read, an entry that cannot be read, or a total that does not add
//!   up makes the whole read fail, never a shorter list.
//! - [`Account::resolve_unknown`]: find each `unknown` order on the
//!   exchange (by client order id where the venue has them, else by
//!   fingerprint) or prove it absent, after its deadline and a grace
//!   period. A network error is never "not found".
//! - [`Account::order_statuses`]: where the given exchange orders stand.
//! - [`Account::sync_trades`]: the account's trades since a durable
//!   cursor, with an overlap for clock skew and late trades, deduplicated
//!   by (account, trade id); the cursor moves only over a window read
//!   completely.
//!
//! Every state change still goes through [`crate::order::transition`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::client::{
    field, list_of, ms_of, now_ms, text_of, Client, ExchangeOrder, Method, OrderPage,
};
use crate::journal::{
    HttpRecord, JournalError, JournalWriter, OpenOrder, OrderRow, StateChange, TradeRow, Write,
};
use crate::order::{transition, Event, OrderState};

/// Ctrl-C, as the executor and reconcile see it: a flag to check and a
/// moment to wait for.
#[derive(Debug, Default)]
pub struct Stop {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stop {
    /// Ask the command to stop sending.
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

/// Knobs of the account reads.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// How long after its last deadline an unseen order counts as absent.
    pub absent_grace: Duration,
    /// Tries for a GET (safe to repeat).
    pub query_tries: u32,
    /// How far before the trade cursor each read starts again, for clock
    /// skew and trades the exchange reports late (ms).
    pub trades_overlap_ms: i64,
    /// Re-reads of a trade window whose total changed while it was paged.
    pub window_rereads: u32,
    /// Pages of one list at most; more is reported as an incomplete read,
    /// never silently cut (an API that pages forever must not loop).
    pub max_pages: u32,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            absent_grace: Duration::from_secs(30),
            query_tries: 5,
            trades_overlap_ms: 300_000,
            window_rereads: 3,
            max_pages: 10_000,
        }
    }
}

/// What an incremental trade read did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradeSync {
    /// Trades journaled for the first time.
    pub new_trades: usize,
    /// Trade list requests made.
    pub requests: usize,
    /// The window read, `[from, to]` (ms; `from` None: all history).
    pub window: (Option<i64>, i64),
    /// Why the read is incomplete (the cursor did not move), if it is.
    pub incomplete: Option<String>,
}

/// Where the exchange's orders stand, as far as they could be read.
#[derive(Debug, Default)]
pub struct Statuses {
    /// By exchange order id (`raw` empty unless asked for).
    pub orders: HashMap<String, ExchangeOrder>,
    /// Orders that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
}

/// One exchange account, during one command.
#[derive(Clone)]
pub struct Account {
    client: Arc<Client>,
    journal: JournalWriter,
    account_id: i64,
    run_id: i64,
    batch_id: Option<String>,
    opts: ReadOptions,
    stop: Arc<Stop>,
    notes: Arc<Mutex<Vec<String>>>,
}

impl Account {
    /// The account `account_id` of the journal, read through `client`
    /// during run `run_id`. `batch_id` tags `http_log` rows of a batch run.
    pub fn new(
        client: Arc<Client>,
        journal: JournalWriter,
        account_id: i64,
        run_id: i64,
        batch_id: Option<String>,
        opts: ReadOptions,
        stop: Arc<Stop>,
    ) -> Account {
        Account {
            client,
            journal,
            account_id,
            run_id,
            batch_id,
            opts,
            stop,
            notes: Default::default(),
        }
    }

    /// The client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The journal writer.
    pub fn journal(&self) -> &JournalWriter {
        &self.journal
    }

    /// The journal's id of this account.
    pub fn id(&self) -> i64 {
        self.account_id
    }

    /// The run reading it.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The Ctrl-C flag.
    pub fn stop(&self) -> &Arc<Stop> {
        &self.stop
    }

    /// Remember something the user should read (once).
    pub fn note(&self, s: String) {
        tracing::warn!("{s}");
        let mut n = self.notes.lock().expect("lock");
        if !n.contains(&s) {
            n.push(s);
        }
    }

    /// Everything noted so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().expect("lock").clone()
    }

    /// An `http_log` write for a request of this run.
    pub fn http(&self, mut rec: HttpRecord, order_id: Option<&str>) -> Write {
        rec.run_id = Some(self.run_id);
        rec.batch_id = self.batch_id.clone();
        rec.order_id = order_id.map(str::to_string);
        Write::Http(rec)
    }

    /// A state change of a journal order, checked by the state machine.
    pub fn change(&self, o: &OrderRow, from: OrderState, event: Event) -> StateChange {
        self.change_of(&o.batch_id, &o.order_id, from, event)
    }

    /// [`Account::change`] of the order `batch_id`/`order_id`.
    pub fn change_of(
        &self,
        batch_id: &str,
        order_id: &str,
        from: OrderState,
        event: Event,
    ) -> StateChange {
        let to = transition(from, event).unwrap_or_else(|e| {
            // A bug, not a runtime condition: callers only send events
            // that are legal in the state they read.
            panic!("{batch_id}/{order_id}: {e}")
        });
        StateChange {
            batch_id: batch_id.to_string(),
            order_id: order_id.to_string(),
            run_id: Some(self.run_id),
            at_ms: now_ms(),
            event: event.name(),
            from: Some(from),
            to: Some(to),
            ..Default::default()
        }
    }

    /// A GET with retries: reads are safe to repeat. A 4xx other than 429
    /// is final.
    pub async fn get_json(&self, path: &str) -> Result<Value, String> {
        self.get_read(path, |body| serde_json::from_str(body)).await
    }

    /// [`Account::get_json`], the answer's text read by `read`.
    async fn get_read<T>(
        &self,
        path: &str,
        read: impl Fn(&str) -> serde_json::Result<T>,
    ) -> Result<T, String> {
        let mut last = String::new();
        for try_no in 0..self.opts.query_tries {
            let (result, rec) = self.client.send(Method::Get, path, None).await;
            self.journal.write(vec![self.http(rec, None)]);
            match result {
                Ok(r) if (200..300).contains(&r.status) => {
                    return read(&r.body)
                        .map_err(|e| format!("GET {path}: answer is not JSON: {e}"));
                }
                Ok(r) if r.status == 429 => {
                    let wait = r.retry_after.unwrap_or(Duration::from_secs(1));
                    self.client.back_off(wait);
                    last = r.message();
                }
                Ok(r) if r.status >= 500 => last = r.message(),
                Ok(r) if r.status == 403 => {
                    let hint = self.client.credentials().forbidden_hint();
                    return Err(format!("GET {path}: {}{hint}", r.message()));
                }
                Ok(r) => return Err(format!("GET {path}: {}", r.message())),
                Err(e) => last = e.to_string(),
            }
            if self.stop.is_set() {
                return Err(format!("GET {path}: interrupted"));
            }
            tokio::time::sleep(backoff(try_no)).await;
        }
        Err(format!(
            "GET {path}: gave up after {} tries: {last}",
            self.opts.query_tries
        ))
    }

    /// The account's orders matching the filter, every page, oldest first.
    /// Each entry is read, or `None` where hqx cannot read it (no id).
    ///
    /// `Err` unless the list was read completely: every page answered and
    /// readable, and where the exchange says how many there are (`total`),
    /// that many distinct orders seen.
    pub async fn list_orders(
        &self,
        pair: Option<&str>,
        status: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<Option<ExchangeOrder>>, String> {
        self.list_orders_read(pair, status, from, to, true).await
    }

    /// [`Account::list_orders`], each entry with its raw text
    /// (`with_raw`) or only what a status needs.
    async fn list_orders_read(
        &self,
        pair: Option<&str>,
        status: &str,
        from: Option<i64>,
        to: Option<i64>,
        with_raw: bool,
    ) -> Result<Vec<Option<ExchangeOrder>>, String> {
        let venue = self.client.venue();
        let limit = venue.orders_page_limit.max(1);
        let mut out = Vec::new();
        let mut ids = HashSet::new();
        let mut total = None;
        for page in 1..=self.opts.max_pages {
            let mut q = vec![format!("status={status}")];
            if let Some(p) = pair {
                q.insert(0, format!("pair={p}"));
            }
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = to {
                q.push(format!("to={t}"));
            }
            q.push(format!("limit={limit}"));
            q.push(format!("page={page}"));
            let path = format!("{}?{}", venue.paths.my_orders, q.join("&"));
            // A page without a list is logged with the answer (hqx -vv).
            let logged = |listing: OrderPage, answer: &dyn std::fmt::Display| {
                if listing.list.is_none() {
                    tracing::debug!("unreadable order list: {answer}");
                }
                listing
            };
            // Without raw text, each entry is read straight from the
            // answer's text, as `ExchangeOrder::status_of` reads its value.
            let listing = if with_raw {
                let v = self.get_json(&path).await?;
                logged(OrderPage::of_value(&v), &v)
            } else {
                self.get_read(&path, |body| {
                    OrderPage::statuses(body).map(|listing| logged(listing, &body))
                })
                .await?
            };
            let OrderPage {
                list: Some(list),
                total: page_total,
            } = listing
            else {
                return Err(format!(
                    "GET {path}: the answer is not an order list hqx can read; check the venue profile's `paths.my_orders` and the answer's shape (hqx -vv logs it)"
                ));
            };
            let n = list.len();
            let before = ids.len();
            for o in list {
                if let Some(o) = &o {
                    ids.insert(o.id.clone());
                }
                out.push(o);
            }
            if page > 1 && n > 0 && ids.len() == before {
                return Err(format!(
                    "GET {path}: page {page} repeats orders already read: the exchange does not page this list as assumed (`orders_page_limit`, `page`); hqx cannot prove it read all of it"
                ));
            }
            // With every status, an order never leaves the list, and
            // oldest first, a new one only joins at the end: pages never
            // shift, so the first count is a floor for what must be seen.
            // (A filtered list, `open`, shrinks as orders fill: no floor.)
            if status == "all" && total.is_none() {
                total = page_total;
            }
            if n < limit as usize {
                if let Some(t) = total {
                    if (ids.len() as u64) < t {
                        return Err(format!(
                            "GET {path}: the exchange said {t} order(s) but its pages held {} distinct",
                            ids.len()
                        ));
                    }
                }
                return Ok(out);
            }
        }
        Err(format!(
            "the order list of {} has more than {} pages; hqx stops there rather than loop (raise nothing: report it)",
            pair.unwrap_or("the account"),
            self.opts.max_pages
        ))
    }

    /// Resolve `unknown` orders (of any batches of this account, each
    /// batch locked by the caller). Returns the ids that could not be
    /// resolved: nothing more may be sent for their batches.
    pub async fn resolve_unknown(
        &self,
        unknown: Vec<OrderRow>,
    ) -> Result<Vec<OrderRow>, JournalError> {
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let venue = self.client.venue().clone();
        // A request may still be in the exchange's hands for a while after
        // we gave up on it; only after the grace period does "not listed"
        // prove "absent". Counted from when the last attempt gave up: its
        // deadline as journaled by the run that sent it (an older journal
        // has only the send time: add this run's timeout).
        let timeout = venue.request_timeout_ms as i64;
        let deadline = |o: &OrderRow| o.last_deadline_ms.or(o.last_sent_ms.map(|t| t + timeout));
        let newest = unknown.iter().filter_map(deadline).max().unwrap_or(0);
        let wait = newest + self.opts.absent_grace.as_millis() as i64 - now_ms();
        if wait > 0 {
            tracing::info!(
                "waiting {wait} ms before looking for {} order(s) whose outcome was not seen",
                unknown.len()
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                // Interrupted: they stay unknown for the next run.
                _ = self.stop.wait() => return Ok(unknown),
            }
        }
        let margin = venue.match_window_ms as i64;
        let mut listed: Vec<ExchangeOrder> = Vec::new();
        let pairs: BTreeSet<String> = unknown.iter().map(|o| o.pair.clone()).collect();
        for pair in &pairs {
            let pair = pair.as_str();
            // Only orders created around our sends can be ours: the window
            // is the sends of the unknown orders on this pair, widened by
            // the clock-skew margin.
            let on_pair = || unknown.iter().filter(|o| o.pair == pair);
            let from = on_pair().filter_map(|o| o.first_sent_ms).min();
            let to = on_pair().filter_map(deadline).max();
            let window = (from.map(|f| f - margin), to.map(|t| t + margin));
            // "Not listed" proves absence only if the whole list was read:
            // an entry hqx cannot read might be the very order it looks for.
            let read = self
                .list_orders(Some(pair), "all", window.0, window.1)
                .await
                .and_then(|l| {
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
                    return Ok(unknown);
                }
            }
        }
        let account = self.account_id;
        let taken = self
            .journal
            .call(move |j| -> Result<HashSet<String>, JournalError> {
                let mut t = j.exchange_ids_in_use(account)?;
                t.extend(j.external_ids(account)?);
                Ok(t)
            })
            .await??;
        let mut taken = taken;
        let by_client_id = venue.client_order_id_field.is_some();
        let mut writes = Vec::new();
        let mut unknown = unknown;
        unknown.sort_by_key(|o| (o.first_sent_ms, o.seq));
        listed.sort_by_key(|e| e.created_ms);
        for o in &unknown {
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
            let c =
                match found {
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
                        c.detail =
                            Some(format!(
                        "not among the exchange's {} order(s) on {} {} ms after the last send",
                        listed.iter().filter(|e| e.pair.as_deref() == Some(&o.pair)).count(),
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

    /// Where the given exchange orders stand: the account's open orders
    /// (one paged read), then each order no longer open, one by one. With
    /// `with_raw`, each order's text is kept (`raw`), for journaling it.
    pub async fn order_statuses(&self, ids: &[String], with_raw: bool) -> Statuses {
        let read = if with_raw {
            ExchangeOrder::from_json
        } else {
            ExchangeOrder::status_of
        };
        let mut st = Statuses::default();
        if ids.is_empty() {
            return st;
        }
        match self
            .list_orders_read(None, "open", None, None, with_raw)
            .await
        {
            Ok(l) => st
                .orders
                .extend(l.into_iter().flatten().map(|e| (e.id.clone(), e))),
            Err(e) => {
                for id in ids {
                    st.unreadable.push((id.clone(), e.clone()));
                }
                return st;
            }
        }
        for id in ids {
            if st.orders.contains_key(id) {
                continue;
            }
            if self.stop.is_set() {
                st.unreadable.push((id.clone(), "interrupted".into()));
                continue;
            }
            let path = self.client.venue().paths.order(id);
            match self.get_json(&path).await {
                Ok(v) => match read(&v) {
                    Some(e) if e.id == *id => {
                        st.orders.insert(id.clone(), e);
                    }
                    _ => st
                        .unreadable
                        .push((id.clone(), format!("GET {path}: not an order hqx can read"))),
                },
                Err(e) => st.unreadable.push((id.clone(), e)),
            }
        }
        st
    }

    /// Journal what the exchange reports for open journal orders whose
    /// status or fills changed. Returns the changes made.
    pub async fn apply_statuses(
        &self,
        orders: &[OpenOrder],
        st: &Statuses,
    ) -> Result<Vec<StateChange>, JournalError> {
        let mut changes = Vec::new();
        for o in orders {
            let Some(e) = st.orders.get(&o.exchange_order_id) else {
                continue;
            };
            let to = exchange_state(e);
            if !to.is_placed() {
                continue;
            }
            let fills_changed = e.filled_quantity.is_some()
                && dec(e.filled_quantity.as_deref()) != dec(o.filled_quantity.as_deref());
            if to != OrderState::Open || fills_changed {
                let mut c = self.change_of(
                    &o.batch_id,
                    &o.order_id,
                    OrderState::Open,
                    Event::StatusReport(to),
                );
                fill_from(&mut c, e);
                c.detail = Some(format!(
                    "exchange reports {} with {} filled",
                    e.status.as_deref().unwrap_or("open"),
                    e.filled_quantity.as_deref().unwrap_or("?")
                ));
                changes.push(c);
            }
        }
        if !changes.is_empty() {
            self.journal
                .write_durable(changes.iter().cloned().map(Write::State).collect())
                .await?;
        }
        Ok(changes)
    }

    /// Read the account's trades since the cursor (less the overlap) up to
    /// now, every page, journal the new ones, and move the cursor to now
    /// if and only if the window was read completely.
    ///
    /// The trade list is newest first, so a trade that lands while the
    /// pages are read pushes the others down: a trade is then seen twice
    /// (harmless: (account, trade id) is unique), never skipped, except the
    /// new one itself, at the front, which the exchange's `total` reveals;
    /// then the window is read again. Trades stamped after the window's end
    /// are for the next read.
    pub async fn sync_trades(&self) -> Result<TradeSync, JournalError> {
        let account = self.account_id;
        let cursor = self
            .journal
            .call(move |j| j.cursor(account, "trades", ""))
            .await??;
        // "Everything up to the cursor was read" must hold even for a trade
        // made in the window's last millisecond (see `window_end`). (A
        // trade stamped earlier that the exchange lists late is read again
        // by the overlap.)
        let to = window_end().await;
        let from = cursor.map(|c| c - self.opts.trades_overlap_ms);
        let mut sync = TradeSync {
            window: (from, to),
            ..Default::default()
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut last_err = String::new();
        for _ in 0..self.opts.window_rereads.max(1) {
            match self
                .read_trade_window(None, from, Some(to), &mut seen, &mut sync)
                .await?
            {
                Ok(()) => {
                    let run = self.run_id;
                    self.journal
                        .call(move |j| j.advance_cursor(account, "trades", "", to, run, now_ms()))
                        .await??;
                    return Ok(sync);
                }
                Err(WindowError::Changed(e)) => last_err = e,
                Err(WindowError::Failed(e)) => {
                    sync.incomplete = Some(e);
                    return Ok(sync);
                }
            }
        }
        sync.incomplete = Some(format!(
            "{last_err}; still changing after {} reads",
            self.opts.window_rereads
        ));
        Ok(sync)
    }

    /// Read every page of one trade window, journaling as it goes.
    async fn read_trade_window(
        &self,
        pair: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
        seen: &mut HashSet<String>,
        sync: &mut TradeSync,
    ) -> Result<Result<(), WindowError>, JournalError> {
        let venue = self.client.venue();
        let limit = venue.trades_page_limit.max(1);
        let mut total: Option<u64> = None;
        let mut in_window: HashSet<String> = HashSet::new();
        // How many trades of the window the journal holds: counted, plus
        // the new ones this read journaled since (no more than it holds:
        // every one of them came from the window's pages). `None` until
        // counted.
        let mut held: Option<u64> = None;
        let count = |to: i64| {
            let (account, pair) = (self.account_id, pair.map(str::to_string));
            self.journal
                .call(move |j| j.count_trades(account, pair.as_deref(), from, to))
        };
        // The next page, read while this one was journaled (see below).
        let mut ahead: Option<Result<Value, String>> = None;
        for page in 1..=self.opts.max_pages {
            let path = trades_path(&venue.paths.my_trades, pair, from, to, limit, page);
            let got = match ahead.take() {
                Some(got) => got,
                None => {
                    sync.requests += 1;
                    self.get_json(&path).await
                }
            };
            let v = match got {
                Ok(v) => v,
                Err(e) => return Ok(Err(WindowError::Failed(e))),
            };
            let Some(items) = list_of(&v) else {
                return Ok(Err(WindowError::Failed(format!(
                    "GET {path}: the answer is not a trade list hqx can read"
                ))));
            };
            let rows: Vec<TradeRow> = items.iter().filter_map(trade_row).collect();
            if rows.len() < items.len() {
                return Ok(Err(WindowError::Failed(format!(
                    "GET {path}: {} trade(s) without an id; hqx cannot tell them apart",
                    items.len() - rows.len()
                ))));
            }
            let n = items.len();
            for r in &rows {
                in_window.insert(r.trade_id.clone());
            }
            let fresh: Vec<TradeRow> = rows
                .into_iter()
                .filter(|r| seen.insert(r.trade_id.clone()))
                .collect();
            let page_total = v.get("total").and_then(Value::as_u64);
            // The exchange's count of the window's trades, and the window's
            // end, with which the journal's count can end the read (below).
            let countable = page_total.zip(to);
            let mut counted_here = false;
            let mut fresh_here = 0;
            if !fresh.is_empty() {
                let more = n == limit as usize && page < self.opts.max_pages;
                if let (true, Some((_, to)), None) = (more, countable, held) {
                    held = Some(count(to).await??);
                    counted_here = true;
                }
                // The next page is read while this one is journaled when
                // the loop would ask for it anyway: even if every trade
                // here is new, the journal will not hold the exchange's
                // total for the window yet. (Only another process
                // journaling the same trades meanwhile can make that
                // request one too many.)
                let read_ahead = more
                    && matches!((held, page_total), (Some(h), Some(t)) if h + (fresh.len() as u64) < t);
                let fresh_count = fresh.len();
                let (account, run) = (self.account_id, self.run_id);
                let insert = self
                    .journal
                    .call(move |j| j.insert_trades(account, run, &fresh));
                if read_ahead {
                    let next = trades_path(&venue.paths.my_trades, pair, from, to, limit, page + 1);
                    sync.requests += 1;
                    let (inserted, got) = tokio::join!(insert, self.get_json(&next));
                    fresh_here = inserted??;
                    ahead = Some(got);
                } else {
                    fresh_here = insert.await??;
                }
                debug_assert!(fresh_here <= fresh_count);
                sync.new_trades += fresh_here;
                if let Some(h) = held.as_mut() {
                    *h += fresh_here as u64;
                }
            }
            if let Some((t, to)) = countable {
                // The journal may hold as many trades of this window as the
                // exchange said it had when it answered the page: this
                // page held nothing new, or the new ones made up the count.
                // Every journaled trade came from the exchange, which never
                // takes one back, so if the count (taken again, unless it
                // was taken for this very page and nothing was added) is
                // the same, they are the same trades: the pages below hold
                // nothing new. A reconcile with nothing new costs one
                // request, not the whole overlap again; new trades cost the
                // pages that hold them. (A trade stamped inside the window
                // that the exchange lists only after this page, like one
                // that comes after the last page, is read by the next
                // reconcile: it re-reads the overlap.)
                if fresh_here == 0 || held.is_some_and(|h| h >= t) {
                    let h = match held {
                        Some(h) if counted_here && fresh_here == 0 => h,
                        _ => count(to).await??,
                    };
                    held = Some(h);
                    if h == t {
                        return Ok(Ok(()));
                    }
                }
            }
            if let Some(t) = page_total {
                if total.is_some_and(|old| old != t) {
                    return Ok(Err(WindowError::Changed(format!(
                        "GET {path}: trades arrived while the list was read ({} then {t})",
                        total.unwrap_or_default()
                    ))));
                }
                total = Some(t);
            }
            if n < limit as usize {
                return Ok(match total {
                    Some(t) if (in_window.len() as u64) < t => Err(WindowError::Changed(format!(
                        "GET {path}: the exchange says {t} trade(s) but its pages held {}",
                        in_window.len()
                    ))),
                    _ => Ok(()),
                });
            }
        }
        Ok(Err(WindowError::Failed(format!(
            "the trade list has more than {} pages; hqx stops there rather than loop",
            self.opts.max_pages
        ))))
    }

    /// Every page of my trades matching a batch query's filter, journaled.
    pub async fn fetch_trades(
        &self,
        pair: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<Value>, String> {
        let venue = self.client.venue();
        let limit = limit
            .unwrap_or(venue.trades_page_limit)
            .min(venue.trades_page_limit)
            .max(1);
        let mut all = Vec::new();
        for page in 1..=self.opts.max_pages {
            let path = trades_path(&venue.paths.my_trades, pair, from, to, limit, page);
            let v = self.get_json(&path).await?;
            let items = list_of(&v).cloned().unwrap_or_default();
            let n = items.len();
            let rows: Vec<TradeRow> = items.iter().filter_map(trade_row).collect();
            if !rows.is_empty() {
                self.journal.write(vec![Write::Trades {
                    account_id: self.account_id,
                    run_id: self.run_id,
                    trades: rows,
                }]);
            }
            all.extend(items);
            if n < limit as usize {
                return Ok(all);
            }
        }
        Err(format!(
            "the trade list has more than {} pages; hqx stops there rather than loop",
            self.opts.max_pages
        ))
    }
}

/// Why a trade window was not read completely.
enum WindowError {
    /// It changed while it was read: read it again.
    Changed(String),
    /// It could not be read.
    Failed(String),
}

fn trades_path(
    base: &str,
    pair: Option<&str>,
    from: Option<i64>,
    to: Option<i64>,
    limit: u32,
    page: u32,
) -> String {
    let mut q = Vec::new();
    if let Some(p) = pair {
        q.push(format!("pair={p}"));
    }
    if let Some(f) = from {
        q.push(format!("from={f}"));
    }
    if let Some(t) = to {
        q.push(format!("to={t}"));
    }
    q.push(format!("limit={limit}"));
    q.push(format!("page={page}"));
    format!("{base}?{}", q.join("&"))
}

/// The end of a trade window read from now on: the current millisecond,
/// once it has passed. A trade stamped up to it was made before the pages
/// are asked for, so they list it; a trade made later is stamped after it,
/// for the next read. (The end was `now - 1`, taken at once: a trade made
/// earlier in the same millisecond, such as the fill of an order a run had
/// just placed, was left for the next read.)
async fn window_end() -> i64 {
    let t = now_ms();
    while now_ms() <= t {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    t
}

/// A trade as the exchange reports it, read leniently.
pub fn trade_row(v: &Value) -> Option<TradeRow> {
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
        // The same text as `v.to_string()` (both serde_json's compact
        // writer), written into the string's own buffer rather than
        // through `fmt::Write`, chunk by chunk.
        raw: serde_json::to_string(v).unwrap_or_else(|_| v.to_string()),
    })
}

/// Copy what the exchange reports of an order into a state change.
pub fn fill_from(c: &mut StateChange, e: &ExchangeOrder) {
    c.exchange_order_id = Some(e.id.clone());
    c.exchange_status = e.status.clone();
    c.filled_quantity = e.filled_quantity.clone();
    c.average_price = e.average_price.clone();
}

/// A decimal from text, if it is one.
pub fn dec(s: Option<&str>) -> Option<Decimal> {
    s.and_then(|s| s.parse().ok())
}

/// The journal state an exchange order's status stands for; an order
/// listed or acknowledged without a status is open.
pub fn exchange_state(e: &ExchangeOrder) -> OrderState {
    e.status
        .as_deref()
        .map(OrderState::from_exchange_status)
        .unwrap_or(OrderState::Open)
}

/// Is this exchange order the journal order? Same pair, side, type,
/// quantity and price (by value: the exchange may write `24321` for
/// `24321.00`), created within the window around our sends.
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

/// Exponential backoff with jitter: 100 ms, 200 ms, 400 ms, ... (max 5 s), ±50%.
pub fn backoff(try_no: u32) -> Duration {
    use rand::Rng;
    let base = 100u64.saturating_mul(1 << try_no.min(6)).min(5_000);
    let jitter = rand::thread_rng().gen_range(base / 2..=base + base / 2);
    Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window asked for now takes in this very millisecond (trades made
    /// in it are listed by the time the pages are read), and only once it
    /// has passed.
    #[tokio::test]
    async fn a_trade_window_ends_no_earlier_than_it_was_asked_for() {
        for _ in 0..20 {
            let asked = now_ms();
            let to = window_end().await;
            assert!(to >= asked, "{to} < {asked}");
            assert!(now_ms() > to);
        }
    }

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
    fn a_market_order_matches_whatever_fill_price_the_exchange_reports() {
        let o = row("market", None);
        let e = listed(
            serde_json::json!({"id": "X", "pair": "BTC-USDC", "side": "buy", "type": "market", "quantity": "2", "price": "24012.5"}),
        );
        assert!(fingerprint_matches(&o, &e, 0));
    }

    /// A trade's `raw` is the text `Value`'s `Display` gives.
    #[test]
    fn trade_raw_is_the_compact_text_of_the_value() {
        for text in [
            r#"{"id":"t1","price":"25000.00","quantity":2,"note":"tab\t \"q\" \u00e9 \u2028 \\ \u0001","fee":1.5e-7,"big":12345678901234567890,"neg":-0.0,"f":1.10,"n":null,"t":true,"list":[1,{"x":[]}],"o":{}}"#,
            r#"{ "tradeId" : 7 ,  "price" : 1.10, "z": 1, "a": 2, "z": 3 }"#,
            r#"{"trade_id":"\u20ac\ud83d\ude00","timestamp":"2023-11-14T22:13:20Z"}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let t = trade_row(&v).unwrap();
            assert_eq!(t.raw, v.to_string(), "{text}");
        }
    }

    #[test]
    fn trade_paths_carry_the_window() {
        assert_eq!(
            trades_path("/t", None, Some(5), Some(9), 500, 2),
            "/t?from=5&to=9&limit=500&page=2"
        );
        assert_eq!(
            trades_path("/t", Some("BTC-USDC"), None, None, 10, 1),
            "/t?pair=BTC-USDC&limit=10&page=1"
        );
    }
}
