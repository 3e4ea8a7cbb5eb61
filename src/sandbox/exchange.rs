//! The sandbox's books: orders, trades and balances of its one account,
//! and the house liquidity they trade against.
//!
//! Why event-sourced: every change is first *decided* as an [`Event`]
//! (which checks everything that can be refused), then written to the
//! state file, then *applied*. Replaying the state file on start applies
//! the same events through the same code, so the books after a restart
//! are exactly the books that answered before it. Nothing here does I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{Amount, OrderType, Pair, Side};

use super::AcceptedOrder;

/// What every account starts with in USDC.
const START_USDC: Decimal = Decimal::from_parts(10_000_000, 0, 0, false, 0);
/// What every account starts with in any other asset.
const START_OTHER: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);
/// Assets shown in balances from the start (others appear when traded).
const KNOWN_ASSETS: [&str; 4] = ["BTC", "ETH", "SOL", "USDC"];

/// The reference price of a pair's base asset, in its quote asset.
fn reference_price(base: &str) -> Decimal {
    match base {
        "BTC" => Decimal::from(24_000),
        "ETH" => Decimal::from(1_600),
        "SOL" => Decimal::from(20),
        _ => Decimal::from(100),
    }
}

/// The house's best ask: reference × 1.0005.
fn best_ask(base: &str) -> Decimal {
    reference_price(base) * Decimal::new(10_005, 4)
}

/// The house's best bid: reference × 0.9995.
fn best_bid(base: &str) -> Decimal {
    reference_price(base) * Decimal::new(9_995, 4)
}

fn starting_balance(asset: &str) -> Decimal {
    if asset == "USDC" {
        START_USDC
    } else {
        START_OTHER
    }
}

/// An order's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    /// Resting, funds locked.
    Open,
    /// Fully filled (the house fills whole orders).
    Filled,
    /// Cancelled while open.
    Cancelled,
}

impl Status {
    /// The wire spelling.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Filled => "filled",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A validated placement request.
pub(super) struct PlaceRequest {
    pub pair: Pair,
    pub kind: OrderType,
    pub side: Side,
    pub quantity: Amount,
    pub price: Option<Amount>,
    pub client_order_id: Option<String>,
}

/// One line of the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(super) enum Event {
    /// An order was accepted (and possibly filled at once).
    #[serde(rename_all = "camelCase")]
    Placed {
        seq: u64,
        id: String,
        pair: String,
        #[serde(rename = "type")]
        kind: OrderType,
        side: Side,
        quantity: String,
        price: Option<String>,
        created_at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        received_body: String,
        /// The trade that filled it, if it filled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trade: Option<TradeEvent>,
    },
    /// An open order was cancelled.
    Cancelled { id: String, at: i64 },
    /// A deposit address was handed out for the first time.
    DepositAddress {
        currency: String,
        network: String,
        address: String,
    },
}

/// The fill of a placed order (always the whole quantity).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TradeEvent {
    pub id: String,
    pub price: Decimal,
}

/// Why a placement was refused.
#[derive(Debug)]
pub(super) enum PlaceRefusal {
    /// 422: not enough available funds.
    InsufficientFunds(String),
    /// 400: the numbers are too large to compute with.
    TooLarge(String),
    /// 409: an order with this client order id exists already.
    DuplicateClientId(String),
}

/// Why a cancel was refused.
#[derive(Debug)]
pub(super) enum CancelRefusal {
    /// 404.
    NotFound,
    /// 409: the order is filled or already cancelled.
    NotOpen(Status),
}

/// An order on the books.
#[derive(Debug, Clone)]
pub(super) struct Order {
    pub seq: u64,
    pub id: String,
    pub pair: Pair,
    pub kind: OrderType,
    pub side: Side,
    pub quantity: Amount,
    pub price: Option<Amount>,
    pub status: Status,
    /// The fill price, when filled.
    pub fill_price: Option<Decimal>,
    pub created_at: i64,
    pub client_order_id: Option<String>,
    pub received_body: String,
}

/// The order object on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrderView<'a> {
    id: &'a str,
    pair: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    side: &'static str,
    quantity: &'a str,
    price: Option<&'a str>,
    status: &'static str,
    filled_quantity: &'a str,
    average_price: Option<String>,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_order_id: Option<&'a str>,
}

impl Order {
    /// The wire view of this order.
    pub(super) fn view(&self) -> OrderView<'_> {
        OrderView {
            id: &self.id,
            pair: self.pair.as_str(),
            kind: self.kind.as_str(),
            side: self.side.as_str(),
            quantity: self.quantity.text(),
            price: self.price.as_ref().map(Amount::text),
            status: self.status.as_str(),
            filled_quantity: match self.fill_price {
                Some(_) => self.quantity.text(),
                None => "0",
            },
            average_price: self.fill_price.map(|p| p.normalize().to_string()),
            created_at: self.created_at,
            client_order_id: self.client_order_id.as_deref(),
        }
    }

    /// The `/sandbox/orders` record of this order.
    pub(super) fn accepted(&self) -> AcceptedOrder {
        AcceptedOrder {
            seq: self.seq,
            id: self.id.clone(),
            pair: self.pair.to_string(),
            kind: self.kind.as_str().into(),
            side: self.side.as_str().into(),
            quantity: self.quantity.text().into(),
            price: self.price.as_ref().map(|p| p.text().into()),
            client_order_id: self.client_order_id.clone(),
            received_body: self.received_body.clone(),
            created_at: self.created_at,
            status: self.status.as_str().into(),
        }
    }

    /// What the order holds locked while open: (asset, amount).
    fn locked(&self) -> Option<(&str, Decimal)> {
        match self.side {
            Side::Buy => {
                let px = self.price.as_ref()?.value();
                Some((self.pair.quote(), notional(self.quantity.value(), px)?))
            }
            Side::Sell => Some((self.pair.base(), self.quantity.value())),
        }
    }
}

/// A trade: an order's fill.
#[derive(Debug, Clone)]
pub(super) struct Trade {
    pub id: String,
    /// Index of its order in [`Exchange::orders`].
    pub order: usize,
    pub price: Decimal,
    pub timestamp: i64,
}

/// The trade object on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TradeView<'a> {
    id: &'a str,
    order_id: &'a str,
    pair: &'a str,
    side: &'static str,
    price: String,
    quantity: &'a str,
    fee: &'static str,
    fee_currency: &'a str,
    timestamp: i64,
}

/// One asset's balance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Balance {
    pub available: Decimal,
    pub locked: Decimal,
}

/// The balance object on the wire.
#[derive(Serialize)]
pub(super) struct BalanceView<'a> {
    currency: &'a str,
    available: String,
    locked: String,
}

/// Filters of the trades listing.
pub(super) struct TradeFilter<'a> {
    pub pair: Option<&'a str>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

fn notional(quantity: Decimal, price: Decimal) -> Option<Decimal> {
    quantity.checked_mul(price)
}

/// The books of the sandbox's one account.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    orders: Vec<Order>,
    by_id: HashMap<String, usize>,
    trades: Vec<Trade>,
    balances: BTreeMap<String, Balance>,
    addresses: HashSet<(String, String)>,
    next_seq: u64,
    next_trade: u64,
}

impl Exchange {
    /// Fresh books: the starting funds, nothing traded.
    pub(super) fn new() -> Exchange {
        let mut x = Exchange {
            next_seq: 1,
            next_trade: 1,
            ..Exchange::default()
        };
        for a in KNOWN_ASSETS {
            x.balance_mut(a);
        }
        x
    }

    fn balance_mut(&mut self, asset: &str) -> &mut Balance {
        if !self.balances.contains_key(asset) {
            self.balances.insert(
                asset.to_string(),
                Balance {
                    available: starting_balance(asset),
                    locked: Decimal::ZERO,
                },
            );
        }
        self.balances.get_mut(asset).expect("just inserted")
    }

    fn available(&self, asset: &str) -> Decimal {
        self.balances
            .get(asset)
            .map_or_else(|| starting_balance(asset), |b| b.available)
    }

    /// Decide a placement: match it against the house, check funds, and
    /// give it the next id. Changes nothing.
    pub(super) fn decide_place(
        &self,
        req: PlaceRequest,
        received_body: String,
        now_ms: i64,
    ) -> Result<Event, PlaceRefusal> {
        // Client order ids are unique per account, as on venues that have them.
        if let Some(cid) = &req.client_order_id {
            if let Some(o) = self
                .orders
                .iter()
                .find(|o| o.client_order_id.as_deref() == Some(cid.as_str()))
            {
                return Err(PlaceRefusal::DuplicateClientId(format!(
                    "client order id `{cid}` is already used by order {}",
                    o.id
                )));
            }
        }
        let base = req.pair.base();
        let quote = req.pair.quote();
        let qty = req.quantity.value();
        let (ask, bid) = (best_ask(base), best_bid(base));
        let limit = req.price.as_ref().map(Amount::value);
        let fill = match (req.kind, req.side, limit) {
            (OrderType::Market, Side::Buy, _) => Some(ask),
            (OrderType::Market, Side::Sell, _) => Some(bid),
            (OrderType::Limit, Side::Buy, Some(p)) if p >= ask => Some(ask),
            (OrderType::Limit, Side::Sell, Some(p)) if p <= bid => Some(bid),
            _ => None,
        };
        let (asset, needed) = match req.side {
            Side::Buy => {
                let px = fill.or(limit).unwrap_or(ask);
                let cost = notional(qty, px).ok_or_else(|| {
                    PlaceRefusal::TooLarge(format!(
                        "quantity × price ({} × {px}) is too large",
                        req.quantity
                    ))
                })?;
                (quote, cost)
            }
            Side::Sell => (base, qty),
        };
        let available = self.available(asset);
        if needed > available {
            return Err(PlaceRefusal::InsufficientFunds(format!(
                "this order needs {} {asset} but only {} {asset} is available",
                needed.normalize(),
                available.normalize()
            )));
        }
        // A sell fills for quote funds; make sure the sum stays computable.
        if let (Side::Sell, Some(px)) = (req.side, fill) {
            let proceeds = notional(qty, px);
            if proceeds
                .and_then(|p| p.checked_add(self.available(quote)))
                .is_none()
            {
                return Err(PlaceRefusal::TooLarge(format!(
                    "quantity × price ({} × {px}) is too large",
                    req.quantity
                )));
            }
        }
        let seq = self.next_seq;
        Ok(Event::Placed {
            seq,
            id: format!("O{seq:010}"),
            pair: req.pair.to_string(),
            kind: req.kind,
            side: req.side,
            quantity: req.quantity.text().to_string(),
            price: req.price.map(|p| p.text().to_string()),
            created_at: now_ms,
            client_order_id: req.client_order_id,
            received_body,
            trade: fill.map(|price| TradeEvent {
                id: format!("T{:010}", self.next_trade),
                price,
            }),
        })
    }

    /// Decide a cancel. Changes nothing.
    pub(super) fn decide_cancel(&self, id: &str, now_ms: i64) -> Result<Event, CancelRefusal> {
        let o = self.order(id).ok_or(CancelRefusal::NotFound)?;
        if o.status != Status::Open {
            return Err(CancelRefusal::NotOpen(o.status));
        }
        Ok(Event::Cancelled {
            id: id.to_string(),
            at: now_ms,
        })
    }

    /// Whether this deposit address was handed out before.
    pub(super) fn has_address(&self, currency: &str, network: &str) -> bool {
        self.addresses
            .contains(&(currency.to_string(), network.to_string()))
    }

    /// Apply an event (decided now, or read back from the state file).
    /// Refuses events that do not fit the books, which only a damaged or
    /// foreign state file can hold.
    pub(super) fn apply(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Placed {
                seq,
                id,
                pair,
                kind,
                side,
                quantity,
                price,
                created_at,
                client_order_id,
                received_body,
                trade,
            } => {
                if self.by_id.contains_key(&id) {
                    return Err(format!("order {id} is placed twice"));
                }
                let pair: Pair = pair.parse()?;
                let quantity: Amount = quantity.parse()?;
                let price: Option<Amount> = price.map(|p| p.parse()).transpose()?;
                let qty = quantity.value();
                let (base, quote) = (pair.base().to_string(), pair.quote().to_string());
                let too_large = || format!("order {id}: amounts too large");
                match (&trade, side) {
                    (Some(t), Side::Buy) => {
                        let cost = notional(qty, t.price).ok_or_else(too_large)?;
                        self.balance_mut(&quote).available -= cost;
                        self.balance_mut(&base).available += qty;
                    }
                    (Some(t), Side::Sell) => {
                        let proceeds = notional(qty, t.price).ok_or_else(too_large)?;
                        self.balance_mut(&base).available -= qty;
                        self.balance_mut(&quote).available += proceeds;
                    }
                    (None, _) => {}
                }
                let order = Order {
                    seq,
                    id: id.clone(),
                    pair,
                    kind,
                    side,
                    quantity,
                    price,
                    status: if trade.is_some() {
                        Status::Filled
                    } else {
                        Status::Open
                    },
                    fill_price: trade.as_ref().map(|t| t.price),
                    created_at,
                    client_order_id,
                    received_body,
                };
                if trade.is_none() {
                    let (asset, amount) = order.locked().ok_or_else(too_large)?;
                    let b = self.balance_mut(asset);
                    b.available -= amount;
                    b.locked += amount;
                }
                let index = self.orders.len();
                if let Some(t) = trade {
                    self.trades.push(Trade {
                        id: t.id,
                        order: index,
                        price: t.price,
                        timestamp: created_at,
                    });
                    self.next_trade += 1;
                }
                self.orders.push(order);
                self.by_id.insert(id, index);
                self.next_seq = self.next_seq.max(seq + 1);
            }
            Event::Cancelled { id, at: _ } => {
                let index = *self
                    .by_id
                    .get(&id)
                    .ok_or_else(|| format!("cancel of unknown order {id}"))?;
                let o = &mut self.orders[index];
                if o.status != Status::Open {
                    return Err(format!("cancel of order {id}, which is not open"));
                }
                o.status = Status::Cancelled;
                let (asset, amount) = o
                    .locked()
                    .ok_or_else(|| format!("order {id}: amounts too large"))?;
                let asset = asset.to_string();
                let b = self.balance_mut(&asset);
                b.locked -= amount;
                b.available += amount;
            }
            Event::DepositAddress {
                currency, network, ..
            } => {
                self.addresses.insert((currency, network));
            }
        }
        Ok(())
    }

    /// One order by id.
    pub(super) fn order(&self, id: &str) -> Option<&Order> {
        self.by_id.get(id).map(|&i| &self.orders[i])
    }

    /// The order placed last (after a successful placement: that one).
    pub(super) fn last_order(&self) -> Option<&Order> {
        self.orders.last()
    }

    /// Every order, oldest first.
    pub(super) fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// Balances, sorted by currency.
    pub(super) fn balances(&self) -> Vec<BalanceView<'_>> {
        self.balances
            .iter()
            .map(|(c, b)| BalanceView {
                currency: c,
                available: b.available.normalize().to_string(),
                locked: b.locked.normalize().to_string(),
            })
            .collect()
    }

    /// One asset's balance as it stands (starting funds if never touched).
    #[cfg(test)]
    pub(super) fn balance(&self, asset: &str) -> Balance {
        self.balances.get(asset).copied().unwrap_or(Balance {
            available: starting_balance(asset),
            locked: Decimal::ZERO,
        })
    }

    /// Trades matching `filter`, newest first: (total matching, the page).
    pub(super) fn trades(
        &self,
        filter: &TradeFilter<'_>,
        limit: usize,
        page: usize,
    ) -> (usize, Vec<TradeView<'_>>) {
        let skip = limit.saturating_mul(page.saturating_sub(1));
        let mut total = 0;
        let mut out = Vec::new();
        for t in self.trades.iter().rev() {
            let o = &self.orders[t.order];
            let wanted = filter.pair.is_none_or(|p| p == o.pair.as_str())
                && filter.from.is_none_or(|f| t.timestamp >= f)
                && filter.to.is_none_or(|to| t.timestamp <= to);
            if !wanted {
                continue;
            }
            if total >= skip && out.len() < limit {
                out.push(TradeView {
                    id: &t.id,
                    order_id: &o.id,
                    pair: o.pair.as_str(),
                    side: o.side.as_str(),
                    price: t.price.normalize().to_string(),
                    quantity: o.quantity.text(),
                    fee: "0",
                    fee_currency: o.pair.quote(),
                    timestamp: t.timestamp,
                });
            }
            total += 1;
        }
        (total, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pair: &str, kind: &str, side: &str, qty: &str, price: Option<&str>) -> PlaceRequest {
        PlaceRequest {
            pair: pair.parse().unwrap(),
            kind: kind.parse().unwrap(),
            side: side.parse().unwrap(),
            quantity: qty.parse().unwrap(),
            price: price.map(|p| p.parse().unwrap()),
            client_order_id: None,
        }
    }

    fn place(x: &mut Exchange, r: PlaceRequest) -> Result<String, PlaceRefusal> {
        let ev = x.decide_place(r, "{}".into(), 1)?;
        x.apply(ev).unwrap();
        Ok(x.last_order().unwrap().id.clone())
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn house_prices() {
        assert_eq!(best_ask("BTC"), d("24012"));
        assert_eq!(best_bid("BTC"), d("23988"));
        assert_eq!(best_ask("ETH"), d("1600.8"));
        assert_eq!(best_bid("SOL"), d("19.99"));
        assert_eq!(best_ask("XYZ"), d("100.05"));
    }

    #[test]
    fn fills_rest_and_cancel_move_balances_exactly() {
        let mut x = Exchange::new();
        let filled = place(
            &mut x,
            req("BTC-USDC", "limit", "buy", "2", Some("24321.00")),
        )
        .unwrap();
        assert_eq!(x.order(&filled).unwrap().status, Status::Filled);
        assert_eq!(x.balance("USDC").available, d("9951976"));
        assert_eq!(x.balance("BTC").available, d("1002"));
        let open = place(
            &mut x,
            req("BTC-USDC", "limit", "buy", "0.5", Some("20000.10")),
        )
        .unwrap();
        assert_eq!(x.order(&open).unwrap().status, Status::Open);
        assert_eq!(x.balance("USDC").locked, d("10000.05"));
        assert_eq!(x.balance("USDC").available, d("9941975.95"));
        let ev = x.decide_cancel(&open, 2).unwrap();
        x.apply(ev).unwrap();
        assert_eq!(x.balance("USDC").locked, Decimal::ZERO);
        assert_eq!(x.balance("USDC").available, d("9951976"));
        assert!(matches!(
            x.decide_cancel(&open, 3),
            Err(CancelRefusal::NotOpen(Status::Cancelled))
        ));
        assert!(matches!(
            x.decide_cancel("nope", 3),
            Err(CancelRefusal::NotFound)
        ));
        // A resting sell locks base; a market sell fills at the bid.
        place(&mut x, req("ETH-USDC", "limit", "sell", "10", Some("2000"))).unwrap();
        assert_eq!(x.balance("ETH").locked, d("10"));
        place(&mut x, req("ETH-USDC", "market", "sell", "1.5", None)).unwrap();
        assert_eq!(x.balance("ETH").available, d("988.5"));
        assert_eq!(
            x.balance("USDC").available,
            d("9951976") + d("1.5") * d("1599.2")
        );
        // An unseen quote asset starts at 1000.
        place(&mut x, req("ABC-EUR", "market", "buy", "1", None)).unwrap();
        assert_eq!(x.balance("EUR").available, d("899.95"));
        assert_eq!(x.balance("ABC").available, d("1001"));
    }

    #[test]
    fn insufficient_funds_and_overflow_are_refused() {
        let x = Exchange::new();
        let r = x.decide_place(
            req("BTC-USDC", "limit", "buy", "1000000", Some("25000")),
            "{}".into(),
            1,
        );
        assert!(
            matches!(r, Err(PlaceRefusal::InsufficientFunds(_))),
            "{r:?}"
        );
        let r = x.decide_place(
            req("BTC-USDC", "market", "sell", "1000.1", None),
            "{}".into(),
            1,
        );
        assert!(
            matches!(r, Err(PlaceRefusal::InsufficientFunds(_))),
            "{r:?}"
        );
        let huge = "9999999999999999999999999999";
        let r = x.decide_place(
            req("BTC-USDC", "limit", "buy", huge, Some(huge)),
            "{}".into(),
            1,
        );
        assert!(matches!(r, Err(PlaceRefusal::TooLarge(_))), "{r:?}");
    }
}
