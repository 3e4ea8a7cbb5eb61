//! The SQL of cancels (`cancels`, `cancel_orders`, `cancel_events`,
//! migration 0005). States are decided in [`crate::cancel`]; this module
//! only stores them, checking that each change finds the state it expects.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    order_row, sqlite_err, write_tx, Journal, JournalError, OrderRow, Result, ORDER_COLUMNS,
};
use crate::batch::{Batch, CancelTarget};
use crate::cancel::CancelState;

/// A cancel as journaled, with the orders it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRow {
    /// Batch id.
    pub batch_id: String,
    /// Cancel id within the batch.
    pub cancel_id: String,
    /// Position in the file.
    pub seq: i64,
    /// `order`, `exchange_order_id` or `all_open`.
    pub target_kind: String,
    /// `batch/order`, the exchange order id, or the pair.
    pub target: String,
    /// `pending` until its orders are known, then `expanded`, then as the
    /// last run left it (`done`, `waiting`, `unknown`, `failed`).
    pub state: String,
    /// Free text about the state.
    pub detail: Option<String>,
    /// The orders it is about, once known.
    pub items: Vec<CancelItem>,
}

/// The cancel of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelItem {
    /// 0, 1, ... within the cancel.
    pub item: i64,
    /// The exchange's id of the order (None: a journal order never sent).
    pub exchange_order_id: Option<String>,
    /// The journal order, when there is one: (batch, order).
    pub order: Option<(String, String)>,
    /// Where the cancel stands.
    pub state: CancelState,
    /// DELETE requests sent so far.
    pub attempts: i64,
    /// Last error seen.
    pub last_error: Option<String>,
}

/// A new `cancel_orders` row.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// The exchange's id of the order.
    pub exchange_order_id: Option<String>,
    /// The journal order, when there is one.
    pub order: Option<(String, String)>,
    /// Its first state (pending, waiting, or final when nothing is to send).
    pub state: CancelState,
    /// Event name for the log.
    pub event: &'static str,
    /// Free text for the log.
    pub detail: Option<String>,
}

/// One change of a `cancel_orders` row.
#[derive(Debug, Clone)]
pub struct CancelChange {
    /// Batch id.
    pub batch_id: String,
    /// Cancel id.
    pub cancel_id: String,
    /// Item.
    pub item: i64,
    /// The run.
    pub run_id: Option<i64>,
    /// When.
    pub at_ms: i64,
    /// Event name ([`crate::cancel::CancelEvent::name`]).
    pub event: &'static str,
    /// The state it must be in (checked).
    pub from: CancelState,
    /// The new state.
    pub to: CancelState,
    /// Free text for the log.
    pub detail: Option<String>,
    /// Set (Some(Some)) or clear (Some(None)) the last error.
    pub last_error: Option<Option<String>>,
    /// This change is a send: count an attempt and stamp the time.
    pub is_send: bool,
}

/// What the file says about a cancel, as the journal spells it.
fn target_of(t: &CancelTarget) -> (&'static str, String) {
    (t.kind(), t.text())
}

/// Cancels whose target changed under the same id, and `order:` targets
/// of other batches that the journal does not hold: one message each.
pub(super) fn check(conn: &Connection, path: &Path, batch: &Batch) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut st = conn
        .prepare_cached(
            "SELECT target_kind, target FROM cancels WHERE batch_id = ?1 AND cancel_id = ?2",
        )
        .map_err(|e| sqlite_err(path, e))?;
    let mut has_order = conn
        .prepare_cached("SELECT 1 FROM orders WHERE batch_id = ?1 AND order_id = ?2")
        .map_err(|e| sqlite_err(path, e))?;
    for c in &batch.cancels {
        let (kind, target) = target_of(&c.target);
        let row: Option<(String, String)> = st
            .query_row(params![batch.id, c.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| sqlite_err(path, e))?;
        if let Some((k, t)) = row {
            if k != kind || t != target {
                out.push(format!(
                    "{}:{}: cancel `{}` was journaled as `{k}: {t}` but the file now says `{kind}: {target}`; a cancel id names one cancel forever: restore it, or give the changed cancel a new id",
                    batch.path.display(),
                    c.line,
                    c.id
                ));
            }
        }
        if let CancelTarget::Order { batch: b, order } = &c.target {
            if *b != batch.id {
                let known = has_order
                    .query_row(params![b, order], |_| Ok(()))
                    .optional()
                    .map_err(|e| sqlite_err(path, e))?
                    .is_some();
                if !known {
                    out.push(format!(
                        "{}:{}: cancel `{}` names order `{order}` of batch `{b}`, which this journal does not hold; check the ids (`hqx sql \"SELECT batch_id, order_id FROM orders\"` lists them), or cancel it by `exchange_order_id`",
                        batch.path.display(),
                        c.line,
                        c.id
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// How many of the batch's cancels are new to the journal.
pub(super) fn count_new(conn: &Connection, path: &Path, batch: &Batch) -> Result<usize> {
    let mut st = conn
        .prepare_cached("SELECT 1 FROM cancels WHERE batch_id = ?1 AND cancel_id = ?2")
        .map_err(|e| sqlite_err(path, e))?;
    let mut n = 0;
    for c in &batch.cancels {
        let known = st
            .query_row(params![batch.id, c.id], |_| Ok(()))
            .optional()
            .map_err(|e| sqlite_err(path, e))?
            .is_some();
        n += usize::from(!known);
    }
    Ok(n)
}

/// Journal every new cancel as `pending` (inside the batch's registration).
pub(super) fn register(conn: &Connection, path: &Path, batch: &Batch, now_ms: i64) -> Result<()> {
    let err = |e| sqlite_err(path, e);
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO cancels (batch_id, cancel_id, seq, target_kind, target, state, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)
             ON CONFLICT(batch_id, cancel_id) DO NOTHING",
        )
        .map_err(err)?;
    let mut ev = conn
        .prepare_cached(
            "INSERT INTO cancel_events (batch_id, cancel_id, item, at_ms, event, from_state, to_state, detail)
             VALUES (?1, ?2, NULL, ?3, 'journaled', NULL, 'pending', ?4)",
        )
        .map_err(err)?;
    for (seq, c) in batch.cancels.iter().enumerate() {
        let (kind, target) = target_of(&c.target);
        let n = ins
            .execute(params![batch.id, c.id, seq as i64, kind, target, now_ms])
            .map_err(err)?;
        if n == 1 {
            ev.execute(params![
                batch.id,
                c.id,
                now_ms,
                format!("{}:{}: {}", batch.path.display(), c.line, c.target)
            ])
            .map_err(err)?;
        }
    }
    Ok(())
}

impl Journal {
    /// Every cancel of a batch, in file order, with its orders.
    pub fn cancels(&self, batch_id: &str) -> Result<Vec<CancelRow>> {
        let err = |e| self.err(e);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT batch_id, cancel_id, seq, target_kind, target, state, detail
                 FROM cancels WHERE batch_id = ?1 ORDER BY seq",
            )
            .map_err(err)?;
        let mut rows = st
            .query_map([batch_id], |r| {
                Ok(CancelRow {
                    batch_id: r.get(0)?,
                    cancel_id: r.get(1)?,
                    seq: r.get(2)?,
                    target_kind: r.get(3)?,
                    target: r.get(4)?,
                    state: r.get(5)?,
                    detail: r.get(6)?,
                    items: Vec::new(),
                })
            })
            .map_err(err)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut items = self
            .conn
            .prepare_cached(
                "SELECT cancel_id, item, exchange_order_id, order_batch_id, order_id, state,
                        attempts, last_error
                 FROM cancel_orders WHERE batch_id = ?1 ORDER BY cancel_id, item",
            )
            .map_err(err)?;
        let all = items
            .query_map([batch_id], |r| {
                let ob: Option<String> = r.get(3)?;
                let oi: Option<String> = r.get(4)?;
                Ok((
                    r.get::<_, String>(0)?,
                    CancelItem {
                        item: r.get(1)?,
                        exchange_order_id: r.get(2)?,
                        order: ob.zip(oi),
                        state: super::parsed(r.get(5)?, 5)?,
                        attempts: r.get(6)?,
                        last_error: r.get(7)?,
                    },
                ))
            })
            .map_err(err)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        let at: std::collections::HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.cancel_id.clone(), i))
            .collect();
        for (cid, item) in all {
            if let Some(&i) = at.get(&cid) {
                rows[i].items.push(item);
            }
        }
        Ok(rows)
    }

    /// One journal order (one indexed read: cancels ask per order).
    pub fn order(&self, batch_id: &str, order_id: &str) -> Result<Option<OrderRow>> {
        let err = |e| self.err(e);
        self.conn
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE batch_id = ?1 AND order_id = ?2"
            ))
            .map_err(err)?
            .query_row(params![batch_id, order_id], order_row)
            .optional()
            .map_err(err)
    }

    /// The journal order of the account that adopted this exchange order.
    pub fn order_by_exchange_id(
        &self,
        account_id: i64,
        exchange_order_id: &str,
    ) -> Result<Option<OrderRow>> {
        let key: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT batch_id, order_id FROM orders
                 WHERE account_id = ?1 AND exchange_order_id = ?2",
                params![account_id, exchange_order_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match key {
            Some((b, o)) => self.order(&b, &o),
            None => Ok(None),
        }
    }

    /// Record the orders a cancel is about, and mark it `expanded`, in one
    /// transaction (before any of their DELETEs leaves).
    pub fn expand_cancel(
        &mut self,
        batch_id: &str,
        cancel_id: &str,
        items: &[NewItem],
        run_id: i64,
        now_ms: i64,
        detail: &str,
    ) -> Result<()> {
        let path = self.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = write_tx(&mut self.conn, &path)?;
        let updated = tx
            .execute(
                "UPDATE cancels SET state = 'expanded', detail = ?3, updated_ms = ?4
                 WHERE batch_id = ?1 AND cancel_id = ?2 AND state = 'pending'",
                params![batch_id, cancel_id, detail, now_ms],
            )
            .map_err(err)?;
        if updated != 1 {
            return Err(JournalError::StateMismatch {
                batch_id: batch_id.into(),
                order_id: format!("cancel {cancel_id}"),
                expected: "pending".into(),
                found: "not pending".into(),
            });
        }
        tx.execute(
            "INSERT INTO cancel_events (batch_id, cancel_id, item, run_id, at_ms, event, from_state, to_state, detail)
             VALUES (?1, ?2, NULL, ?3, ?4, 'expanded', 'pending', 'expanded', ?5)",
            params![batch_id, cancel_id, run_id, now_ms, detail],
        )
        .map_err(err)?;
        for (n, it) in items.iter().enumerate() {
            let (ob, oi) = match &it.order {
                Some((b, o)) => (Some(b.as_str()), Some(o.as_str())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO cancel_orders (batch_id, cancel_id, item, exchange_order_id, order_batch_id,
                                            order_id, state, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    batch_id,
                    cancel_id,
                    n as i64,
                    it.exchange_order_id,
                    ob,
                    oi,
                    it.state.as_str(),
                    now_ms
                ],
            )
            .map_err(err)?;
            tx.execute(
                "INSERT INTO cancel_events (batch_id, cancel_id, item, run_id, at_ms, event, from_state, to_state, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)",
                params![
                    batch_id,
                    cancel_id,
                    n as i64,
                    run_id,
                    now_ms,
                    it.event,
                    it.state.as_str(),
                    it.detail
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Apply one change of a cancel's order, checking its current state.
    pub fn change_cancel(&mut self, c: &CancelChange) -> Result<()> {
        let path = self.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = write_tx(&mut self.conn, &path)?;
        let (clear_error, error) = match &c.last_error {
            None => (false, None),
            Some(e) => (true, e.clone()),
        };
        let n = tx
            .execute(
                "UPDATE cancel_orders SET
                    state = ?5,
                    updated_ms = ?6,
                    attempts = attempts + ?7,
                    first_sent_ms = CASE WHEN ?7 = 1 THEN COALESCE(first_sent_ms, ?6) ELSE first_sent_ms END,
                    last_sent_ms = CASE WHEN ?7 = 1 THEN ?6 ELSE last_sent_ms END,
                    last_error = CASE WHEN ?8 THEN ?9 ELSE last_error END
                 WHERE batch_id = ?1 AND cancel_id = ?2 AND item = ?3 AND state = ?4",
                params![
                    c.batch_id,
                    c.cancel_id,
                    c.item,
                    c.from.as_str(),
                    c.to.as_str(),
                    c.at_ms,
                    c.is_send as i64,
                    clear_error,
                    error
                ],
            )
            .map_err(err)?;
        if n != 1 {
            return Err(JournalError::StateMismatch {
                batch_id: c.batch_id.clone(),
                order_id: format!("cancel {}[{}]", c.cancel_id, c.item),
                expected: c.from.as_str().into(),
                found: "another state".into(),
            });
        }
        tx.execute(
            "INSERT INTO cancel_events (batch_id, cancel_id, item, run_id, at_ms, event, from_state, to_state, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                c.batch_id,
                c.cancel_id,
                c.item,
                c.run_id,
                c.at_ms,
                c.event,
                c.from.as_str(),
                c.to.as_str(),
                c.detail
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Set a cancel's summary state (as the run leaves it).
    pub fn set_cancel_state(
        &mut self,
        batch_id: &str,
        cancel_id: &str,
        state: &str,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE cancels SET state = ?3, detail = COALESCE(?4, detail), updated_ms = ?5
                 WHERE batch_id = ?1 AND cancel_id = ?2 AND state <> 'pending'",
                params![batch_id, cancel_id, state, detail, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
