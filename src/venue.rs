//! Everything hqx assumes about the exchange that Haqqex does not publish,
//! in one place.
//!
//! The defaults here are the contract's "Assumed" table (see the README's
//! "Assumptions" section); the built-in sandbox implements exactly them.
//! Any of them can be overridden without recompiling by a YAML venue
//! profile passed with `--venue FILE` (or `HQX_VENUE`), e.g.:
//!
//! ```yaml
//! rate: 10
//! burst: 10
//! paths: { my_orders: /trading/api/v2/orders/my }
//! ```

use std::path::Path;

use serde::Deserialize;

/// The production base URL, the one fact that is published.
pub const PRODUCTION_BASE_URL: &str = "https://backend.prod.haqqex.tech";

/// Request paths. The first two are published; the rest are assumed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// `POST`: place an order (published).
    pub place_order: String,
    /// `GET`: my trades (published path; the query parameters are assumed).
    pub my_trades: String,
    /// `GET`: my orders, query `pair`, `status`, `from`, `to` (on the
    /// creation time, ms, inclusive), `limit`, `page`; oldest first
    /// (assumed, like the paging: see [`Venue::orders_page_limit`]).
    pub my_orders: String,
    /// `GET` one order / `DELETE` to cancel; `{id}` is replaced (assumed).
    pub order_by_id: String,
    /// `GET`: balances (assumed).
    pub balances: String,
    /// `POST`: create a deposit address (assumed).
    pub deposit_address: String,
    /// `GET`: a pair's reference price with the best bid and ask, query
    /// `pair`, answering `{pair, price, bid, ask, timestamp}` (assumed;
    /// used for pre-trade price bands).
    pub ticker: String,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            place_order: "/trading/api/v1/order".into(),
            my_trades: "/trading/api/v1/trades/my".into(),
            my_orders: "/trading/api/v1/orders/my".into(),
            order_by_id: "/trading/api/v1/order/{id}".into(),
            balances: "/account/api/v1/balances".into(),
            deposit_address: "/account/api/v1/deposit/address".into(),
            ticker: "/trading/api/v1/ticker".into(),
        }
    }
}

impl Paths {
    /// The path of one order.
    pub fn order(&self, id: &str) -> String {
        self.order_by_id.replace("{id}", id)
    }
}

/// The venue profile: assumed paths, limits and behaviours.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Venue {
    /// Request paths.
    pub paths: Paths,
    /// Requests per second hqx allows itself (not published; conservative).
    pub rate: u32,
    /// Burst size for the rate limiter.
    pub burst: u32,
    /// Largest `limit` the trades endpoint accepts.
    pub trades_page_limit: u32,
    /// Largest `limit` the my-orders endpoint accepts (assumed, as is its
    /// paging: `page` counts from 1; oldest first by creation time, then
    /// id, so orders created while a client pages append at the end and
    /// never shift earlier pages; without `limit`, some default page size
    /// (hqx always sends `limit`); the answer is `{orders, page, limit,
    /// total}`).
    pub orders_page_limit: u32,
    /// How far the exchange's clock may be from ours before a signed
    /// request is refused, in milliseconds (the sandbox enforces this).
    pub timestamp_window_ms: u64,
    /// Per-request timeout in milliseconds.
    pub request_timeout_ms: u64,
    /// When set, the exchange is assumed to accept a client order id in
    /// this body field and to return it in order listings; hqx then sends
    /// one and uses it as the primary match when resolving unknown orders.
    /// Not known to exist on Haqqex, so off by default.
    pub client_order_id_field: Option<String>,
    /// Margin, in milliseconds, around an order's send time when looking
    /// for it on the exchange (clock skew between hqx and the exchange).
    pub match_window_ms: u64,
    /// Margin, in milliseconds, around a balance read within which a trade
    /// may or may not be reflected in the balances: how far the exchange's
    /// trade timestamps may be from hqx's clock. 0 assumes they agree (the
    /// sandbox's do); a false `unexplained_balance` right next to a trade
    /// is the sign to raise it. Too large, and a busy account's snapshots
    /// are rarely compared.
    pub balance_skew_ms: u64,
}

impl Default for Venue {
    fn default() -> Self {
        Venue {
            paths: Paths::default(),
            rate: 5,
            burst: 5,
            trades_page_limit: 500,
            orders_page_limit: 500,
            timestamp_window_ms: 30_000,
            request_timeout_ms: 10_000,
            client_order_id_field: None,
            match_window_ms: 60_000,
            balance_skew_ms: 0,
        }
    }
}

impl Venue {
    /// Load a profile: defaults, overridden by the fields the file sets.
    pub fn load(path: &Path) -> Result<Venue, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read venue profile {}: {e}; check the --venue path",
                path.display()
            )
        })?;
        serde_yaml::from_str(&text).map_err(|e| {
            format!(
                "{}: {e}; see the README's \"Assumptions\" section for the fields",
                path.display()
            )
        })
    }
}
