//! Reconciliation: keep the journal true to the exchange account, and say
//! what does not add up.
//!
//! Read-only toward the exchange: nothing is placed, cancelled or resent.
//! One pass, in this order, and why:
//! 1. Orders of the account's batches left `sending` by a crash become
//!    `unknown`; every `unknown` order is resolved with the same code as
//!    `run` ([`Account::resolve_unknown`]): found (adopted) or proven
//!    absent (the next `run` may send it). Batches that a `run` holds are
//!    skipped, with a note: their orders are that run's business.
//! 2. Statuses of the journal's open orders and of the external orders
//!    still open are read and journaled (fills, partial fills, cancels):
//!    a routine sync, not drift.
//! 3. Orders created since the last reconcile are listed, then the
//!    journal is read: an order that no journal order holds, and that no
//!    journal order on its way (`sending`, `unknown`) could be, is
//!    external. The list is read *before* the journal: an intent is
//!    durable before its request leaves, so any order of hqx's on the list
//!    is in the journal by the time the journal is read.
//! 4. Balances are read, then the trade history up to now (from the
//!    cursor): so every trade the balances reflect is journaled before the
//!    two are compared.
//! 5. Fill consistency: an order's filled quantity as the exchange reports
//!    it (read in step 2, before the trades) against the sum of its
//!    journaled trades, exactly.
//! 6. Balance changes since the previous snapshot against what the trades
//!    between the two snapshots explain (fills and fees), exactly.
//! 7. Findings are recorded against earlier ones: a finding seen for the
//!    first time is drift; seen again, it is known; acknowledged by a
//!    person, it stays quiet unless its figures change.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;
use serde_json::Value;

use crate::account::{client_order_id, dec, fingerprint_matches, Account};
use crate::client::{field, list_of, now_ms, text_of, ExchangeOrder};
use crate::executor::exit;
use crate::journal::{
    BalanceRow, Finding, FindingRow, JournalError, OpenOrder, OrderRow, Snapshot, StateChange,
    TradeRow, Write,
};
use crate::order::{Event, OrderState};

/// Knobs of a reconcile.
#[derive(Debug, Clone, Default)]
pub struct ReconcileOptions {
    /// Count known (unacknowledged) findings as drift too.
    pub strict: bool,
}

/// One change the reconcile journaled: routine, not drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `order_status`, `order_found`, `order_absent`, `order_recovered`,
    /// `external_order_status`.
    pub kind: &'static str,
    /// The batch, for a journal order.
    pub batch_id: Option<String>,
    /// The batch order id, or the exchange order id for an external one.
    pub order_id: String,
    /// What changed.
    pub detail: String,
}

/// What a reconcile did and found.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// Batches of the account reconciled.
    pub batches: Vec<String>,
    /// Batches skipped because a `run` holds them.
    pub busy_batches: Vec<String>,
    /// Routine changes journaled.
    pub changes: Vec<Change>,
    /// Trades journaled for the first time.
    pub synced_trades: usize,
    /// Trade list requests made.
    pub trade_requests: usize,
    /// External orders seen for the first time.
    pub new_external_orders: usize,
    /// Findings seen by this reconcile, and open ones from before.
    pub findings: Vec<FindingRow>,
    /// Findings that are no longer true.
    pub cleared: Vec<FindingRow>,
    /// Orders whose outcome could not be proven: (batch, order).
    pub unresolved: Vec<(String, String)>,
    /// What could not be read completely (the exit code is then 1).
    pub incomplete: Vec<String>,
    /// The balance snapshot journaled, if the balances could be read.
    pub snapshot_id: Option<i64>,
    /// Things the user should read.
    pub notes: Vec<String>,
    /// Ctrl-C was pressed.
    pub interrupted: bool,
    /// New findings (and, with `--strict`, known open ones).
    pub drift: usize,
    /// Findings seen before and still open or acknowledged.
    pub known: usize,
    /// The exit code.
    pub exit_code: i32,
}

/// One reconcile of one account. The caller holds the locks of
/// `batches` (and not of `busy`).
pub struct Reconcile {
    acct: Account,
    batches: Vec<String>,
    busy: Vec<String>,
    opts: ReconcileOptions,
}

impl Reconcile {
    /// Prepare a reconcile of the account's `batches` (locked by the
    /// caller); `busy` batches are held by a `run` and left alone.
    pub fn new(
        acct: Account,
        batches: Vec<String>,
        busy: Vec<String>,
        opts: ReconcileOptions,
    ) -> Reconcile {
        Reconcile {
            acct,
            batches,
            busy,
            opts,
        }
    }

    async fn orders_of(&self, batches: &[String]) -> Result<Vec<OrderRow>, JournalError> {
        let batches = batches.to_vec();
        self.acct
            .journal()
            .call(move |j| -> Result<Vec<OrderRow>, JournalError> {
                let mut all = Vec::new();
                for b in &batches {
                    all.extend(j.orders(b)?);
                }
                Ok(all)
            })
            .await?
    }

    /// Run the reconcile to the end and report.
    pub async fn run(&self) -> Result<ReconcileReport, JournalError> {
        let mut r = ReconcileReport {
            batches: self.batches.clone(),
            busy_batches: self.busy.clone(),
            ..Default::default()
        };
        let account = self.acct.id();
        let run_id = self.acct.run_id();

        // 1. Crashed sends, then unknown orders, resolved as `run` does.
        let mut writes = Vec::new();
        for o in self.orders_of(&self.batches).await? {
            if o.state == OrderState::Sending {
                let mut c = self.acct.change(&o, OrderState::Sending, Event::Recovered);
                c.detail = Some(
                    "found `sending` by reconcile: the run that sent it stopped mid-request".into(),
                );
                r.changes
                    .push(change("order_recovered", &o, "sending -> unknown".into()));
                writes.push(Write::State(c));
            }
        }
        if !writes.is_empty() {
            self.acct.journal().write_durable(writes).await?;
        }
        let unknown: Vec<OrderRow> = self
            .orders_of(&self.batches)
            .await?
            .into_iter()
            .filter(|o| o.state == OrderState::Unknown)
            .collect();
        if !unknown.is_empty() {
            let left = self.acct.resolve_unknown(unknown.clone()).await?;
            let left_ids: HashSet<(String, String)> = left
                .iter()
                .map(|o| (o.batch_id.clone(), o.order_id.clone()))
                .collect();
            let now: HashMap<(String, String), OrderRow> = self
                .orders_of(&self.batches)
                .await?
                .into_iter()
                .map(|o| ((o.batch_id.clone(), o.order_id.clone()), o))
                .collect();
            for o in &unknown {
                let key = (o.batch_id.clone(), o.order_id.clone());
                if left_ids.contains(&key) {
                    r.unresolved.push(key);
                    continue;
                }
                if let Some(n) = now.get(&key) {
                    let (kind, detail) = match n.state {
                        OrderState::Pending => (
                            "order_absent",
                            "proven absent: the next `hqx run` of its batch sends it".to_string(),
                        ),
                        s => (
                            "order_found",
                            format!(
                                "found on the exchange as {} ({s})",
                                n.exchange_order_id.as_deref().unwrap_or("?")
                            ),
                        ),
                    };
                    r.changes.push(change(kind, n, detail));
                }
            }
        }
        if self.acct.stop().is_set() {
            return Ok(self.finish(r));
        }

        // 2. Statuses of open orders: the journal's and the external ones.
        let open: Vec<OpenOrder> = self
            .orders_of(&self.batches)
            .await?
            .iter()
            .filter_map(OpenOrder::of)
            .collect();
        let external_open = self
            .acct
            .journal()
            .call(move |j| j.external_open(account))
            .await??;
        let mut ids: Vec<String> = open.iter().map(|o| o.exchange_order_id.clone()).collect();
        ids.extend(external_open.iter().cloned());
        // With their text: an external order's is journaled.
        let statuses = self.acct.order_statuses(&ids, true).await;
        for (id, why) in &statuses.unreadable {
            r.incomplete
                .push(format!("the status of order {id}: {why}"));
        }
        for c in self.acct.apply_statuses(&open, &statuses).await? {
            r.changes.push(Change {
                kind: "order_status",
                batch_id: Some(c.batch_id.clone()),
                order_id: c.order_id.clone(),
                detail: status_detail(&c),
            });
        }
        let before = self
            .acct
            .journal()
            .call(move |j| j.external_orders(account))
            .await??;
        for id in &external_open {
            if let Some(e) = statuses.orders.get(id).cloned() {
                let e2 = e.clone();
                self.acct
                    .journal()
                    .call(move |j| j.record_external(account, run_id, &e2))
                    .await??;
                // Only a change is worth a line.
                let was = before
                    .get(id)
                    .map(|b| (b.status.as_deref(), dec(b.filled_quantity.as_deref())));
                let now = (e.status.as_deref(), dec(e.filled_quantity.as_deref()));
                if was == Some(now) {
                    continue;
                }
                r.changes.push(Change {
                    kind: "external_order_status",
                    batch_id: None,
                    order_id: id.clone(),
                    detail: format!(
                        "{} -> {}, filled {}",
                        was.and_then(|w| w.0).unwrap_or("?"),
                        e.status.as_deref().unwrap_or("open"),
                        e.filled_quantity.as_deref().unwrap_or("?")
                    ),
                });
            }
        }

        // 3. Orders placed outside hqx since the last reconcile.
        let mut findings: Vec<Finding> = Vec::new();
        match self.external_orders(&mut r).await? {
            Ok(found) => findings.extend(found),
            Err(why) => r.incomplete.push(why),
        }

        // 4. Balances, then every trade up to now.
        let balances = self.read_balances().await;
        let sync = self.acct.sync_trades().await?;
        r.synced_trades = sync.new_trades;
        r.trade_requests = sync.requests;
        let trades_complete = sync.incomplete.is_none();
        if let Some(why) = sync.incomplete {
            r.incomplete.push(format!(
                "the trade history (the cursor did not move; the next reconcile reads it again): {why}"
            ));
        }

        // 5. Fills: what the exchange reports against the journaled trades.
        if trades_complete {
            findings.extend(self.fill_findings(&statuses.orders).await?);
        }

        // 6. Balances against the trades between two snapshots. A snapshot
        //    that a trade straddles (stamped while the read was under way,
        //    give or take the venue's skew) may or may not hold that trade:
        //    it is journaled, but compared, and compared with, only once no
        //    trade straddles it. The comparison is between the latest two
        //    settled snapshots.
        match balances {
            Ok(((sent_ms, taken_ms), rows)) => {
                let rows2 = rows.clone();
                let id = self
                    .acct
                    .journal()
                    .call(move |j| j.insert_snapshot(account, run_id, (sent_ms, taken_ms), &rows2))
                    .await??;
                r.snapshot_id = Some(id);
                if trades_complete {
                    let skew = self.acct.client().venue().balance_skew_ms as i64;
                    let (from, to) = (sent_ms - skew, taken_ms + skew);
                    let straddling = self
                        .acct
                        .journal()
                        .call(move |j| j.trades_stamped_within(account, from, to))
                        .await??;
                    let prev = self
                        .acct
                        .journal()
                        .call(move |j| j.last_settled_snapshot(account, id, skew))
                        .await??;
                    if straddling > 0 {
                        r.notes.push(format!(
                            "balances were read while {straddling} trade(s) were made; they are compared with the trades at the next reconcile that reads them between trades"
                        ));
                    } else if let Some(prev) = prev {
                        let (after, upto) = (prev.taken_ms, taken_ms);
                        let trades = self
                            .acct
                            .journal()
                            .call(move |j| j.trades_between(account, after, upto))
                            .await??;
                        findings.extend(balance_findings(&prev, id, &rows, &trades));
                    }
                }
            }
            Err(why) => r.incomplete.push(format!(
                "the balances (unknown, not zero: no snapshot was journaled): {why}"
            )),
        }

        // 7. Findings against earlier ones. With an incomplete read, what
        //    was not seen proves nothing: nothing is cleared then.
        let now = now_ms();
        let complete = r.incomplete.is_empty() && r.busy_batches.is_empty();
        let (seen, cleared) = self
            .acct
            .journal()
            .call(move |j| j.record_findings(account, run_id, now, &findings, complete))
            .await??;
        let waiting = self
            .acct
            .journal()
            .call(move |j| j.findings_waiting(account, run_id))
            .await??;
        r.findings = seen;
        r.findings.extend(waiting);
        r.cleared = cleared;
        Ok(self.finish(r))
    }

    /// Counts and the exit code.
    fn finish(&self, mut r: ReconcileReport) -> ReconcileReport {
        r.interrupted = self.acct.stop().is_set();
        r.notes = self.acct.notes();
        r.drift = r
            .findings
            .iter()
            .filter(|f| {
                f.seen.is_drift() || (self.opts.strict && f.seen == crate::journal::Seen::Known)
            })
            .count();
        r.known = r.findings.iter().filter(|f| !f.seen.is_drift()).count();
        r.exit_code = if r.interrupted {
            exit::INTERRUPTED
        } else if !r.incomplete.is_empty() {
            exit::FAILED
        } else if !r.unresolved.is_empty() {
            exit::UNRESOLVED
        } else if r.drift > 0 {
            exit::DRIFT
        } else {
            exit::OK
        };
        r
    }

    /// List the orders created since the cursor, then find those that no
    /// journal order holds or could be. `Err` when the list could not be
    /// read completely (the cursor does not move).
    async fn external_orders(
        &self,
        r: &mut ReconcileReport,
    ) -> Result<Result<Vec<Finding>, String>, JournalError> {
        let account = self.acct.id();
        let run_id = self.acct.run_id();
        let venue = self.acct.client().venue().clone();
        let margin = venue.match_window_ms as i64;
        let cursor = self
            .acct
            .journal()
            .call(move |j| j.cursor(account, "orders", ""))
            .await??;
        let to = now_ms();
        let from = cursor.map(|c| c - margin);
        let listed = match self.acct.list_orders(None, "all", from, Some(to)).await {
            Ok(l) => l,
            Err(e) => return Ok(Err(format!("the account's new orders: {e}"))),
        };
        let Some(listed) = listed.into_iter().collect::<Option<Vec<ExchangeOrder>>>() else {
            return Ok(Err(
                "the account's new orders: an entry without an id; hqx cannot tell whose it is"
                    .into(),
            ));
        };
        // Now, and only now, the journal: every batch of the account, busy
        // ones included (their orders on the way must not be called
        // external).
        let all_batches = self
            .acct
            .journal()
            .call(move |j| j.account_batches(account))
            .await??;
        let journal_orders = self.orders_of(&all_batches).await?;
        let (in_use, known_external) = self
            .acct
            .journal()
            .call(move |j| -> Result<_, JournalError> {
                Ok((j.exchange_ids_in_use(account)?, j.external_orders(account)?))
            })
            .await??;
        let on_the_way: Vec<&OrderRow> = journal_orders
            .iter()
            .filter(|o| matches!(o.state, OrderState::Sending | OrderState::Unknown))
            .collect();
        let by_client_id = venue.client_order_id_field.is_some();
        let mut findings = Vec::new();
        for e in listed {
            if in_use.contains(&e.id) {
                continue;
            }
            let could_be_ours =
                on_the_way
                    .iter()
                    .any(|o| match (&e.client_order_id, by_client_id) {
                        (Some(cid), true) => *cid == client_order_id(&o.batch_id, &o.order_id),
                        _ => fingerprint_matches(o, &e, margin),
                    });
            if could_be_ours {
                continue;
            }
            if !known_external.contains_key(&e.id) {
                let e2 = e.clone();
                if self
                    .acct
                    .journal()
                    .call(move |j| j.record_external(account, run_id, &e2))
                    .await??
                {
                    r.new_external_orders += 1;
                }
            }
            findings.push(Finding {
                kind: "external_order".into(),
                subject: e.id.clone(),
                detail: external_detail(&e),
                fingerprint: e.id.clone(),
            });
        }
        self.acct
            .journal()
            .call(move |j| j.advance_cursor(account, "orders", "", to, run_id, now_ms()))
            .await??;
        // External orders found by earlier reconciles are still external:
        // keep them listed (known), not cleared.
        let listed_now: HashSet<String> = findings.iter().map(|f| f.subject.clone()).collect();
        for (id, e) in known_external {
            if !listed_now.contains(&id) {
                findings.push(Finding {
                    kind: "external_order".into(),
                    subject: id.clone(),
                    detail: external_detail(&e),
                    fingerprint: id,
                });
            }
        }
        Ok(Ok(findings))
    }

    /// The account's balances now: ((when the read was sent, when its
    /// answer came), per currency).
    async fn read_balances(&self) -> Result<((i64, i64), Vec<BalanceRow>), String> {
        let path = self.acct.client().venue().paths.balances.clone();
        let sent_ms = now_ms();
        let v = self.acct.get_json(&path).await?;
        let taken_ms = now_ms();
        parse_balances(&v)
            .map(|rows| ((sent_ms, taken_ms), rows))
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// Orders whose journaled trades do not add up to what the exchange
    /// reports as filled.
    async fn fill_findings(
        &self,
        reported: &HashMap<String, ExchangeOrder>,
    ) -> Result<Vec<Finding>, JournalError> {
        let account = self.acct.id();
        let orders = self.orders_of(&self.batches).await?;
        let quantities = self
            .acct
            .journal()
            .call(move |j| j.trade_quantities(account))
            .await??;
        let mut sums: HashMap<String, Decimal> = HashMap::new();
        let mut unreadable: HashSet<String> = HashSet::new();
        for (id, q) in quantities {
            match dec(q.as_deref()) {
                Some(q) => *sums.entry(id).or_default() += q,
                None => {
                    unreadable.insert(id);
                }
            }
        }
        let mut out = Vec::new();
        for o in &orders {
            let Some(xid) = &o.exchange_order_id else {
                continue;
            };
            // What the exchange reports: read in this reconcile, or as
            // journaled (an order that was final already).
            let filled = reported
                .get(xid)
                .and_then(|e| e.filled_quantity.clone())
                .or_else(|| o.filled_quantity.clone());
            let Some(filled) = dec(filled.as_deref()) else {
                continue;
            };
            let traded = sums.get(xid).copied().unwrap_or_default();
            let subject = format!("{}/{}", o.batch_id, o.order_id);
            if unreadable.contains(xid) {
                out.push(Finding {
                    kind: "unreadable_fills".into(),
                    subject,
                    detail: format!(
                        "a trade of exchange order {xid} has a quantity hqx cannot read"
                    ),
                    fingerprint: xid.clone(),
                });
            } else if traded < filled {
                out.push(Finding {
                    kind: "missing_fills".into(),
                    subject,
                    detail: format!(
                        "exchange order {xid} is filled {} but the journal has trades for {} (missing {})",
                        filled.normalize(),
                        traded.normalize(),
                        (filled - traded).normalize()
                    ),
                    fingerprint: format!("{}/{}", filled.normalize(), traded.normalize()),
                });
            } else if dec(Some(&o.quantity)).is_some_and(|q| traded > q) {
                out.push(Finding {
                    kind: "excess_fills".into(),
                    subject,
                    detail: format!(
                        "exchange order {xid} is for {} but the journal has trades for {}",
                        o.quantity,
                        traded.normalize()
                    ),
                    fingerprint: format!("{}/{}", o.quantity, traded.normalize()),
                });
            }
        }
        Ok(out)
    }
}

/// What an external order's finding says: the order as the exchange
/// showed it last.
fn external_detail(e: &ExchangeOrder) -> String {
    format!(
        "{} {} {} {}{} ({}), placed outside this journal",
        e.side.as_deref().unwrap_or("?"),
        e.quantity.as_deref().unwrap_or("?"),
        e.pair.as_deref().unwrap_or("?"),
        e.kind.as_deref().unwrap_or("?"),
        e.price
            .as_deref()
            .map(|p| format!(" @ {p}"))
            .unwrap_or_default(),
        e.status.as_deref().unwrap_or("open"),
    )
}

fn change(kind: &'static str, o: &OrderRow, detail: String) -> Change {
    Change {
        kind,
        batch_id: Some(o.batch_id.clone()),
        order_id: o.order_id.clone(),
        detail,
    }
}

fn status_detail(c: &StateChange) -> String {
    format!(
        "{} -> {}{}",
        c.from.map(|s| s.as_str()).unwrap_or("?"),
        c.to.map(|s| s.as_str()).unwrap_or("?"),
        c.filled_quantity
            .as_deref()
            .map(|f| format!(", filled {f}"))
            .unwrap_or_default()
    )
}

/// Read a balances answer: a list of `{currency, available, locked}`
/// (read leniently: `asset`, `free`, `hold`, ...). Every entry must be
/// readable: a balance hqx cannot read is unknown, never zero.
pub fn parse_balances(v: &Value) -> Result<Vec<BalanceRow>, String> {
    let list = list_of(v).ok_or("the answer is not a balance list hqx can read")?;
    let mut out = Vec::new();
    for e in list {
        let currency = text_of(field(e, &["currency", "asset", "coin"]))
            .ok_or("a balance entry without a currency")?;
        let num = |keys: &[&str]| -> Result<Decimal, String> {
            let t = text_of(field(e, keys)).unwrap_or_else(|| "0".into());
            t.parse::<Decimal>()
                .map_err(|_| format!("{currency}: `{t}` is not a decimal"))
        };
        let available = num(&["available", "free"])?;
        let locked = num(&["locked", "hold", "frozen"])?;
        let total = available
            .checked_add(locked)
            .ok_or_else(|| format!("{currency}: total too large"))?;
        out.push(BalanceRow {
            currency,
            available: available.normalize().to_string(),
            locked: locked.normalize().to_string(),
            total: total.normalize().to_string(),
        });
    }
    Ok(out)
}

/// How trades move balances: per currency, the sum of what they add
/// (bought base, sold-for quote) less what they take (paid quote, sold
/// base, fees). `Err` names a trade hqx cannot read (a fee that is there
/// but is not a decimal included).
pub fn trade_effects(trades: &[TradeRow]) -> Result<BTreeMap<String, Decimal>, String> {
    let mut fx: BTreeMap<String, Decimal> = BTreeMap::new();
    for t in trades {
        let bad = || format!("trade {} cannot be read for balances", t.trade_id);
        let pair = t.pair.as_deref().ok_or_else(bad)?;
        let (base, quote) = pair.split_once('-').ok_or_else(bad)?;
        let qty = dec(t.quantity.as_deref()).ok_or_else(bad)?;
        let price = dec(t.price.as_deref()).ok_or_else(bad)?;
        let notional = qty.checked_mul(price).ok_or_else(bad)?;
        let (b, q) = match t.side.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("buy") => (qty, -notional),
            Some("sell") => (-qty, notional),
            _ => return Err(bad()),
        };
        *fx.entry(base.to_string()).or_default() += b;
        *fx.entry(quote.to_string()).or_default() += q;
        // A trade without a fee paid none; a fee that is there but cannot
        // be read is never taken for zero.
        let fee = match t.fee.as_deref() {
            None => None,
            Some(f) => Some(dec(Some(f)).ok_or_else(bad)?),
        };
        if let Some(fee) = fee {
            if !fee.is_zero() {
                let cur = t.fee_currency.clone().unwrap_or_else(|| quote.to_string());
                *fx.entry(cur).or_default() -= fee;
            }
        }
    }
    Ok(fx)
}

/// Per currency: the change of the total since the previous snapshot
/// against what the trades between them explain.
pub fn balance_findings(
    prev: &Snapshot,
    now_id: i64,
    now: &[BalanceRow],
    trades: &[TradeRow],
) -> Vec<Finding> {
    let fx = match trade_effects(trades) {
        Ok(fx) => fx,
        Err(why) => {
            return vec![Finding {
                kind: "unreadable_trade".into(),
                subject: format!("snapshots {}..{now_id}", prev.id),
                detail: why.clone(),
                fingerprint: why,
            }]
        }
    };
    let total = |rows: &[BalanceRow], c: &str| {
        rows.iter()
            .find(|b| b.currency == c)
            .and_then(|b| dec(Some(&b.total)))
            .unwrap_or_default()
    };
    let mut currencies: Vec<String> = prev
        .balances
        .iter()
        .map(|b| b.currency.clone())
        .chain(now.iter().map(|b| b.currency.clone()))
        .chain(fx.keys().cloned())
        .collect();
    currencies.sort();
    currencies.dedup();
    let mut out = Vec::new();
    for c in currencies {
        let (before, after) = (total(&prev.balances, &c), total(now, &c));
        let changed = after - before;
        let explained = fx.get(&c).copied().unwrap_or_default();
        if changed != explained {
            let unexplained = changed - explained;
            out.push(Finding {
                kind: "unexplained_balance".into(),
                subject: format!("{c} snapshots {}..{now_id}", prev.id),
                detail: format!(
                    "{c} total went from {} to {} ({:+}); trades explain {:+}; unexplained {:+} (a deposit, a withdrawal, or trading the journal did not see)",
                    before.normalize(),
                    after.normalize(),
                    changed.normalize(),
                    explained.normalize(),
                    unexplained.normalize()
                ),
                fingerprint: unexplained.normalize().to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(side: &str, qty: &str, price: &str, fee: &str) -> TradeRow {
        TradeRow {
            trade_id: format!("T{side}{qty}"),
            pair: Some("BTC-USDC".into()),
            side: Some(side.into()),
            quantity: Some(qty.into()),
            price: Some(price.into()),
            fee: Some(fee.into()),
            fee_currency: Some("USDC".into()),
            raw: "{}".into(),
            ..Default::default()
        }
    }

    fn bal(c: &str, total: &str) -> BalanceRow {
        BalanceRow {
            currency: c.into(),
            available: total.into(),
            locked: "0".into(),
            total: total.into(),
        }
    }

    #[test]
    fn trades_explain_balance_changes_exactly() {
        let fx = trade_effects(&[
            trade("buy", "0.25", "24012", "6.003"),
            trade("sell", "0.1", "26000", "2.6"),
        ])
        .unwrap();
        assert_eq!(fx["BTC"], "0.15".parse::<Decimal>().unwrap());
        // -6003 - 6.003 + 2600 - 2.6
        assert_eq!(fx["USDC"], "-3411.603".parse::<Decimal>().unwrap());
        let prev = Snapshot {
            id: 1,
            taken_ms: 0,
            balances: vec![bal("BTC", "1000"), bal("USDC", "10000000")],
        };
        let trades = [trade("buy", "0.25", "24012", "6.003")];
        let now = [bal("BTC", "1000.25"), bal("USDC", "9993990.997")];
        assert!(balance_findings(&prev, 2, &now, &trades).is_empty());
        // A deposit of 1000 USDC is not explained by any trade.
        let now = [bal("BTC", "1000.25"), bal("USDC", "9994990.997")];
        let f = balance_findings(&prev, 2, &now, &trades);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "USDC snapshots 1..2");
        assert_eq!(f[0].fingerprint, "1000");
        assert!(f[0].detail.contains("unexplained +1000"), "{}", f[0].detail);
    }

    #[test]
    fn a_trade_between_snapshots_that_cannot_be_read_is_a_finding_not_zero() {
        let prev = Snapshot {
            id: 1,
            taken_ms: 0,
            balances: vec![bal("USDC", "100")],
        };
        let now = [bal("USDC", "100")];
        let f = balance_findings(&prev, 2, &now, &[trade("buy", "1", "10", "1.5x")]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, "unreadable_trade");
        assert_eq!(f[0].subject, "snapshots 1..2");
    }

    #[test]
    fn a_balance_hqx_cannot_read_is_an_error_never_zero() {
        let v = serde_json::json!({"balances": [{"currency": "USDC", "available": "x1", "locked": "0"}]});
        assert!(parse_balances(&v).is_err());
        let v = serde_json::json!({"balances": [{"available": "1"}]});
        assert!(parse_balances(&v).is_err());
        let v = serde_json::json!({"balances": [{"currency": "BTC", "available": "1.50", "locked": "0.5"}]});
        let b = parse_balances(&v).unwrap();
        assert_eq!(b[0].total, "2");
        assert_eq!(b[0].available, "1.5");
    }
}
