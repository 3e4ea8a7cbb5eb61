//! The figures behind the `positions` and `position_fees` views: kept by
//! hqx in `position_figures` and `position_fee_figures`, computed with
//! rust_decimal by [`crate::positions`].
//!
//! They change in the same transaction that journals trades
//! ([`apply_new`], called from `insert_trades`, the one place trades are
//! written, by `run` and `reconcile` alike), so a reader never sees
//! trades without their figures. Only trades new to the journal count (a
//! trade read again is not new). Average cost depends on order: trades
//! apply in `(traded_ms, trade_id)` order, and a trade that lands before
//! the last one applied to its pair (a late trade, an overlap re-read that
//! finds one more) makes hqx recompute that pair from its trades.
//! [`rebuild`] recomputes every pair (`hqx journal rebuild`, and the
//! upgrade to schema 4).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{sqlite_err, Result, TradeRow};
use crate::positions::{Figures, Position, Read, Trade};
use crate::sql_functions::Dec;

/// The trades of one pair of one account as the journal held them after
/// hqx last journaled trades of that pair on this connection, in the order
/// the figures apply them: so that a late trade (every page after the
/// first of a trade list read newest first) is applied by replaying them
/// from memory rather than reading the whole pair back from SQLite again.
///
/// It is used only when it is known to still be the pair's trades: no
/// other connection has committed since (SQLite's `data_version`), and the
/// figures the journal holds count as many trades (a transaction of this
/// connection that added trades and was rolled back leaves fewer).
#[derive(Debug, Default)]
pub(super) struct Memo {
    account_id: i64,
    pair: String,
    data_version: i64,
    /// Each with its figures read from its text.
    trades: Vec<(Trade, Read)>,
}

/// The most trades a [`Memo`] keeps (a larger pair is read from SQLite,
/// row by row, every time): about 25 MB. The unit tests' pairs are small:
/// there a handful, so that they go both ways.
const MEMO_MAX: usize = if cfg!(test) { 4 } else { 100_000 };

/// The order the figures apply trades in (SQLite's `ORDER BY traded_ms,
/// trade_id`: a missing time first, ids byte by byte).
fn by_key((a, _): &(Trade, Read), (b, _): &(Trade, Read)) -> std::cmp::Ordering {
    (a.traded_ms, &a.trade_id).cmp(&(b.traded_ms, &b.trade_id))
}

/// Update the figures for trades just inserted (new to the journal) for
/// one account, inside the caller's transaction.
pub(super) fn apply_new(
    conn: &Connection,
    path: &Path,
    account_id: i64,
    new: &[&TradeRow],
    memo: &mut Option<Memo>,
) -> Result<()> {
    let err = |e| sqlite_err(path, e);
    let mut by_pair: BTreeMap<&str, Vec<(Trade, Read)>> = BTreeMap::new();
    for t in new {
        // A trade without a pair belongs to no position.
        if let Some(pair) = t.pair.as_deref() {
            let t = Trade {
                trade_id: t.trade_id.clone(),
                traded_ms: t.traded_ms,
                side: t.side.clone(),
                price: t.price.clone(),
                quantity: t.quantity.clone(),
                fee: t.fee.clone(),
                fee_currency: t.fee_currency.clone(),
            };
            let r = t.read();
            by_pair.entry(pair).or_default().push((t, r));
        }
    }
    if by_pair.is_empty() {
        return Ok(());
    }
    let data_version: i64 = conn
        .pragma_query_value(None, "data_version", |r| r.get(0))
        .map_err(err)?;
    for (pair, mut trades) in by_pair {
        trades.sort_by(by_key);
        // The pair's trades before these, if the memo still holds them.
        let mut held = match memo.take() {
            Some(m)
                if m.account_id == account_id
                    && m.pair == pair
                    && m.data_version == data_version
                    && stored_count(conn, path, account_id, pair)?
                        == Some(m.trades.len() as i64) =>
            {
                Some(m.trades)
            }
            _ => None,
        };
        match load(conn, path, account_id, pair)? {
            Some(mut pos) if pos.last.as_ref() < Some(&trades[0].0.key()) => {
                for (t, r) in &trades {
                    pos.apply_read(t, r);
                }
                store(conn, path, account_id, pair, &pos)?;
                if let Some(h) = &mut held {
                    h.extend(trades);
                }
            }
            // A new pair, or a trade earlier than the last one applied:
            // every trade of the pair again, in order.
            _ => {
                let all = match held {
                    Some(mut h) => {
                        h.extend(trades);
                        h.sort_by(by_key);
                        Some(h)
                    }
                    // Read into memory only a pair the memo may keep; a
                    // larger one is folded row by row, as it is read.
                    None => {
                        let before = stored_count(conn, path, account_id, pair)?.unwrap_or(0);
                        if before as usize + trades.len() <= MEMO_MAX {
                            Some(pair_trades(conn, path, account_id, pair)?)
                        } else {
                            recompute(conn, path, account_id, pair)?;
                            None
                        }
                    }
                };
                if let Some(all) = &all {
                    let mut pos = Position::new();
                    for (t, r) in all {
                        pos.apply_read(t, r);
                    }
                    store(conn, path, account_id, pair, &pos)?;
                }
                held = all;
            }
        }
        *memo = held.filter(|h| h.len() <= MEMO_MAX).map(|trades| Memo {
            account_id,
            pair: pair.to_string(),
            data_version,
            trades,
        });
    }
    Ok(())
}

/// How many trades the journal's figures of a pair count, if it has any.
fn stored_count(
    conn: &Connection,
    path: &Path,
    account_id: i64,
    pair: &str,
) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT trades FROM position_figures WHERE account_id = ?1 AND pair = ?2")
        .map_err(|e| sqlite_err(path, e))?
        .query_row(params![account_id, pair], |r| r.get(0))
        .optional()
        .map_err(|e| sqlite_err(path, e))
}

/// Recompute one pair of one account from its journaled trades, read
/// one at a time.
fn recompute(conn: &Connection, path: &Path, account_id: i64, pair: &str) -> Result<()> {
    let err = |e| sqlite_err(path, e);
    let mut st = conn.prepare_cached(PAIR_TRADES).map_err(err)?;
    let mut rows = st.query(params![account_id, pair]).map_err(err)?;
    let mut pos = Position::new();
    while let Some(r) = rows.next().map_err(err)? {
        pos.apply(&trade(r).map_err(err)?);
    }
    store(conn, path, account_id, pair, &pos)
}

/// A pair's trades in the order the figures apply them.
const PAIR_TRADES: &str =
    "SELECT trade_id, traded_ms, side, price, quantity, fee, fee_currency FROM trades
     WHERE account_id = ?1 AND pair = ?2 ORDER BY traded_ms, trade_id";

/// Every journaled trade of one pair of one account, in the order the
/// figures apply them.
fn pair_trades(
    conn: &Connection,
    path: &Path,
    account_id: i64,
    pair: &str,
) -> Result<Vec<(Trade, Read)>> {
    let err = |e| sqlite_err(path, e);
    let mut st = conn.prepare_cached(PAIR_TRADES).map_err(err)?;
    let rows = st
        .query_map(params![account_id, pair], |r| {
            let t = trade(r)?;
            let read = t.read();
            Ok((t, read))
        })
        .map_err(err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(err)?;
    Ok(rows)
}

pub(super) fn rebuild(conn: &Connection, path: &Path) -> Result<(usize, i64)> {
    let err = |e| sqlite_err(path, e);
    conn.execute_batch("DELETE FROM position_fee_figures; DELETE FROM position_figures;")
        .map_err(err)?;
    let mut st = conn
        .prepare(
            "SELECT trade_id, traded_ms, side, price, quantity, fee, fee_currency, account_id, pair
             FROM trades WHERE pair IS NOT NULL ORDER BY account_id, pair, traded_ms, trade_id",
        )
        .map_err(err)?;
    let mut rows = st.query([]).map_err(err)?;
    let mut current: Option<(i64, String, Position)> = None;
    let (mut positions, mut trades) = (0, 0);
    while let Some(r) = rows.next().map_err(err)? {
        let account_id: i64 = r.get(7).map_err(err)?;
        let pair: String = r.get(8).map_err(err)?;
        let t = trade(r).map_err(err)?;
        match &mut current {
            Some((a, p, pos)) if *a == account_id && *p == pair => pos.apply(&t),
            _ => {
                if let Some((a, p, pos)) = current.take() {
                    store(conn, path, a, &p, &pos)?;
                    positions += 1;
                }
                let mut pos = Position::new();
                pos.apply(&t);
                current = Some((account_id, pair, pos));
            }
        }
        trades += 1;
    }
    if let Some((a, p, pos)) = current {
        store(conn, path, a, &p, &pos)?;
        positions += 1;
    }
    Ok((positions, trades))
}

fn trade(r: &rusqlite::Row<'_>) -> rusqlite::Result<Trade> {
    Ok(Trade {
        trade_id: r.get(0)?,
        traded_ms: r.get(1)?,
        side: r.get(2)?,
        price: r.get(3)?,
        quantity: r.get(4)?,
        fee: r.get(5)?,
        fee_currency: r.get(6)?,
    })
}

/// The stored position of a pair, to continue from; `None` if there is
/// none (or its stored text no longer reads, which a recompute mends).
fn load(conn: &Connection, path: &Path, account_id: i64, pair: &str) -> Result<Option<Position>> {
    let err = |e| sqlite_err(path, e);
    type Row = (
        i64,
        [Option<String>; 7],
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT trades, bought, sold, net_quantity, open_cost, realized_pnl, bought_value,
                    sold_value, first_traded_ms, last_traded_ms, last_trade_id, problem
             FROM position_figures WHERE account_id = ?1 AND pair = ?2",
        )
        .map_err(err)?
        .query_row(params![account_id, pair], |r| {
            Ok((
                r.get(0)?,
                [
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ],
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        })
        .optional()
        .map_err(err)?;
    let Some((trades, texts, first, last_ms, last_id, problem)) = row else {
        return Ok(None);
    };
    let Some(last_id) = last_id else {
        return Ok(None);
    };
    let figures = match problem {
        Some(p) => Err(p),
        None => {
            let mut d = Vec::with_capacity(7);
            for t in &texts {
                match t.as_deref().map(Dec::parse) {
                    Some(Ok(v)) => d.push(v),
                    _ => return Ok(None),
                }
            }
            Ok(Figures {
                bought: d[0],
                sold: d[1],
                net_quantity: d[2],
                open_cost: d[3],
                realized_pnl: d[4],
                bought_value: d[5],
                sold_value: d[6],
            })
        }
    };
    let mut fees = BTreeMap::new();
    let mut st = conn
        .prepare_cached(
            "SELECT fee_currency, fills, fees FROM position_fee_figures
             WHERE account_id = ?1 AND pair = ?2",
        )
        .map_err(err)?;
    let mut rows = st.query(params![account_id, pair]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let text: String = r.get(2).map_err(err)?;
        let Ok(v) = Dec::parse(&text) else {
            return Ok(None);
        };
        fees.insert(r.get(0).map_err(err)?, (r.get(1).map_err(err)?, v));
    }
    Ok(Some(Position {
        trades,
        figures,
        fees,
        first_traded_ms: first,
        last: Some((last_ms, last_id)),
    }))
}

/// Write a pair's position (replacing what was there).
fn store(
    conn: &Connection,
    path: &Path,
    account_id: i64,
    pair: &str,
    pos: &Position,
) -> Result<()> {
    let err = |e| sqlite_err(path, e);
    let text = |d: &Dec| Some(d.to_string());
    let (f, problem) = match &pos.figures {
        Ok(f) => (Some(f), None),
        Err(p) => (None, Some(p.as_str())),
    };
    let quote = pair.split_once('-').map(|(_, q)| q);
    let fees_quote = f.map(|_| {
        quote
            .and_then(|q| pos.fees.get(q))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "0".into())
    });
    let fees_json = f.map(|_| {
        let m: serde_json::Map<String, serde_json::Value> = pos
            .fees
            .iter()
            .map(|(c, (_, d))| (c.clone(), d.to_string().into()))
            .collect();
        serde_json::Value::Object(m).to_string()
    });
    let (last_ms, last_id) = match &pos.last {
        Some((ms, id)) => (*ms, Some(id.as_str())),
        None => (None, None),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO position_figures (account_id, pair, trades, bought, sold,
            net_quantity, average_cost, open_cost, realized_pnl, bought_value, sold_value,
            fees_quote, fees, first_traded_ms, last_traded_ms, last_trade_id, problem, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )
    .map_err(err)?
    .execute(params![
        account_id,
        pair,
        pos.trades,
        f.and_then(|f| text(&f.bought)),
        f.and_then(|f| text(&f.sold)),
        f.and_then(|f| text(&f.net_quantity)),
        f.and_then(|f| f.average_cost()).map(|d| d.to_string()),
        f.and_then(|f| text(&f.open_cost)),
        f.and_then(|f| text(&f.realized_pnl)),
        f.and_then(|f| text(&f.bought_value)),
        f.and_then(|f| text(&f.sold_value)),
        fees_quote,
        fees_json,
        pos.first_traded_ms,
        last_ms,
        last_id,
        problem,
        crate::client::now_ms(),
    ])
    .map_err(err)?;
    conn.prepare_cached("DELETE FROM position_fee_figures WHERE account_id = ?1 AND pair = ?2")
        .map_err(err)?
        .execute(params![account_id, pair])
        .map_err(err)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO position_fee_figures (account_id, pair, fee_currency, fills, fees)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(err)?;
    for (currency, (fills, fees)) in &pos.fees {
        ins.execute(params![account_id, pair, currency, fills, fees.to_string()])
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The stored figures against a straightforward computation: sort the
    //! distinct trades, fold them with plain rust_decimal. The journal
    //! gets them in random order, in random chunks, with duplicates.

    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rust_decimal::prelude::Signed;
    use rust_decimal::{Decimal, RoundingStrategy};

    use crate::journal::{Journal, TradeRow};

    const PAIRS: [&str; 2] = ["BTC-USDC", "ETH-USDC"];
    const PRICES: [&str; 5] = ["100", "101.5", "99.25", "0.3", "1000.01"];
    const QTYS: [&str; 5] = ["1", "0.5", "3", "0.1", "2.25"];

    #[derive(Debug, Clone)]
    struct T {
        id: usize,
        pair: usize,
        buy: bool,
        price: usize,
        qty: usize,
        ms: i64,
    }

    fn row(t: &T) -> TradeRow {
        TradeRow {
            trade_id: format!("T{:03}", t.id),
            exchange_order_id: None,
            pair: Some(PAIRS[t.pair].into()),
            side: Some(if t.buy { "buy" } else { "sell" }.into()),
            price: Some(PRICES[t.price].into()),
            quantity: Some(QTYS[t.qty].into()),
            fee: Some("0.1".into()),
            fee_currency: Some("USDC".into()),
            traded_ms: Some(t.ms),
            raw: "{}".into(),
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn round(x: Decimal) -> Decimal {
        x.round_dp_with_strategy(12, RoundingStrategy::MidpointNearestEven)
    }

    /// (trades, bought, sold, net, average cost, realized, fees), by pair.
    type Expected = (
        i64,
        Decimal,
        Decimal,
        Decimal,
        Option<Decimal>,
        Decimal,
        Decimal,
    );

    fn straightforward(trades: &[T]) -> BTreeMap<String, Expected> {
        let mut sorted: Vec<&T> = trades.iter().collect();
        sorted.sort_by_key(|t| (t.ms, format!("T{:03}", t.id)));
        let mut out = BTreeMap::new();
        for (i, pair) in PAIRS.iter().enumerate() {
            let (mut n, mut bought, mut sold, mut q, mut cost, mut pnl, mut fees) = (
                0,
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
            );
            for t in sorted.iter().filter(|t| t.pair == i) {
                let (p, x) = (d(PRICES[t.price]), d(QTYS[t.qty]));
                let s = if t.buy { Decimal::ONE } else { -Decimal::ONE };
                n += 1;
                fees += d("0.1");
                if t.buy {
                    bought += x;
                } else {
                    sold += x;
                }
                if q.is_zero() || q.signum() == s {
                    cost += p * x;
                } else {
                    let held = q.abs();
                    let m = x.min(held);
                    let released = if m == held {
                        cost
                    } else {
                        round(cost * m / held)
                    };
                    pnl += q.signum() * (p * m - released);
                    cost -= released;
                    if x > held {
                        cost = p * (x - held);
                    }
                }
                q += s * x;
            }
            if n > 0 {
                let avg = (!q.is_zero()).then(|| round(cost / q.abs()));
                out.insert(pair.to_string(), (n, bought, sold, q, avg, pnl, fees));
            }
        }
        out
    }

    fn stored(j: &Journal) -> BTreeMap<String, Expected> {
        let mut st = j
            .conn
            .prepare(
                "SELECT pair, trades, bought, sold, net_quantity, average_cost, realized_pnl, fees_quote
                 FROM positions WHERE account_id = 1",
            )
            .unwrap();
        st.query_map([], |r| {
            let s = |i: usize| -> rusqlite::Result<Decimal> { Ok(d(&r.get::<_, String>(i)?)) };
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get(1)?,
                    s(2)?,
                    s(3)?,
                    s(4)?,
                    r.get::<_, Option<String>>(5)?.map(|a| d(&a)),
                    s(6)?,
                    s(7)?,
                ),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn trades() -> impl Strategy<Value = Vec<T>> {
        prop::collection::vec(
            (0..2usize, any::<bool>(), 0..5usize, 0..5usize, 0..8i64),
            1..30,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(id, (pair, buy, price, qty, ms))| T {
                    id,
                    pair,
                    buy,
                    price,
                    qty,
                    ms,
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn stored_figures_equal_a_straightforward_fold(
            trades in trades(),
            order in any::<prop::sample::Index>(),
            chunks in prop::collection::vec(1..6usize, 1..12),
            dups in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            // Arrival: a rotation of the trades (out of time order), plus
            // duplicates of some, in chunks of random sizes.
            let mut arrival: Vec<&T> = trades.iter().collect();
            arrival.rotate_left(order.index(trades.len()));
            for i in &dups {
                arrival.push(i.get(&trades));
            }
            let dir = tempfile::tempdir().unwrap();
            let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
            j.conn.execute_batch(
                "INSERT INTO accounts (id, base_url, api_key, created_ms) VALUES (1, 'u', 'k', 1)"
            ).unwrap();
            let mut rest: &[&T] = &arrival;
            let mut k = 0;
            let mut new = 0;
            while !rest.is_empty() {
                let n = chunks[k % chunks.len()].min(rest.len());
                let rows: Vec<TradeRow> = rest[..n].iter().map(|t| row(t)).collect();
                new += j.insert_trades(1, 1, &rows).unwrap();
                rest = &rest[n..];
                k += 1;
            }
            prop_assert_eq!(new, trades.len());
            let want = straightforward(&trades);
            prop_assert_eq!(stored(&j), want.clone());
            // And a rebuild from the trades gives the same.
            j.rebuild_figures().unwrap();
            prop_assert_eq!(stored(&j), want);
        }
    }
}
