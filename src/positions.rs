//! Positions and realized PnL by the average-cost method, exact.
//!
//! The `positions` view shows figures that plain SQL cannot compute
//! exactly (sums of decimal text, an average cost, PnL), so hqx computes
//! them here, with rust_decimal, and the journal stores them next to the
//! trades (see `journal::figures`). This module is pure: it folds one
//! account's trades on one pair, in `(traded_ms, trade_id)` order, into a
//! [`Position`]. The method, as README.md documents it:
//!
//! - The position is signed: `net_quantity = bought - sold`; below zero
//!   is short. `open_cost` is what the open position cost, in the quote
//!   currency (always >= 0), and `average_cost = open_cost / |net_quantity|`.
//! - A trade on the side of the position (or from flat) adds to it:
//!   `open_cost += price × quantity`.
//! - A trade against it closes `quantity` of it. Closing all of it
//!   releases all of `open_cost`; closing part releases
//!   `open_cost × quantity / |net_quantity|`, rounded half to even to
//!   [`COST_DP`] digits after the point (the one rounding in the method).
//!   A long position realizes `price × quantity - released`, a short one
//!   `released - price × quantity`.
//! - A trade larger than the position closes it whole and opens the rest
//!   on the other side at the trade's price.
//! - Fees are not in the PnL: they are summed per currency apart.
//!
//! Every sum and product is exact (an operation rust_decimal cannot hold
//! exactly makes the position a "problem" rather than a rounded number),
//! and the text of a sum follows `decimal_sum` (the most digits after the
//! point of its terms), so `bought` is the same text as
//! `decimal_sum(quantity)` over the pair's buys.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::sql_functions::Dec;

/// Digits after the point kept when part of a position's cost is
/// released, and of the average cost shown.
pub const COST_DP: u32 = 12;

/// One trade as the journal holds it (text as the exchange sent it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// The exchange's trade id.
    pub trade_id: String,
    /// The exchange's time (ms).
    pub traded_ms: Option<i64>,
    /// `buy` or `sell`.
    pub side: Option<String>,
    /// Price text.
    pub price: Option<String>,
    /// Quantity text.
    pub quantity: Option<String>,
    /// Fee text.
    pub fee: Option<String>,
    /// Fee currency.
    pub fee_currency: Option<String>,
}

/// Where a trade stands in the order the figures apply trades: by time,
/// then trade id (a missing time first, as SQLite orders NULL).
pub type Key = (Option<i64>, String);

impl Trade {
    /// Its place in the order of application.
    pub fn key(&self) -> Key {
        (self.traded_ms, self.trade_id.clone())
    }

    /// Its side, price, quantity and fee read from their text, or why each
    /// cannot be: what [`Position::apply_read`] needs, read once for a
    /// trade applied many times (a pair recomputed page after page).
    pub fn read(&self) -> Read {
        let side = match self.side.as_deref() {
            Some("buy") => Ok(true),
            Some("sell") => Ok(false),
            other => Err(format!("side {other:?} is neither buy nor sell")),
        };
        let read = |what: &str, v: &Option<String>| -> Result<Dec, String> {
            let v = v.as_deref().ok_or_else(|| format!("no {what}"))?;
            Dec::parse(v).map_err(|e| format!("{what}: {e}"))
        };
        Read {
            buy: side,
            price: read("price", &self.price),
            quantity: read("quantity", &self.quantity),
            fee: self
                .fee
                .as_deref()
                .map(|fee| Dec::parse(fee).map_err(|e| format!("fee: {e}"))),
        }
    }
}

/// A trade's side, price, quantity and fee as [`Trade::read`] read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    buy: Result<bool, String>,
    price: Result<Dec, String>,
    quantity: Result<Dec, String>,
    fee: Option<Result<Dec, String>>,
}

/// The exact figures of a position (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Sum of bought quantities.
    pub bought: Dec,
    /// Sum of sold quantities.
    pub sold: Dec,
    /// `bought - sold`.
    pub net_quantity: Dec,
    /// What the open position cost (quote currency), >= 0.
    pub open_cost: Dec,
    /// Realized PnL (quote currency), fees apart.
    pub realized_pnl: Dec,
    /// Sum of price × quantity of buys.
    pub bought_value: Dec,
    /// Sum of price × quantity of sells.
    pub sold_value: Dec,
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            bought: Dec::ZERO,
            sold: Dec::ZERO,
            net_quantity: Dec::ZERO,
            open_cost: Dec::ZERO,
            realized_pnl: Dec::ZERO,
            bought_value: Dec::ZERO,
            sold_value: Dec::ZERO,
        }
    }
}

impl Figures {
    /// `open_cost / |net_quantity|`, rounded half to even to [`COST_DP`]
    /// digits; `None` when flat.
    pub fn average_cost(&self) -> Option<Dec> {
        let held = self.net_quantity.value().abs();
        if held.is_zero() {
            return None;
        }
        self.open_cost
            .value()
            .checked_div(held)
            .map(|c| Dec::from_value(round(c)))
    }
}

/// One account's position on one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Trades applied.
    pub trades: i64,
    /// The figures, or why there are none (a trade hqx cannot read, or a
    /// result rust_decimal cannot hold exactly).
    pub figures: Result<Figures, String>,
    /// Per fee currency ('' when none was named): fills and fees.
    pub fees: BTreeMap<String, (i64, Dec)>,
    /// The time of the first trade that had one.
    pub first_traded_ms: Option<i64>,
    /// The last trade applied.
    pub last: Option<Key>,
}

fn round(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(COST_DP, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

impl Default for Position {
    fn default() -> Self {
        Position::new()
    }
}

impl Position {
    /// A position with no trades.
    pub fn new() -> Position {
        Position {
            trades: 0,
            figures: Ok(Figures::default()),
            fees: BTreeMap::new(),
            first_traded_ms: None,
            last: None,
        }
    }

    /// Apply the next trade (the caller keeps the order). Once a trade
    /// cannot be applied, the figures stay a problem; trades are still
    /// counted.
    pub fn apply(&mut self, t: &Trade) {
        self.apply_read(t, &t.read());
    }

    /// [`Position::apply`], with the trade already read (`read` is
    /// `t.read()`).
    pub fn apply_read(&mut self, t: &Trade, read: &Read) {
        self.trades += 1;
        if self.first_traded_ms.is_none() {
            self.first_traded_ms = t.traded_ms;
        }
        self.last = Some(t.key());
        let Ok(f) = &mut self.figures else {
            return;
        };
        let r = apply_figures(f, read).and_then(|()| {
            if let Some(fee) = &read.fee {
                let fee = fee.clone()?;
                let slot = self
                    .fees
                    .entry(t.fee_currency.clone().unwrap_or_default())
                    .or_insert((0, Dec::ZERO));
                slot.0 += 1;
                slot.1 = slot.1.add(&fee).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        if let Err(why) = r {
            self.figures = Err(format!("trade {}: {why}", t.trade_id));
            self.fees.clear();
        }
    }
}

fn apply_figures(f: &mut Figures, t: &Read) -> Result<(), String> {
    let buy = t.buy.clone()?;
    let price = t.price.clone()?;
    let qty = t.quantity.clone()?;
    if price.is_negative() || qty.is_negative() || qty.is_zero() {
        return Err(format!(
            "price {price} and quantity {qty}: a trade needs a quantity above zero and a price not below"
        ));
    }
    let e = |e: crate::sql_functions::DecimalError| e.to_string();
    let value = price.mul(&qty).map_err(e)?;
    let held = f.net_quantity.value().abs();
    let long = !f.net_quantity.is_negative();
    if held.is_zero() || long == buy {
        f.open_cost = f.open_cost.add(&value).map_err(e)?;
    } else if qty.value() <= held {
        let released = if qty.value() == held {
            f.open_cost
        } else {
            let r = f
                .open_cost
                .value()
                .checked_mul(qty.value())
                .and_then(|c| c.checked_div(held))
                .ok_or("the released cost is out of rust_decimal's range")?;
            Dec::from_value(round(r))
        };
        let pnl = if long {
            value.sub(&released)
        } else {
            released.sub(&value)
        }
        .map_err(e)?;
        f.realized_pnl = f.realized_pnl.add(&pnl).map_err(e)?;
        f.open_cost = if qty.value() == held {
            Dec::ZERO
        } else {
            f.open_cost.sub(&released).map_err(e)?
        };
    } else {
        let held = Dec::from_value(held);
        let closing = price.mul(&held).map_err(e)?;
        let pnl = if long {
            closing.sub(&f.open_cost)
        } else {
            f.open_cost.sub(&closing)
        }
        .map_err(e)?;
        f.realized_pnl = f.realized_pnl.add(&pnl).map_err(e)?;
        f.open_cost = price.mul(&qty.sub(&held).map_err(e)?).map_err(e)?;
    }
    if buy {
        f.bought = f.bought.add(&qty).map_err(e)?;
        f.bought_value = f.bought_value.add(&value).map_err(e)?;
    } else {
        f.sold = f.sold.add(&qty).map_err(e)?;
        f.sold_value = f.sold_value.add(&value).map_err(e)?;
    }
    f.net_quantity = f.bought.sub(&f.sold).map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, side: &str, price: &str, qty: &str) -> Trade {
        Trade {
            trade_id: id.into(),
            traded_ms: Some(1),
            side: Some(side.into()),
            price: Some(price.into()),
            quantity: Some(qty.into()),
            fee: Some("0.5".into()),
            fee_currency: Some("USDC".into()),
        }
    }

    #[test]
    fn a_partial_close_releases_its_share_of_the_cost_rounded_to_12_places() {
        let mut p = Position::new();
        p.apply(&t("1", "buy", "10", "1"));
        p.apply(&t("2", "buy", "11", "2"));
        p.apply(&t("3", "sell", "12", "1"));
        let f = p.figures.as_ref().unwrap();
        // 32 × 1 / 3 = 10.666666666667 released; 12 − that realized.
        assert_eq!(f.realized_pnl.to_string(), "1.333333333333");
        assert_eq!(f.open_cost.to_string(), "21.333333333333");
        // 21.333333333333 / 2 = 10.6666666666665: half to even.
        assert_eq!(f.average_cost().unwrap().to_string(), "10.666666666666");
        // Closing the rest releases all that is left: nothing lingers.
        p.apply(&t("4", "sell", "10", "2"));
        let f = p.figures.as_ref().unwrap();
        assert_eq!(f.open_cost.to_string(), "0");
        assert_eq!(f.average_cost(), None);
        assert_eq!(f.realized_pnl.to_string(), "0.000000000000");
        assert_eq!(p.fees["USDC"].0, 4);
        assert_eq!(p.fees["USDC"].1.to_string(), "2.0");
    }

    #[test]
    fn a_trade_hqx_cannot_read_makes_the_position_a_problem_not_a_guess() {
        let mut p = Position::new();
        p.apply(&t("1", "buy", "10", "1"));
        p.apply(&t("2", "short", "10", "1"));
        p.apply(&t("3", "buy", "10", "1"));
        assert_eq!(p.trades, 3);
        assert_eq!(
            p.figures,
            Err("trade 2: side Some(\"short\") is neither buy nor sell".into())
        );
        assert!(p.fees.is_empty());
        let mut q = Position::new();
        q.apply(&t("1", "buy", "1e-40", "1"));
        assert!(q.figures.unwrap_err().contains("out of range"));
        let mut z = Position::new();
        z.apply(&t("1", "sell", "10", "0"));
        assert!(z.figures.unwrap_err().contains("quantity above zero"));
    }
}
