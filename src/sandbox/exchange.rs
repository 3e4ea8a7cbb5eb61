//! The sandbox's books: orders, trades and balances of its one account,
//! the house liquidity they trade against, and the market that moves.
//!
//! Why event-sourced: every change is first *decided* as an [`Event`]
//! (which checks everything that can be refused), then written to the
//! state file, then *applied*. Replaying the state file on start applies
//! the same events through the same code, so the books after a restart
//! are exactly the books that answered before it. A decided event carries
//! every number it moves (fill quantities, prices, fees), so a replay does
//! not depend on the configuration it runs under (e.g. the fee rate).
//! Nothing here does I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{Amount, OrderType, Pair, Side};

use super::{AcceptedOrder, AcceptedTrade};

/// What every account starts with in USDC.
const START_USDC: Decimal = Decimal::from_parts(10_000_000, 0, 0, false, 0);
/// What every account starts with in any other asset.
const START_OTHER: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);
/// Assets shown in balances from the start (others appear when traded).
const KNOWN_ASSETS: [&str; 4] = ["BTC", "ETH", "SOL", "USDC"];

/// The initial reference price of a pair, by its base asset, in any quote.
fn initial_reference(base: &str) -> Decimal {
    match base {
        "BTC" => Decimal::from(24_000),
        "ETH" => Decimal::from(1_600),
        "SOL" => Decimal::from(20),
        _ => Decimal::from(100),
    }
}

/// The house's best ask for a reference price: reference × 1.0005.
fn ask_of(reference: Decimal) -> Decimal {
    reference * Decimal::new(10_005, 4)
}

/// The house's best bid for a reference price: reference × 0.9995.
fn bid_of(reference: Decimal) -> Decimal {
    reference * Decimal::new(9_995, 4)
}

fn starting_balance(asset: &str) -> Decimal {
    if asset == "USDC" {
        START_USDC
    } else {
        START_OTHER
    }
}

/// Whether `s` is a currency code: 2 to 12 upper-case letters or digits.
pub(super) fn is_currency(s: &str) -> bool {
    (2..=12).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// An order's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    /// Resting, funds locked; possibly partly filled.
    Open,
    /// Fully filled.
    Filled,
    /// Cancelled while open; possibly partly filled before.
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
    /// An order was accepted (and possibly filled at once, whole, as a
    /// taker).
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
        /// The trade that filled it at once, if it did.
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
    /// A pair's reference price was set; the open orders it crossed
    /// filled (whole remainder, each at its own limit price).
    Market {
        pair: String,
        price: Decimal,
        at: i64,
        fills: Vec<FillEvent>,
    },
    /// An open order was filled (partly or for the rest) by hand.
    Fill {
        #[serde(flatten)]
        fill: FillEvent,
    },
    /// Funds were credited to the available balance.
    Deposit {
        currency: String,
        amount: Decimal,
        at: i64,
    },
}

/// The fill of an order at placement (always the whole quantity).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TradeEvent {
    pub id: String,
    pub price: Decimal,
    /// The fee in the quote currency. Absent in state files written
    /// before fees existed: those fills replay with fee 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Decimal>,
}

/// One fill of a resting order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FillEvent {
    /// The trade id.
    pub id: String,
    pub order_id: String,
    pub price: Decimal,
    pub quantity: Decimal,
    pub fee: Decimal,
    pub at: i64,
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

/// Why a control action (market move, fill, deposit) was refused.
#[derive(Debug, PartialEq)]
pub(super) enum ControlRefusal {
    /// 400: the request is malformed or out of range.
    Invalid(String),
    /// 404: no such order.
    NotFound(String),
    /// 409: the order is not open.
    NotOpen(String),
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
    /// Sum of its fills' quantities.
    pub filled: Decimal,
    /// Sum of its fills' price × quantity (for the average price).
    pub filled_notional: Decimal,
    pub created_at: i64,
    /// When it last changed (placed, filled, cancelled).
    pub updated_at: i64,
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
    filled_quantity: String,
    average_price: Option<String>,
    created_at: i64,
    updated_at: i64,
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
            filled_quantity: self.filled.normalize().to_string(),
            average_price: self.average_price().map(|p| p.normalize().to_string()),
            created_at: self.created_at,
            updated_at: self.updated_at,
            client_order_id: self.client_order_id.as_deref(),
        }
    }

    /// Volume-weighted average price of its fills; `None` with no fill.
    /// Every fill of one order is at one price (a taker fills whole at
    /// once, a resting order at its limit), so this is exact.
    pub(super) fn average_price(&self) -> Option<Decimal> {
        if self.filled.is_zero() {
            None
        } else {
            self.filled_notional.checked_div(self.filled)
        }
    }

    /// What is left to fill.
    pub(super) fn remaining(&self) -> Decimal {
        self.quantity.value() - self.filled
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

    /// What `quantity` of this order holds locked while open: (asset,
    /// amount). A buy locks quantity × limit in quote, a sell the
    /// quantity in base.
    fn locked_for(&self, quantity: Decimal) -> Option<(&str, Decimal)> {
        match self.side {
            Side::Buy => {
                let px = self.price.as_ref()?.value();
                Some((self.pair.quote(), notional(quantity, px)?))
            }
            Side::Sell => Some((self.pair.base(), quantity)),
        }
    }
}

/// A trade: one fill of an order.
#[derive(Debug, Clone)]
pub(super) struct Trade {
    pub id: String,
    /// Index of its order in [`Exchange::orders`].
    pub order: usize,
    pub price: Decimal,
    /// This fill's quantity.
    pub quantity: Decimal,
    /// The fee, in the pair's quote currency.
    pub fee: Decimal,
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
    quantity: String,
    fee: String,
    fee_currency: &'a str,
    timestamp: i64,
}

impl TradeView<'_> {
    /// An owned copy, for the Rust API.
    pub(super) fn to_accepted(&self) -> AcceptedTrade {
        AcceptedTrade {
            id: self.id.to_string(),
            order_id: self.order_id.to_string(),
            pair: self.pair.to_string(),
            side: self.side.to_string(),
            price: self.price.clone(),
            quantity: self.quantity.clone(),
            fee: self.fee.clone(),
            fee_currency: self.fee_currency.to_string(),
            timestamp: self.timestamp,
        }
    }
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

/// Filters of the orders listing.
pub(super) struct OrderFilter<'a> {
    pub pair: Option<&'a str>,
    pub status: Option<Status>,
    /// Inclusive bounds on `createdAt`.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// The reference price of a pair and the house's quotes around it.
pub(super) struct Quote {
    pub reference: Decimal,
    pub bid: Decimal,
    pub ask: Decimal,
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
    /// Reference prices set by market moves, by pair.
    references: HashMap<String, Decimal>,
    /// Fee per unit of notional charged on new fills (replays use the
    /// fees recorded in the events).
    fee_rate: Decimal,
    next_seq: u64,
    next_trade: u64,
    /// The latest `createdAt` handed out: new orders never get an
    /// earlier one, so an oldest-first listing only grows at its end.
    last_created: i64,
}

impl Exchange {
    /// Fresh books: the starting funds, nothing traded, fees at `fee_rate`.
    pub(super) fn new(fee_rate: Decimal) -> Exchange {
        let mut x = Exchange {
            next_seq: 1,
            next_trade: 1,
            fee_rate,
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

    /// The pair's current reference price and the house's bid and ask.
    pub(super) fn quote(&self, pair: &Pair) -> Quote {
        let reference = self
            .references
            .get(pair.as_str())
            .copied()
            .unwrap_or_else(|| initial_reference(pair.base()));
        Quote {
            reference,
            bid: bid_of(reference),
            ask: ask_of(reference),
        }
    }

    /// The fee on a fill of `quantity` at `price`, in the quote currency.
    fn fee(&self, quantity: Decimal, price: Decimal) -> Option<Decimal> {
        notional(quantity, price)?.checked_mul(self.fee_rate)
    }

    fn trade_id(n: u64) -> String {
        format!("T{n:010}")
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
        let Quote { ask, bid, .. } = self.quote(&req.pair);
        let limit = req.price.as_ref().map(Amount::value);
        let fill = match (req.kind, req.side, limit) {
            (OrderType::Market, Side::Buy, _) => Some(ask),
            (OrderType::Market, Side::Sell, _) => Some(bid),
            (OrderType::Limit, Side::Buy, Some(p)) if p >= ask => Some(ask),
            (OrderType::Limit, Side::Sell, Some(p)) if p <= bid => Some(bid),
            _ => None,
        };
        let too_large = |px: Decimal| {
            PlaceRefusal::TooLarge(format!(
                "quantity × price ({} × {px}) is too large",
                req.quantity
            ))
        };
        let fee = match fill {
            Some(px) => Some(self.fee(qty, px).ok_or_else(|| too_large(px))?),
            None => None,
        };
        let (asset, needed) = match req.side {
            Side::Buy => {
                let px = fill.or(limit).unwrap_or(ask);
                let cost = notional(qty, px)
                    .and_then(|c| c.checked_add(fee.unwrap_or_default()))
                    .ok_or_else(|| too_large(px))?;
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
                return Err(too_large(px));
            }
        }
        // A resting buy must also be computable when it fills or cancels.
        if fill.is_none() {
            let px = limit.unwrap_or(ask);
            if self.fee(qty, px).is_none() {
                return Err(too_large(px));
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
            created_at: now_ms.max(self.last_created),
            client_order_id: req.client_order_id,
            received_body,
            trade: fill.map(|price| TradeEvent {
                id: Self::trade_id(self.next_trade),
                price,
                fee,
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

    /// Decide a market move: `pair`'s reference becomes `price`, and
    /// every open order on it that now crosses (a buy whose limit is at
    /// or above the price, a sell whose limit is at or below it) fills
    /// its whole remainder at its own limit. Changes nothing.
    pub(super) fn decide_market(
        &self,
        pair: &str,
        price: &str,
        now_ms: i64,
    ) -> Result<Event, ControlRefusal> {
        let pair: Pair = pair.parse().map_err(ControlRefusal::Invalid)?;
        let price: Amount = price
            .parse()
            .map_err(|e| ControlRefusal::Invalid(format!("price: {e}")))?;
        let p = price.value();
        // A house quote must stay computable.
        if p.checked_mul(Decimal::new(10_005, 4)).is_none() {
            return Err(ControlRefusal::Invalid(format!(
                "price {price} is too large"
            )));
        }
        let mut fills = Vec::new();
        for o in &self.orders {
            if o.status != Status::Open || o.pair != pair {
                continue;
            }
            let Some(limit) = o.price.as_ref().map(Amount::value) else {
                continue;
            };
            let crosses = match o.side {
                Side::Buy => limit >= p,
                Side::Sell => limit <= p,
            };
            if crosses {
                let quantity = o.remaining();
                fills.push(FillEvent {
                    id: Self::trade_id(self.next_trade + fills.len() as u64),
                    order_id: o.id.clone(),
                    price: limit,
                    quantity,
                    fee: self.fill_fee(o, quantity, limit)?,
                    at: now_ms,
                });
            }
        }
        Ok(Event::Market {
            pair: pair.to_string(),
            price: p,
            at: now_ms,
            fills,
        })
    }

    /// The fee of a fill of a resting order, checked to be computable
    /// with the balances it moves.
    fn fill_fee(
        &self,
        o: &Order,
        quantity: Decimal,
        price: Decimal,
    ) -> Result<Decimal, ControlRefusal> {
        let too_large = || {
            ControlRefusal::Invalid(format!(
                "a fill of {quantity} of order {} at {price} is too large to compute",
                o.id
            ))
        };
        let fee = self.fee(quantity, price).ok_or_else(too_large)?;
        let proceeds = notional(quantity, price).ok_or_else(too_large)?;
        proceeds
            .checked_add(fee)
            .and_then(|x| x.checked_add(self.available(o.pair.quote()).abs()))
            .ok_or_else(too_large)?;
        Ok(fee)
    }

    /// Decide a fill of an open order at its limit price: `quantity` of
    /// it, or its whole remainder when `None`. Changes nothing.
    pub(super) fn decide_fill(
        &self,
        order_id: &str,
        quantity: Option<&str>,
        now_ms: i64,
    ) -> Result<Event, ControlRefusal> {
        let o = self
            .order(order_id)
            .ok_or_else(|| ControlRefusal::NotFound(format!("no order {order_id}")))?;
        if o.status != Status::Open {
            return Err(ControlRefusal::NotOpen(format!(
                "order {order_id} is {}: only open orders can be filled",
                o.status.as_str()
            )));
        }
        let remaining = o.remaining();
        let quantity = match quantity {
            None => remaining,
            Some(q) => {
                let q: Amount = q
                    .parse()
                    .map_err(|e| ControlRefusal::Invalid(format!("quantity: {e}")))?;
                if q.value() > remaining {
                    return Err(ControlRefusal::Invalid(format!(
                        "quantity {q} is more than the {} left to fill of order {order_id}",
                        remaining.normalize()
                    )));
                }
                q.value()
            }
        };
        let price = o.price.as_ref().map(Amount::value).ok_or_else(|| {
            ControlRefusal::NotOpen(format!("order {order_id} has no limit price"))
        })?;
        Ok(Event::Fill {
            fill: FillEvent {
                id: Self::trade_id(self.next_trade),
                order_id: order_id.to_string(),
                price,
                quantity,
                fee: self.fill_fee(o, quantity, price)?,
                at: now_ms,
            },
        })
    }

    /// Decide a deposit of `amount` `currency`. Changes nothing.
    pub(super) fn decide_deposit(
        &self,
        currency: &str,
        amount: &str,
        now_ms: i64,
    ) -> Result<Event, ControlRefusal> {
        if !is_currency(currency) {
            return Err(ControlRefusal::Invalid(format!(
                "currency must be 2 to 12 upper-case letters or digits, like USDC, not `{currency}`"
            )));
        }
        let amount: Amount = amount
            .parse()
            .map_err(|e| ControlRefusal::Invalid(format!("amount: {e}")))?;
        if self
            .available(currency)
            .checked_add(amount.value())
            .is_none()
        {
            return Err(ControlRefusal::Invalid(format!(
                "amount {amount} is too large"
            )));
        }
        Ok(Event::Deposit {
            currency: currency.to_string(),
            amount: amount.value(),
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
    /// foreign state file can hold. A refused event may have changed
    /// part of the books: the caller treats it as fatal.
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
                let index = self.orders.len();
                let mut order = Order {
                    seq,
                    id: id.clone(),
                    pair,
                    kind,
                    side,
                    quantity,
                    price,
                    status: Status::Open,
                    filled: Decimal::ZERO,
                    filled_notional: Decimal::ZERO,
                    created_at,
                    updated_at: created_at,
                    client_order_id,
                    received_body,
                };
                match trade {
                    Some(t) => {
                        // A taker fill: the whole order, at once, never locked.
                        let fee = t.fee.unwrap_or_default();
                        let amount = notional(qty, t.price).ok_or_else(too_large)?;
                        match side {
                            Side::Buy => {
                                let cost = amount.checked_add(fee).ok_or_else(too_large)?;
                                self.balance_mut(&quote).available -= cost;
                                self.balance_mut(&base).available += qty;
                            }
                            Side::Sell => {
                                self.balance_mut(&base).available -= qty;
                                self.balance_mut(&quote).available += amount - fee;
                            }
                        }
                        order.status = Status::Filled;
                        order.filled = qty;
                        order.filled_notional = amount;
                        self.trades.push(Trade {
                            id: t.id,
                            order: index,
                            price: t.price,
                            quantity: qty,
                            fee,
                            timestamp: created_at,
                        });
                        self.next_trade += 1;
                    }
                    None => {
                        let (asset, amount) = order.locked_for(qty).ok_or_else(too_large)?;
                        let asset = asset.to_string();
                        let b = self.balance_mut(&asset);
                        b.available -= amount;
                        b.locked += amount;
                    }
                }
                self.orders.push(order);
                self.by_id.insert(id, index);
                self.next_seq = self.next_seq.max(seq + 1);
                self.last_created = self.last_created.max(created_at);
            }
            Event::Cancelled { id, at } => {
                let index = *self
                    .by_id
                    .get(&id)
                    .ok_or_else(|| format!("cancel of unknown order {id}"))?;
                let o = &mut self.orders[index];
                if o.status != Status::Open {
                    return Err(format!("cancel of order {id}, which is not open"));
                }
                o.status = Status::Cancelled;
                o.updated_at = at;
                let rest = o.remaining();
                let (asset, amount) = o
                    .locked_for(rest)
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
            Event::Market {
                pair,
                price,
                at: _,
                fills,
            } => {
                let pair: Pair = pair.parse()?;
                if price <= Decimal::ZERO {
                    return Err(format!("market price {price} of {pair} is not positive"));
                }
                for f in fills {
                    self.apply_fill(f, Some(&pair))?;
                }
                self.references.insert(pair.to_string(), price);
            }
            Event::Fill { fill } => self.apply_fill(fill, None)?,
            Event::Deposit {
                currency,
                amount,
                at: _,
            } => {
                if amount <= Decimal::ZERO {
                    return Err(format!("deposit of {amount} {currency} is not positive"));
                }
                self.balance_mut(&currency).available += amount;
            }
        }
        Ok(())
    }

    /// Apply one fill of a resting order: release what it locked for the
    /// filled quantity, pay out, charge the fee from available quote.
    fn apply_fill(&mut self, f: FillEvent, pair: Option<&Pair>) -> Result<(), String> {
        let FillEvent {
            id,
            order_id,
            price,
            quantity,
            fee,
            at,
        } = f;
        let index = *self
            .by_id
            .get(&order_id)
            .ok_or_else(|| format!("fill {id} of unknown order {order_id}"))?;
        let o = &self.orders[index];
        if o.status != Status::Open {
            return Err(format!("fill {id} of order {order_id}, which is not open"));
        }
        if pair.is_some_and(|p| *p != o.pair) {
            return Err(format!("fill {id} of order {order_id}, on another pair"));
        }
        if quantity <= Decimal::ZERO || quantity > o.remaining() || fee < Decimal::ZERO {
            return Err(format!(
                "fill {id} of {quantity} (fee {fee}) does not fit order {order_id}"
            ));
        }
        let too_large = || format!("fill {id}: amounts too large");
        let (locked_asset, release) = o.locked_for(quantity).ok_or_else(too_large)?;
        let locked_asset = locked_asset.to_string();
        let (base, quote) = (o.pair.base().to_string(), o.pair.quote().to_string());
        let side = o.side;
        let amount = notional(quantity, price).ok_or_else(too_large)?;
        let b = self.balance_mut(&locked_asset);
        b.locked -= release;
        match side {
            Side::Buy => {
                // Locked at the limit, paid at the fill price (the same for
                // every fill the sandbox makes): any difference returns.
                b.available += release;
                let q = self.balance_mut(&quote);
                q.available -= amount + fee;
                self.balance_mut(&base).available += quantity;
            }
            Side::Sell => {
                self.balance_mut(&quote).available += amount - fee;
            }
        }
        let o = &mut self.orders[index];
        o.filled += quantity;
        o.filled_notional += amount;
        o.updated_at = at;
        if o.remaining().is_zero() {
            o.status = Status::Filled;
        }
        self.trades.push(Trade {
            id,
            order: index,
            price,
            quantity,
            fee,
            timestamp: at,
        });
        self.next_trade += 1;
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

    /// Every order, in acceptance order.
    pub(super) fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// Orders matching `filter`, oldest first (`createdAt`, then id):
    /// (total matching, the page). Orders placed later sort after every
    /// order already listed, so earlier pages never shift.
    pub(super) fn orders_page(
        &self,
        filter: &OrderFilter<'_>,
        limit: usize,
        page: usize,
    ) -> (usize, Vec<OrderView<'_>>) {
        let mut matching: Vec<&Order> = self
            .orders
            .iter()
            .filter(|o| {
                filter.pair.is_none_or(|p| o.pair.as_str() == p)
                    && filter.status.is_none_or(|s| o.status == s)
                    && filter.from.is_none_or(|f| o.created_at >= f)
                    && filter.to.is_none_or(|t| o.created_at <= t)
            })
            .collect();
        // Already in this order unless an old state file says otherwise.
        matching.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let skip = limit.saturating_mul(page.saturating_sub(1));
        let total = matching.len();
        let out = matching
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(Order::view)
            .collect();
        (total, out)
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
    pub(super) fn balance(&self, asset: &str) -> Balance {
        self.balances.get(asset).copied().unwrap_or(Balance {
            available: starting_balance(asset),
            locked: Decimal::ZERO,
        })
    }

    fn trade_view<'a>(&'a self, t: &'a Trade) -> TradeView<'a> {
        let o = &self.orders[t.order];
        TradeView {
            id: &t.id,
            order_id: &o.id,
            pair: o.pair.as_str(),
            side: o.side.as_str(),
            price: t.price.normalize().to_string(),
            quantity: t.quantity.normalize().to_string(),
            fee: t.fee.normalize().to_string(),
            fee_currency: o.pair.quote(),
            timestamp: t.timestamp,
        }
    }

    /// Every trade, oldest first.
    pub(super) fn all_trades(&self) -> Vec<TradeView<'_>> {
        self.trades.iter().map(|t| self.trade_view(t)).collect()
    }

    /// The last `n` trades made, oldest first.
    pub(super) fn last_trades(&self, n: usize) -> Vec<TradeView<'_>> {
        let start = self.trades.len().saturating_sub(n);
        self.trades[start..]
            .iter()
            .map(|t| self.trade_view(t))
            .collect()
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
                out.push(self.trade_view(t));
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
        let x = Exchange::new(Decimal::ZERO);
        let q = |p: &str| x.quote(&p.parse().unwrap());
        assert_eq!(q("BTC-USDC").ask, d("24012"));
        assert_eq!(q("BTC-USDC").bid, d("23988"));
        assert_eq!(q("BTC-EUR").reference, d("24000"));
        assert_eq!(q("ETH-USDC").ask, d("1600.8"));
        assert_eq!(q("SOL-USDC").bid, d("19.99"));
        assert_eq!(q("XYZ-USDC").ask, d("100.05"));
    }

    #[test]
    fn fills_rest_and_cancel_move_balances_exactly() {
        // Without fees, as before fees existed.
        let mut x = Exchange::new(Decimal::ZERO);
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
        let x = Exchange::new(d("0.001"));
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

    fn fill(x: &mut Exchange, id: &str, q: Option<&str>) -> Result<(), ControlRefusal> {
        let ev = x.decide_fill(id, q, 5)?;
        x.apply(ev).unwrap();
        Ok(())
    }

    fn market(x: &mut Exchange, pair: &str, price: &str) -> Vec<(String, Decimal, Decimal)> {
        let ev = x.decide_market(pair, price, 7).unwrap();
        let Event::Market { fills, .. } = &ev else {
            panic!("{ev:?}")
        };
        let out = fills
            .iter()
            .map(|f| (f.order_id.clone(), f.quantity, f.fee))
            .collect();
        x.apply(ev).unwrap();
        out
    }

    fn bal(x: &Exchange, asset: &str) -> (Decimal, Decimal) {
        let b = x.balance(asset);
        (b.available, b.locked)
    }

    #[test]
    fn taker_fills_pay_an_exact_fee_in_quote_both_sides() {
        let mut x = Exchange::new(d("0.001"));
        let b = place(&mut x, req("BTC-USDC", "market", "buy", "2", None)).unwrap();
        // 2 × 24012 = 48024, fee 48.024.
        assert_eq!(bal(&x, "USDC"), (d("9951927.976"), d("0")));
        assert_eq!(bal(&x, "BTC"), (d("1002"), d("0")));
        place(&mut x, req("ETH-USDC", "market", "sell", "1.5", None)).unwrap();
        // 1.5 × 1599.2 = 2398.8, fee 2.3988.
        assert_eq!(bal(&x, "USDC"), (d("9951927.976") + d("2396.4012"), d("0")));
        assert_eq!(bal(&x, "ETH"), (d("998.5"), d("0")));
        let (_, trades) = x.trades(
            &TradeFilter {
                pair: None,
                from: None,
                to: None,
            },
            10,
            1,
        );
        assert_eq!(trades.len(), 2);
        assert_eq!(
            (trades[1].order_id, trades[1].fee.as_str()),
            (b.as_str(), "48.024")
        );
        assert_eq!(
            (trades[0].quantity.as_str(), trades[0].fee.as_str()),
            ("1.5", "2.3988")
        );
        assert_eq!(trades[0].fee_currency, "USDC");
    }

    #[test]
    fn a_taker_buy_needs_cost_plus_fee_available() {
        let mut x = Exchange::new(d("0.001"));
        // EUR starts at 1000; ABC's ask is 100.05.
        // 9.99 × 100.05 = 999.4995, + fee 0.9994995 = 1000.4989995 > 1000.
        let r = x.decide_place(
            req("ABC-EUR", "market", "buy", "9.99", None),
            "{}".into(),
            1,
        );
        assert!(
            matches!(r, Err(PlaceRefusal::InsufficientFunds(ref m)) if m.contains("1000.4989995")),
            "{r:?}"
        );
        // 9.98 × 100.05 = 998.499, + 0.998499 = 999.497499.
        place(&mut x, req("ABC-EUR", "market", "buy", "9.98", None)).unwrap();
        assert_eq!(bal(&x, "EUR"), (d("0.502501"), d("0")));
        assert_eq!(bal(&x, "ABC"), (d("1009.98"), d("0")));
    }

    #[test]
    fn partial_fills_release_exactly_and_a_cancel_unlocks_the_rest() {
        let mut x = Exchange::new(d("0.001"));
        let id = place(
            &mut x,
            req("BTC-USDC", "limit", "buy", "1", Some("23000.0")),
        )
        .unwrap();
        assert_eq!(bal(&x, "USDC"), (d("9977000"), d("23000")));
        fill(&mut x, &id, Some("0.25")).unwrap();
        // Releases 5750 from locked, pays it, and a fee of 5.75.
        assert_eq!(bal(&x, "USDC"), (d("9976994.25"), d("17250")));
        assert_eq!(bal(&x, "BTC"), (d("1000.25"), d("0")));
        let o = x.order(&id).unwrap();
        assert_eq!((o.status, o.filled), (Status::Open, d("0.25")));
        assert_eq!(o.average_price(), Some(d("23000")));
        assert_eq!(o.updated_at, 5);
        let v = serde_json::to_value(o.view()).unwrap();
        assert_eq!(v["filledQuantity"], "0.25");
        assert_eq!(v["averagePrice"], "23000");
        assert_eq!(v["price"], "23000.0");
        fill(&mut x, &id, Some("0.5")).unwrap();
        assert_eq!(bal(&x, "USDC"), (d("9976982.75"), d("5750")));
        // Too much, zero, nonsense.
        for q in ["0.26", "0", "-1", "abc"] {
            assert!(
                matches!(fill(&mut x, &id, Some(q)), Err(ControlRefusal::Invalid(_))),
                "{q}"
            );
        }
        let ev = x.decide_cancel(&id, 9).unwrap();
        x.apply(ev).unwrap();
        assert_eq!(bal(&x, "USDC"), (d("9982732.75"), d("0")));
        assert_eq!(bal(&x, "BTC"), (d("1000.75"), d("0")));
        let o = x.order(&id).unwrap();
        assert_eq!(
            (o.status, o.filled, o.updated_at),
            (Status::Cancelled, d("0.75"), 9)
        );
        assert!(matches!(
            fill(&mut x, &id, None),
            Err(ControlRefusal::NotOpen(_))
        ));
        assert!(matches!(
            fill(&mut x, "O404", None),
            Err(ControlRefusal::NotFound(_))
        ));
        // Three trades' fees add up to what left the account beyond the notional.
        let fees: Decimal = x.trades.iter().map(|t| t.fee).sum();
        assert_eq!(fees, d("17.25"));
    }

    #[test]
    fn a_resting_sell_fills_in_parts_then_by_a_market_move() {
        let mut x = Exchange::new(d("0.001"));
        let id = place(&mut x, req("ETH-USDC", "limit", "sell", "10", Some("1700"))).unwrap();
        assert_eq!(bal(&x, "ETH"), (d("990"), d("10")));
        fill(&mut x, &id, Some("4")).unwrap();
        // 4 × 1700 = 6800, fee 6.8.
        assert_eq!(bal(&x, "ETH"), (d("990"), d("6")));
        assert_eq!(bal(&x, "USDC"), (d("10006793.2"), d("0")));
        // Below its limit: nothing fills.
        assert!(market(&mut x, "ETH-USDC", "1699.99").is_empty());
        let filled = market(&mut x, "ETH-USDC", "1700");
        assert_eq!(filled, vec![(id.clone(), d("6"), d("10.2"))]);
        assert_eq!(bal(&x, "ETH"), (d("990"), d("0")));
        assert_eq!(bal(&x, "USDC"), (d("10016983"), d("0")));
        let o = x.order(&id).unwrap();
        assert_eq!(
            (o.status, o.filled, o.average_price()),
            (Status::Filled, d("10"), Some(d("1700")))
        );
    }

    #[test]
    fn market_moves_fill_crossing_orders_of_their_pair_at_their_own_limits() {
        let mut x = Exchange::new(d("0.001"));
        let buy_hi = place(&mut x, req("BTC-USDC", "limit", "buy", "1", Some("23000"))).unwrap();
        let buy_lo = place(&mut x, req("BTC-USDC", "limit", "buy", "1", Some("22000"))).unwrap();
        let sell = place(&mut x, req("BTC-USDC", "limit", "sell", "2", Some("25000"))).unwrap();
        let other = place(
            &mut x,
            req("BTC-EUR", "limit", "buy", "0.001", Some("23500")),
        )
        .unwrap();
        // Down to 22500: the 23000 buy fills at 23000 (not 22500).
        let f = market(&mut x, "BTC-USDC", "22500");
        assert_eq!(f, vec![(buy_hi.clone(), d("1"), d("23"))]);
        assert_eq!(x.order(&buy_hi).unwrap().average_price(), Some(d("23000")));
        assert_eq!(x.order(&other).unwrap().status, Status::Open);
        assert_eq!(x.quote(&"BTC-USDC".parse().unwrap()).ask, d("22511.25"));
        assert_eq!(x.quote(&"BTC-EUR".parse().unwrap()).reference, d("24000"));
        // New placements meet the new quotes.
        let taker = place(
            &mut x,
            req("BTC-USDC", "limit", "buy", "1", Some("22511.25")),
        )
        .unwrap();
        assert_eq!(
            x.order(&taker).unwrap().average_price(),
            Some(d("22511.25"))
        );
        // Up to 25000: the sell fills whole; the low buy stays.
        let f = market(&mut x, "BTC-USDC", "25000");
        assert_eq!(f, vec![(sell.clone(), d("2"), d("50"))]);
        assert_eq!(x.order(&buy_lo).unwrap().status, Status::Open);
        // USDC: -22000 locked (low buy), -23000 -23 (high buy),
        // -22511.25 -22.51125 (taker), +50000 -50 (sell).
        assert_eq!(
            bal(&x, "USDC"),
            (
                d("10000000") - d("22000") - d("23023") - d("22533.76125") + d("49950"),
                d("22000")
            )
        );
        assert_eq!(bal(&x, "BTC"), (d("1000"), d("0")));
        // Refusals.
        assert!(matches!(
            x.decide_market("btc", "1", 1),
            Err(ControlRefusal::Invalid(_))
        ));
        assert!(matches!(
            x.decide_market("BTC-USDC", "0", 1),
            Err(ControlRefusal::Invalid(_))
        ));
        assert!(matches!(
            x.decide_market("BTC-USDC", "1e3", 1),
            Err(ControlRefusal::Invalid(_))
        ));
    }

    #[test]
    fn deposits_credit_available() {
        let mut x = Exchange::new(d("0.001"));
        let ev = x.decide_deposit("USDC", "1000.50", 1).unwrap();
        x.apply(ev).unwrap();
        assert_eq!(bal(&x, "USDC"), (d("10001000.5"), d("0")));
        let ev = x.decide_deposit("DOGE", "5", 1).unwrap();
        x.apply(ev).unwrap();
        assert_eq!(bal(&x, "DOGE"), (d("1005"), d("0")));
        for (c, a) in [("usdc", "1"), ("USDC", "0"), ("USDC", "-1"), ("USDC", "x")] {
            assert!(
                matches!(x.decide_deposit(c, a, 1), Err(ControlRefusal::Invalid(_))),
                "{c} {a}"
            );
        }
    }

    /// Events carry their fees: a replay under another fee rate gives
    /// the same books.
    #[test]
    fn events_replay_to_the_same_books_whatever_the_fee_rate() {
        let mut x = Exchange::new(d("0.001"));
        let mut log = Vec::new();
        let mut run = |x: &mut Exchange, ev: Event| {
            log.push(serde_json::to_string(&ev).unwrap());
            x.apply(ev).unwrap();
        };
        let ev = x
            .decide_place(
                req("BTC-USDC", "limit", "buy", "1", Some("23000")),
                "{}".into(),
                1,
            )
            .unwrap();
        run(&mut x, ev);
        let id = x.last_order().unwrap().id.clone();
        let ev = x.decide_fill(&id, Some("0.1"), 2).unwrap();
        run(&mut x, ev);
        let ev = x.decide_market("BTC-USDC", "22000", 3).unwrap();
        run(&mut x, ev);
        let ev = x.decide_deposit("USDC", "7", 4).unwrap();
        run(&mut x, ev);
        let ev = x
            .decide_place(
                req("BTC-USDC", "market", "sell", "0.5", None),
                "{}".into(),
                5,
            )
            .unwrap();
        run(&mut x, ev);
        assert!(
            log[1].starts_with(r#"{"event":"fill","id":"T0000000001","orderId":"O0000000001""#),
            "{}",
            log[1]
        );
        assert!(
            log[2].starts_with(r#"{"event":"market","pair":"BTC-USDC","price":"22000""#),
            "{}",
            log[2]
        );
        assert!(
            log[3].starts_with(r#"{"event":"deposit","currency":"USDC","amount":"7""#),
            "{}",
            log[3]
        );
        let mut y = Exchange::new(d("0.5"));
        for line in &log {
            y.apply(serde_json::from_str(line).unwrap()).unwrap();
        }
        assert_eq!(y.balances, x.balances);
        assert_eq!(y.references, x.references);
        let views = |e: &Exchange| serde_json::to_string(&e.all_trades()).unwrap();
        assert_eq!(views(&y), views(&x));
        assert_eq!(y.next_trade, 4);
        // A fill that does not fit the books is refused on replay.
        let mut z = Exchange::new(d("0.001"));
        assert!(z.apply(serde_json::from_str(&log[1]).unwrap()).is_err());
    }
}
