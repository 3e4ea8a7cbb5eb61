//! A run's cancels: "this order must not be live on the exchange".
//!
//! They run after the batch's `unknown` orders were looked for and before
//! any placement (so that freed funds are available). For each cancel of
//! the batch:
//!
//! 1. **Expand** (once per cancel, ever): which orders it is about. An
//!    `order:` is a journal order; an `exchange_order_id:` is that order
//!    (and the journal order that adopted it, if any); `all_open:` reads the
//!    account's open orders on the pair, every page, once: the list is
//!    journaled, so a rerun never cancels orders placed after it. Nothing
//!    is sent before the list is durable.
//! 2. **Decide** for each order from the journal: never sent (`pending`) →
//!    journaled `cancelled` with no request; rejected → not needed; already
//!    filled or cancelled → reported so; `unknown`/`sending` → the cancel
//!    *waits* (nothing is sent): its outcome must be resolved first (this
//!    batch's own unknown orders were just looked for; another batch's are
//!    resolved by running that batch, or `hqx resolve`). Sending a DELETE
//!    for an order whose placement is unknown could not tell "cancelled"
//!    from "never there", and a later resolution might then place it.
//! 3. **Send**: the cancel is journaled `sending` (durably) before the
//!    DELETE leaves. An answer that proves nothing (timeout, 5xx, closed
//!    connection) leaves it `unknown`; before anything is sent again the
//!    order's status is read (GET one order): cancelled → done, filled →
//!    already filled, still open → sent again. A 409 (not open) is read the
//!    same way and reported as "already filled"/"already cancelled".
//!
//! A rerun sends nothing for a cancel whose orders are all settled.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::account::{backoff, exchange_state, fill_from, Account};
use crate::batch::{Batch, CancelTarget};
use crate::cancel::{transition, CancelEvent, CancelState};
use crate::client::{now_ms, ExchangeOrder, Method, SendError};
use crate::journal::{CancelChange, CancelItem, CancelRow, JournalError, NewItem, OrderRow, Write};
use crate::order::{Event, OrderState};

/// Rounds of send / check-status / send again for cancels in one run.
const ROUNDS: u32 = 8;

/// What the run's cancels ended with.
#[derive(Debug, Default)]
pub struct CancelReport {
    /// Every cancel of the batch file as the journal holds it at the end.
    pub cancels: Vec<CancelRow>,
    /// Cancels not settled because an outcome is not known (a target
    /// order unresolved, a DELETE's answer lost and the status unreadable).
    pub unresolved: Vec<String>,
    /// Cancels that failed (the exchange refused, the list unreadable).
    pub failed: Vec<String>,
}

/// The batches whose journal orders this run may change: its own, and the
/// batches its `order:` cancels name (`hqx run` locks them all).
pub fn batches_touched(batch: &Batch) -> Vec<String> {
    let mut out = vec![batch.id.clone()];
    for c in &batch.cancels {
        if let CancelTarget::Order { batch: b, .. } = &c.target {
            if !out.contains(b) {
                out.push(b.clone());
            }
        }
    }
    out
}

/// Run the batch's cancels (see the module docs).
pub async fn run(acct: &Account, batch: &Batch) -> Result<CancelReport, JournalError> {
    if batch.cancels.is_empty() {
        return Ok(CancelReport::default());
    }
    let c = Cancels {
        acct,
        batch,
        touch: batches_touched(batch).into_iter().collect(),
        unreadable: Default::default(),
        auth_failed: Default::default(),
    };
    c.recover().await?;
    let mut failed = Vec::new();
    let pending: HashSet<String> = c
        .rows()
        .await?
        .into_iter()
        .filter(|r| r.state == "pending")
        .map(|r| r.cancel_id)
        .collect();
    for spec in &batch.cancels {
        if pending.contains(&spec.id) {
            if let Err(why) = c.expand(&spec.id, &spec.target).await? {
                acct.note(format!("cancel `{}`: {why}", spec.id));
                failed.push(spec.id.clone());
            }
        }
    }
    for round in 0..ROUNDS {
        if acct.stop().is_set() {
            break;
        }
        let progress = c.round().await?;
        if !progress {
            break;
        }
        if round > 0 {
            tokio::time::sleep(backoff(round.min(3))).await;
        }
    }
    c.finish(failed).await
}

struct Cancels<'a> {
    acct: &'a Account,
    batch: &'a Batch,
    touch: HashSet<String>,
    /// (cancel, item) whose order status could not be read in this run:
    /// not tried again until the next run.
    unreadable: std::sync::Mutex<HashSet<(String, i64)>>,
    /// The exchange refused the key (401/403): nothing more is sent.
    auth_failed: std::sync::atomic::AtomicBool,
}

impl Cancels<'_> {
    async fn rows(&self) -> Result<Vec<CancelRow>, JournalError> {
        let id = self.batch.id.clone();
        let wanted: HashSet<String> = self.batch.cancels.iter().map(|c| c.id.clone()).collect();
        let rows = self.acct.journal().call(move |j| j.cancels(&id)).await??;
        Ok(rows
            .into_iter()
            .filter(|r| wanted.contains(&r.cancel_id))
            .collect())
    }

    async fn order(&self, key: &(String, String)) -> Result<Option<OrderRow>, JournalError> {
        let (b, o) = key.clone();
        self.acct.journal().call(move |j| j.order(&b, &o)).await?
    }

    /// Apply one checked change of a cancel's order, durably.
    async fn change(
        &self,
        row: &CancelRow,
        it: &CancelItem,
        from: CancelState,
        ev: CancelEvent,
        detail: Option<String>,
        last_error: Option<Option<String>>,
    ) -> Result<CancelState, JournalError> {
        let to = transition(from, ev)
            .unwrap_or_else(|e| panic!("{}/{}[{}]: {e}", row.batch_id, row.cancel_id, it.item));
        let c = CancelChange {
            batch_id: row.batch_id.clone(),
            cancel_id: row.cancel_id.clone(),
            item: it.item,
            run_id: Some(self.acct.run_id()),
            at_ms: now_ms(),
            event: ev.name(),
            from,
            to,
            detail,
            last_error,
            is_send: ev == CancelEvent::Send,
        };
        self.acct
            .journal()
            .call(move |j| j.change_cancel(&c))
            .await??;
        Ok(to)
    }

    /// Journal a state change of a journal order this run may change.
    async fn order_change(
        &self,
        o: &OrderRow,
        ev: Event,
        eo: Option<&ExchangeOrder>,
        detail: String,
    ) -> Result<(), JournalError> {
        if !self.touch.contains(&o.batch_id) {
            return Ok(());
        }
        let mut c = self.acct.change(o, o.state, ev);
        if let Some(e) = eo {
            fill_from(&mut c, e);
        }
        c.detail = Some(detail);
        self.acct
            .journal()
            .write_durable(vec![Write::State(c)])
            .await
    }

    /// Cancels left `sending` by a process that died mid-request.
    async fn recover(&self) -> Result<(), JournalError> {
        for row in self.rows().await? {
            for it in &row.items {
                if it.state == CancelState::Sending {
                    self.change(
                        &row,
                        it,
                        CancelState::Sending,
                        CancelEvent::Recovered,
                        Some(
                            "found `sending` at start: the previous run stopped mid-request".into(),
                        ),
                        None,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Record which orders a cancel is about. `Ok(Err(why))`: not now
    /// (nothing was written or sent).
    async fn expand(
        &self,
        cancel_id: &str,
        target: &CancelTarget,
    ) -> Result<Result<(), String>, JournalError> {
        let account = self.acct.id();
        let (items, detail) = match target {
            CancelTarget::Order { batch, order } => {
                let key = (batch.clone(), order.clone());
                let Some(o) = self.order(&key).await? else {
                    return Ok(Err(format!("the journal holds no order {batch}/{order}")));
                };
                (
                    vec![NewItem {
                        exchange_order_id: o.exchange_order_id.clone(),
                        order: Some(key),
                        state: CancelState::Pending,
                        event: "expanded",
                        detail: Some(format!("journal order {batch}/{order} ({})", o.state)),
                    }],
                    format!("order {batch}/{order}"),
                )
            }
            CancelTarget::ExchangeOrderId(id) => {
                let id2 = id.clone();
                let o = self
                    .acct
                    .journal()
                    .call(move |j| j.order_by_exchange_id(account, &id2))
                    .await??;
                (
                    vec![NewItem {
                        exchange_order_id: Some(id.clone()),
                        order: o.as_ref().map(|o| (o.batch_id.clone(), o.order_id.clone())),
                        state: CancelState::Pending,
                        event: "expanded",
                        detail: o.map(|o| format!("journal order {}/{}", o.batch_id, o.order_id)),
                    }],
                    format!("exchange order {id}"),
                )
            }
            CancelTarget::AllOpen { pair } => {
                let listed = match self
                    .acct
                    .list_orders(Some(pair.as_str()), "open", None, None)
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        return Ok(Err(format!(
                            "the open orders on {pair} could not be read ({e}); nothing was cancelled: run again when the exchange answers"
                        )))
                    }
                };
                let Some(listed) = listed.into_iter().collect::<Option<Vec<_>>>() else {
                    return Ok(Err(format!(
                        "an entry of the open orders on {pair} has no id hqx can read; nothing was cancelled"
                    )));
                };
                let mut items = Vec::new();
                let mut seen = HashSet::new();
                for e in listed {
                    // The list was asked for one pair and open orders: an
                    // entry that says otherwise is not cancelled.
                    if e.pair.as_deref().is_some_and(|p| p != pair.as_str())
                        || exchange_state(&e) != OrderState::Open
                        || !seen.insert(e.id.clone())
                    {
                        continue;
                    }
                    let id = e.id.clone();
                    let o = self
                        .acct
                        .journal()
                        .call(move |j| j.order_by_exchange_id(account, &id))
                        .await??;
                    items.push(NewItem {
                        exchange_order_id: Some(e.id.clone()),
                        order: o.as_ref().map(|o| (o.batch_id.clone(), o.order_id.clone())),
                        state: CancelState::Pending,
                        event: "expanded",
                        detail: Some(match o {
                            Some(o) => format!(
                                "open on {pair}; journal order {}/{}",
                                o.batch_id, o.order_id
                            ),
                            None => format!("open on {pair}"),
                        }),
                    });
                }
                let n = items.len();
                (items, format!("{n} order(s) open on {pair}"))
            }
        };
        let (b, c, run) = (
            self.batch.id.clone(),
            cancel_id.to_string(),
            self.acct.run_id(),
        );
        self.acct
            .journal()
            .call(move |j| j.expand_cancel(&b, &c, &items, run, now_ms(), &detail))
            .await??;
        Ok(Ok(()))
    }

    /// One pass over every unsettled cancel. Returns whether anything is
    /// left that another pass could settle.
    async fn round(&self) -> Result<bool, JournalError> {
        let mut again = false;
        for row in self.rows().await? {
            for it in &row.items {
                let skip = self
                    .unreadable
                    .lock()
                    .expect("lock")
                    .contains(&(row.cancel_id.clone(), it.item));
                let auth_failed = self.auth_failed.load(std::sync::atomic::Ordering::SeqCst);
                if it.state.is_final() || skip || auth_failed || self.acct.stop().is_set() {
                    continue;
                }
                let left = self.settle(&row, it).await?;
                again |= matches!(left, CancelState::Pending | CancelState::Unknown);
            }
        }
        Ok(again)
    }

    /// Move one cancel of one order as far as it goes now.
    async fn settle(&self, row: &CancelRow, it: &CancelItem) -> Result<CancelState, JournalError> {
        let mut state = it.state;
        let order = match &it.order {
            Some(k) => self.order(k).await?,
            None => None,
        };
        if state == CancelState::Unknown {
            return self.check_status(row, it, order.as_ref(), false).await;
        }
        // Pending or waiting: what the journal says of the order decides.
        let mut exchange_id = it.exchange_order_id.clone();
        if let Some(o) = &order {
            let done = |ev| (ev, None::<String>);
            let (ev, detail) = match o.state {
                OrderState::Pending if self.touch.contains(&o.batch_id) => {
                    self.order_change(
                        o,
                        Event::CancelledUnsent,
                        None,
                        format!(
                            "cancel `{}` of batch `{}`: never sent, and now never will be",
                            row.cancel_id, row.batch_id
                        ),
                    )
                    .await?;
                    (
                        CancelEvent::NotNeeded,
                        Some("never sent: journaled as cancelled without a request".to_string()),
                    )
                }
                OrderState::Rejected => (
                    CancelEvent::NotNeeded,
                    Some("the exchange rejected the order: it was never live".into()),
                ),
                OrderState::Filled => done(CancelEvent::AlreadyFilled),
                OrderState::Cancelled => done(CancelEvent::AlreadyCancelled),
                OrderState::Open if o.exchange_order_id.is_some() => {
                    exchange_id = o.exchange_order_id.clone();
                    if state == CancelState::Waiting {
                        state = self
                            .change(
                                row,
                                it,
                                state,
                                CancelEvent::Ready,
                                Some(format!(
                                    "order {}/{} resolved: open",
                                    o.batch_id, o.order_id
                                )),
                                None,
                            )
                            .await?;
                    }
                    (CancelEvent::Send, None)
                }
                _ => {
                    if state == CancelState::Pending {
                        self.change(
                            row,
                            it,
                            state,
                            CancelEvent::Wait,
                            Some(format!(
                                "order {}/{} is {}: its outcome must be resolved first (run batch `{}` again, or `hqx resolve`)",
                                o.batch_id, o.order_id, o.state, o.batch_id
                            )),
                            None,
                        )
                        .await?;
                    }
                    return Ok(CancelState::Waiting);
                }
            };
            if ev != CancelEvent::Send {
                return self.change(row, it, state, ev, detail, None).await;
            }
        }
        let Some(id) = exchange_id else {
            return self
                .change(
                    row,
                    it,
                    state,
                    CancelEvent::Failed,
                    Some("no exchange order id to cancel".into()),
                    Some(Some("no exchange order id to cancel".into())),
                )
                .await;
        };
        self.send(row, it, state, &id, order.as_ref()).await
    }

    /// Journal `sending`, send the DELETE, journal what its answer proves.
    async fn send(
        &self,
        row: &CancelRow,
        it: &CancelItem,
        from: CancelState,
        id: &str,
        order: Option<&OrderRow>,
    ) -> Result<CancelState, JournalError> {
        if let Some(o) = order.filter(|o| o.state == OrderState::Open) {
            self.order_change(
                o,
                Event::CancelSent,
                None,
                format!("cancel `{}` of batch `{}`", row.cancel_id, row.batch_id),
            )
            .await?;
        }
        // The intent is durable before the request leaves.
        let sending = self
            .change(
                row,
                it,
                from,
                CancelEvent::Send,
                Some(format!("attempt {}", it.attempts + 1)),
                None,
            )
            .await?;
        let path = self.acct.client().venue().paths.order(id);
        let (result, rec) = self.acct.client().send(Method::Delete, &path, None).await;
        let http = self.acct.http(rec, order.map(|o| o.order_id.as_str()));
        self.acct.journal().write_durable(vec![http]).await?;
        let reply = match result {
            Err(SendError::NotSent(e)) => {
                return self
                    .change(row, it, sending, CancelEvent::NotSent, None, Some(Some(e)))
                    .await
            }
            Err(SendError::NoAnswer(e)) => {
                return self
                    .change(row, it, sending, CancelEvent::Lost, None, Some(Some(e)))
                    .await
            }
            Ok(r) => r,
        };
        let s = reply.status;
        if (200..300).contains(&s) {
            let eo = serde_json::from_str::<Value>(&reply.body)
                .ok()
                .and_then(|v| ExchangeOrder::from_json(&v))
                .filter(|e| e.id == id);
            return match eo.as_ref().map(exchange_state) {
                Some(OrderState::Cancelled) => {
                    if let Some(o) = order.filter(|o| o.state == OrderState::Open) {
                        let fresh = self
                            .order(&(o.batch_id.clone(), o.order_id.clone()))
                            .await?;
                        if let Some(o) = fresh.filter(|o| o.state == OrderState::Open) {
                            self.order_change(
                                &o,
                                Event::CancelConfirmed,
                                eo.as_ref(),
                                format!(
                                    "cancelled by cancel `{}` of batch `{}`",
                                    row.cancel_id, row.batch_id
                                ),
                            )
                            .await?;
                        }
                    }
                    self.change(
                        row,
                        it,
                        sending,
                        CancelEvent::Acknowledged,
                        None,
                        Some(None),
                    )
                    .await
                }
                _ => {
                    // Accepted but not saying cancelled: read the status.
                    let why = format!("HTTP {s} without a cancelled order in the answer");
                    self.lost_then_check(row, it, sending, order, why, false)
                        .await
                }
            };
        }
        match s {
            409 => {
                // Not open: read what it is.
                let why = format!("HTTP 409: {}", reply.message());
                self.lost_then_check(row, it, sending, order, why, true)
                    .await
            }
            429 => {
                self.acct
                    .client()
                    .back_off(reply.retry_after.unwrap_or(Duration::from_secs(1)));
                self.change(
                    row,
                    it,
                    sending,
                    CancelEvent::Refused,
                    None,
                    Some(Some(reply.message())),
                )
                .await
            }
            401 | 403 => {
                let m = format!("the exchange refused the key: {}", reply.message());
                self.acct.note(m.clone());
                self.auth_failed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.change(row, it, sending, CancelEvent::Refused, None, Some(Some(m)))
                    .await
            }
            404 => {
                let m = format!(
                    "the exchange has no order {id} on this account ({}); check the id",
                    reply.message()
                );
                self.change(row, it, sending, CancelEvent::Failed, None, Some(Some(m)))
                    .await
            }
            400..=499 => {
                self.change(
                    row,
                    it,
                    sending,
                    CancelEvent::Failed,
                    None,
                    Some(Some(reply.message())),
                )
                .await
            }
            _ => {
                self.change(
                    row,
                    it,
                    sending,
                    CancelEvent::Lost,
                    None,
                    Some(Some(reply.message())),
                )
                .await
            }
        }
    }

    /// A DELETE answered without proving the cancel (`why`): journal it
    /// as lost, then read the order's status ([`Self::check_status`]).
    async fn lost_then_check(
        &self,
        row: &CancelRow,
        it: &CancelItem,
        sending: CancelState,
        order: Option<&OrderRow>,
        why: String,
        refused: bool,
    ) -> Result<CancelState, JournalError> {
        let st = self
            .change(row, it, sending, CancelEvent::Lost, Some(why), None)
            .await?;
        let it = CancelItem {
            state: st,
            ..it.clone()
        };
        self.check_status(row, &it, order, refused).await
    }

    /// Read an order's status after a DELETE whose answer proved nothing
    /// (`unknown`); `refused` after a 409 (the exchange said: not open).
    async fn check_status(
        &self,
        row: &CancelRow,
        it: &CancelItem,
        order: Option<&OrderRow>,
        refused: bool,
    ) -> Result<CancelState, JournalError> {
        let Some(id) = it
            .exchange_order_id
            .clone()
            .or_else(|| order.and_then(|o| o.exchange_order_id.clone()))
        else {
            return Ok(it.state);
        };
        // One read per pass: an unreadable status leaves the cancel
        // unknown for the next pass or run, which reads it again first.
        let path = self.acct.client().venue().paths.order(&id);
        let (result, rec) = self.acct.client().send(Method::Get, &path, None).await;
        let http = self.acct.http(rec, order.map(|o| o.order_id.as_str()));
        self.acct.journal().write(vec![http]);
        let unreadable = |why: String| {
            self.unreadable
                .lock()
                .expect("lock")
                .insert((row.cancel_id.clone(), it.item));
            self.acct.note(format!(
                "cancel `{}`: the status of exchange order {id} could not be read ({why}); nothing more is sent for it until it is: run again",
                row.cancel_id
            ));
            Ok(it.state)
        };
        let eo = match result {
            Ok(r) if (200..300).contains(&r.status) => {
                match serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|v| ExchangeOrder::from_json(&v))
                    .filter(|e| e.id == id)
                {
                    Some(eo) => eo,
                    None => return unreadable(format!("GET {path}: not an order hqx can read")),
                }
            }
            Ok(r) if r.status == 404 => {
                let e = format!(
                    "the exchange has no order {id} on this account ({})",
                    r.message()
                );
                return self
                    .change(row, it, it.state, CancelEvent::Failed, None, Some(Some(e)))
                    .await;
            }
            Ok(r) => return unreadable(r.message()),
            Err(e) => return unreadable(e.to_string()),
        };
        let fresh = match order {
            Some(o) => {
                self.order(&(o.batch_id.clone(), o.order_id.clone()))
                    .await?
            }
            None => None,
        };
        let st = exchange_state(&eo);
        let detail = Some(format!(
            "exchange order {id} is {}",
            eo.status.as_deref().unwrap_or("open")
        ));
        let ev = match st {
            OrderState::Cancelled if refused => CancelEvent::AlreadyCancelled,
            OrderState::Cancelled => CancelEvent::CheckedCancelled,
            OrderState::Filled => CancelEvent::AlreadyFilled,
            OrderState::Open => CancelEvent::CheckedOpen,
            _ => return Ok(it.state),
        };
        if let Some(o) = fresh.filter(|o| o.state == OrderState::Open && st != OrderState::Open) {
            let oev = if ev == CancelEvent::CheckedCancelled {
                Event::CancelConfirmed
            } else {
                Event::StatusReport(st)
            };
            let d = format!(
                "status read for cancel `{}` of batch `{}`",
                row.cancel_id, row.batch_id
            );
            self.order_change(&o, oev, Some(&eo), d).await?;
        }
        if refused && ev == CancelEvent::CheckedOpen {
            // 409 but open: send again in the next pass.
            return self.change(row, it, it.state, ev, detail, None).await;
        }
        self.change(row, it, it.state, ev, detail, Some(None)).await
    }

    /// Set each cancel's summary state and report.
    async fn finish(&self, mut failed: Vec<String>) -> Result<CancelReport, JournalError> {
        let mut unresolved = Vec::new();
        for row in self.rows().await? {
            if row.state == "pending" {
                if !failed.contains(&row.cancel_id) {
                    failed.push(row.cancel_id.clone());
                }
                continue;
            }
            let st = |s: CancelState| row.items.iter().any(|i| i.state == s);
            let summary = if st(CancelState::Failed) {
                failed.push(row.cancel_id.clone());
                "failed"
            } else if st(CancelState::Waiting) {
                unresolved.push(row.cancel_id.clone());
                "waiting"
            } else if row.items.iter().all(|i| i.state.is_settled()) {
                "done"
            } else {
                unresolved.push(row.cancel_id.clone());
                "unknown"
            };
            if summary != row.state {
                let (b, c) = (row.batch_id.clone(), row.cancel_id.clone());
                self.acct
                    .journal()
                    .call(move |j| j.set_cancel_state(&b, &c, summary, None, now_ms()))
                    .await??;
            }
        }
        Ok(CancelReport {
            cancels: self.rows().await?,
            unresolved,
            failed,
        })
    }
}

/// One cancel as `hqx plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCancel {
    /// `to send`, `done`, `failed`, `not needed`, `waits`, `CONFLICT`.
    pub what: &'static str,
    /// The cancel's id.
    pub id: String,
    /// What it is about.
    pub target: String,
    /// Why, in parentheses.
    pub note: String,
}

/// What `run` would do with each cancel, from the journal alone (and, for
/// `all_open`, the open orders counted by the caller per pair, if any).
pub fn plan(
    batch: &Batch,
    journal: Option<&crate::journal::Journal>,
    open_now: Option<&std::collections::HashMap<String, Result<usize, String>>>,
) -> Result<Vec<PlannedCancel>, JournalError> {
    let rows = match journal {
        Some(j) => j.cancels(&batch.id)?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for spec in &batch.cancels {
        let row = rows.iter().find(|r| r.cancel_id == spec.id);
        let (what, note) = match row.filter(|r| r.state != "pending") {
            Some(r) => {
                let settled = r.items.iter().filter(|i| i.state.is_settled()).count();
                let states: Vec<String> = r
                    .items
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {}",
                            i.exchange_order_id.as_deref().unwrap_or("-"),
                            i.state.as_str().replace('_', " ")
                        )
                    })
                    .collect();
                let list = if states.is_empty() {
                    "no orders".to_string()
                } else {
                    states.join(", ")
                };
                if settled == r.items.len() {
                    ("done", format!(" ({list})"))
                } else if r.items.iter().any(|i| i.state == CancelState::Failed) {
                    ("failed", format!(" ({list}; final under this id: use a new id to try again)"))
                } else {
                    ("to send", format!(" (resumes: {list})"))
                }
            }
            None => match &spec.target {
                CancelTarget::Order { batch: b, order } => {
                    let o = match journal {
                        Some(j) => j.order(b, order)?,
                        None => None,
                    };
                    match o.map(|o| (o.state, o.exchange_order_id)) {
                        None if *b != batch.id => (
                            "CONFLICT",
                            " (this journal holds no such order: run refuses the batch)".to_string(),
                        ),
                        None | Some((OrderState::Pending, _)) => (
                            "not needed",
                            " (never sent: journaled as cancelled, no request)".to_string(),
                        ),
                        Some((OrderState::Open, id)) => (
                            "to send",
                            format!(" (open: DELETE {})", id.as_deref().unwrap_or("?")),
                        ),
                        Some((OrderState::Filled, _)) => {
                            ("not needed", " (already filled)".to_string())
                        }
                        Some((OrderState::Cancelled, _)) => {
                            ("not needed", " (already cancelled)".to_string())
                        }
                        Some((OrderState::Rejected, _)) => {
                            ("not needed", " (rejected: never live)".to_string())
                        }
                        Some((st, _)) => (
                            "waits",
                            format!(" ({st}: sent only once the order is resolved)"),
                        ),
                    }
                }
                CancelTarget::ExchangeOrderId(_) => ("to send", String::new()),
                CancelTarget::AllOpen { pair } => (
                    "to send",
                    match open_now.map(|m| m.get(pair.as_str())) {
                        Some(Some(Ok(n))) => format!(" ({n} order(s) open now)"),
                        Some(Some(Err(e))) => format!(" (open orders could not be counted: {e})"),
                        _ => " (resolved against the exchange at run time; `hqx plan --online` counts them now)".to_string(),
                    },
                ),
            },
        };
        out.push(PlannedCancel {
            what,
            id: spec.id.clone(),
            target: spec.target.to_string(),
            note,
        });
    }
    Ok(out)
}
