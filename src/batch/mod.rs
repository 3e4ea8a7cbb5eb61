//! The batch file: YAML in, validated domain values out.
//!
//! A batch is read in two stages, and nothing outside this module ever sees
//! YAML:
//!
//! 1. **Read**: `yaml-rust2`'s parser events become a compact node tree
//!    (`tree`) in which every key and value keeps its line and column, and
//!    every scalar keeps the exact text it was written as. YAML syntax errors, duplicate keys,
//!    anchors, tags and extra documents stop here, each with its position.
//! 2. **Validate**: the tree becomes a [`Batch`] of domain types from
//!    [`crate::model`], with defaults applied and ids checked. Every problem
//!    is collected rather than only the first, each with file, line, column
//!    and field, so one `hqx validate` shows everything there is to fix.
//!
//! Why not deserialize straight into structs: a serde derive loses positions,
//! stops at the first error, and would read `price: 24321.00` as a float and
//! hand the model `24321`, so hqx would sign text the user never wrote. The
//! node tree keeps `24321.00` as written; [`Amount`](crate::model::Amount)
//! validates it and keeps it.
//!
//! # Format, version 1
//!
//! ```yaml
//! version: 1
//! batch: rebalance-2026-11        # the batch's id: its idempotency namespace
//! defaults: { pair: BTC-USDC, type: limit }   # optional; may set pair, type, side
//! orders:
//!   - id: buy-1                   # unique within the batch, stable across reruns
//!     side: buy
//!     quantity: "2"
//!     price: "24321.00"
//! queries:
//!   - id: fills
//!     trades: { pair: BTC-USDC, from: 2026-11-01T00:00:00Z, limit: 100 }
//!   - id: open
//!     orders: { status: open }
//!   - id: funds
//!     balances: {}
//!   - id: addr
//!     deposit_address: { currency: USDC, network: ERC20 }
//! limits: { max_order_notional: "50000", price_band: "5%" }  # optional: see crate::limits
//! ```
//!
//! Fields in errors are written `orders[1] (buy-1).price`: the index counts
//! from 0 in file order, and the id follows in parentheses when it is valid.
//!
//! This file holds the batch's types, [`load`] and [`parse`], and the
//! top-level keys (`version`, `batch`, and which lists there are). The rest:
//! `tree` and `yaml` (stage 1, and the positioned readers stage 2 uses), `ids` (the id
//! rule and item labels), `orders` (`defaults` and `orders`), `queries`,
//! `cancels`, and `suggest` ("did you mean" for unknown keys).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::model::{OrderIntent, Pair};

mod cancels;
mod ids;
mod orders;
mod queries;
mod suggest;
mod tree;
mod yaml;

pub use cancels::{CancelSpec, CancelTarget};
use ids::{item_label, peek_id, valid_id, Dotted, IdKind, Label};
use orders::{Defaults, Preset};
use suggest::unknown_key;
pub(crate) use tree::{MappingNode, Node};
pub use yaml::Pos;
pub(crate) use yaml::{is_null, node_pos, read_tree, shown, Check, Field, Fields, Scalar};

/// The only batch format version this hqx reads (`version: 1`).
pub const FORMAT_VERSION: u32 = 1;

/// The most orders one batch may hold.
pub const MAX_ORDERS: usize = 100_000;

/// The largest batch file [`load`] reads, in bytes (64 MiB: far above
/// [`MAX_ORDERS`] orders with comments).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The largest page size a `trades` query may ask for (`limit`).
pub const MAX_TRADES_LIMIT: u32 = 500;

/// How many errors [`BatchErrors`] prints before summarising the rest.
const MAX_SHOWN_ERRORS: usize = 100;

const TOP_KEYS: &[&str] = &[
    "version", "batch", "defaults", "orders", "queries", "limits", "cancels",
];

/// A validated batch: everything the executor needs, nothing of the YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The batch's id (`batch:`), the namespace of its order ids.
    pub id: String,
    /// The file the batch was read from, as given.
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub file_sha256: String,
    /// The orders, in file order.
    pub orders: Vec<OrderSpec>,
    /// The queries, in file order.
    pub queries: Vec<QuerySpec>,
    /// The cancels, in file order (run before any placement).
    pub cancels: Vec<CancelSpec>,
    /// The batch's own pre-trade limits (`limits:`), if it sets any.
    pub limits: Option<crate::limits::Limits>,
}

/// One order of a batch, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSpec {
    /// The order's id, unique within the batch and stable across reruns.
    pub id: String,
    /// What the order asks the exchange to do.
    pub intent: OrderIntent,
    /// The 1-based line where the order starts in the file.
    pub line: usize,
    /// Where its fields are written, for messages about them.
    pub marks: OrderMarks,
}

/// Where an order's fields are in the batch file. A field the order takes
/// from `defaults` (or, for a market order, the price it does not have) is
/// marked where the order starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderMarks {
    /// The `pair` value.
    pub pair: Pos,
    /// The `quantity` value.
    pub quantity: Pos,
    /// The `price` value.
    pub price: Pos,
}

/// One query of a batch: something to read from the exchange and journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySpec {
    /// The query's id, unique among the batch's queries.
    pub id: String,
    /// What to ask.
    pub kind: QueryKind,
    /// The 1-based line where the query starts in the file.
    pub line: usize,
}

/// What a query asks the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// My trades (`trades`), optionally filtered.
    Trades {
        /// Only this pair.
        pair: Option<Pair>,
        /// Only trades at or after this time, in ms since the epoch.
        from_ms: Option<i64>,
        /// Only trades at or before this time, in ms since the epoch.
        to_ms: Option<i64>,
        /// Page size, 1 to [`MAX_TRADES_LIMIT`].
        limit: Option<u32>,
    },
    /// My orders (`orders`), optionally filtered.
    Orders {
        /// Only this pair.
        pair: Option<Pair>,
        /// Only orders in this state ([`OrderStatusFilter::All`] if not given).
        status: OrderStatusFilter,
    },
    /// My balances (`balances`).
    Balances,
    /// A deposit address (`deposit_address`).
    DepositAddress {
        /// The asset to deposit, e.g. `USDC`.
        currency: String,
        /// The chain to deposit on, e.g. `ERC20`.
        network: String,
    },
}

/// Which orders an `orders` query lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatusFilter {
    /// Orders still resting on the book.
    Open,
    /// Orders filled completely.
    Filled,
    /// Orders cancelled.
    Cancelled,
    /// Every order (the default).
    All,
}

impl OrderStatusFilter {
    /// The wire spelling: `open`, `filled`, `cancelled` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatusFilter::Open => "open",
            OrderStatusFilter::Filled => "filled",
            OrderStatusFilter::Cancelled => "cancelled",
            OrderStatusFilter::All => "all",
        }
    }
}

impl FromStr for OrderStatusFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(OrderStatusFilter::Open),
            "filled" => Ok(OrderStatusFilter::Filled),
            "cancelled" => Ok(OrderStatusFilter::Cancelled),
            "all" => Ok(OrderStatusFilter::All),
            other => Err(format!(
                "status must be `open`, `filled`, `cancelled` or `all`, not `{}`",
                shown(other)
            )),
        }
    }
}

impl fmt::Display for OrderStatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with a batch file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// The batch file.
    pub path: PathBuf,
    /// 1-based line; 0 when the problem is the file as a whole (unreadable).
    pub line: usize,
    /// 1-based column; 0 together with `line` 0.
    pub column: usize,
    /// The field at fault, like `orders[1] (buy-1).price`; empty when the
    /// problem is not about one field (a YAML syntax error, an unreadable file).
    pub field: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for BatchError {}

/// Every problem found in a batch file, in file order. Never empty when
/// returned by [`load`] or [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchErrors(pub Vec<BatchError>);

impl fmt::Display for BatchErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.0.iter().take(MAX_SHOWN_ERRORS) {
            writeln!(f, "{e}")?;
        }
        if self.0.len() > MAX_SHOWN_ERRORS {
            writeln!(
                f,
                "... and {} more not shown; fix the ones above and validate again",
                self.0.len() - MAX_SHOWN_ERRORS
            )?;
        }
        let n = self.0.len();
        let path = self
            .0
            .first()
            .map(|e| e.path.display().to_string())
            .unwrap_or_else(|| "the batch file".to_string());
        write!(
            f,
            "{n} error{} in {path}; nothing was sent or written",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for BatchErrors {}

/// Read and validate the batch file at `path`.
///
/// An unreadable, oversized or non-UTF-8 file is one [`BatchError`] (at
/// line 0 unless a position is known); otherwise this is [`parse`].
pub fn load(path: &Path) -> Result<Batch, BatchErrors> {
    let whole_file = |line: usize, column: usize, message: String| {
        BatchErrors(vec![BatchError {
            path: path.to_path_buf(),
            line,
            column,
            field: String::new(),
            message,
        }])
    };
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        // Sized up front: grown by doubling, a 10 MB file left 30 MB of
        // discarded buffers resident.
        let size = f.metadata().map_or(0, |m| m.len()).min(MAX_FILE_BYTES + 1);
        bytes.reserve_exact(usize::try_from(size).unwrap_or(0) + 1);
        f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        return Err(whole_file(
            0,
            0,
            format!("cannot read the batch file: {e}; check the path and that you may read it"),
        ));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(whole_file(
            0,
            0,
            format!(
                "the file is larger than {} MiB; split it into several batch files, each with its own `batch` id",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse(path, &text),
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[good];
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..good]);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(whole_file(
                line,
                column,
                format!("the file is not UTF-8 text (byte 0x{bad:02x} here); save it as UTF-8"),
            ))
        }
    }
}

/// Validate batch `text` as if read from `path` (used for messages and
/// [`Batch::path`]; the file is not touched). The SHA-256 is of `text`.
pub fn parse(path: &Path, text: &str) -> Result<Batch, BatchErrors> {
    let mut check = Check {
        path,
        errors: Vec::new(),
    };
    // Stage 1: text to a positioned node tree.
    let Some(root) = read_tree(text, &mut check) else {
        return Err(check.into_errors());
    };
    // Stage 2: node tree to domain values.
    let checked = check.batch(&root);
    let limits = crate::limits::from_batch(&mut check, &root);
    match checked {
        Some((id, orders, queries, cancels)) if check.errors.is_empty() => Ok(Batch {
            id,
            path: path.to_path_buf(),
            file_sha256: hex::encode(Sha256::digest(text.as_bytes())),
            orders,
            queries,
            cancels,
            limits,
        }),
        _ => Err(check.into_errors()),
    }
}

impl Check<'_> {
    /// The whole batch: its id, orders and queries.
    #[allow(clippy::type_complexity)]
    fn batch(
        &mut self,
        root: &Node,
    ) -> Option<(String, Vec<OrderSpec>, Vec<QuerySpec>, Vec<CancelSpec>)> {
        let Some(map) = root.as_mapping() else {
            self.err(
                node_pos(root),
                "",
                "a batch file must be a YAML mapping of keys, starting with `version: 1` and `batch: <id>`".into(),
            );
            return None;
        };
        let top = node_pos(root);
        let fields = self.fields(map, TOP_KEYS, "", "a batch file");

        match fields.get("version") {
            None if fields.misspelt("version") => {}
            None => self.err(
                top,
                "version",
                "missing `version`; add `version: 1` as the first line".into(),
            ),
            Some(f) => self.version(f),
        }

        let id = match fields.get("batch") {
            None if fields.misspelt("batch") => None,
            None => {
                self.err(
                    top,
                    "batch",
                    "missing `batch`; add `batch: <id>`, a name for this batch (like `rebalance-2026-11`) that stays the same across reruns: order ids are unique within it".into(),
                );
                None
            }
            Some(f) => self
                .id("batch", f, "rebalance-2026-11")
                .map(|(s, _)| s.to_string()),
        };

        let defaults = match fields.get("defaults") {
            None => Defaults {
                pair: Preset::Unset,
                side: Preset::Unset,
                kind: Preset::Unset,
            },
            Some(f) => self.defaults(f),
        };

        let orders = fields.get("orders").map(|f| self.orders(f, &defaults));
        let queries = fields.get("queries").map(|f| self.queries(f));
        let empty = |x: &Option<Option<usize>>| matches!(x, None | Some(Some(0)));
        let (order_count, query_count) = (
            orders.as_ref().map(|o| o.as_ref().map(|(n, _)| *n)),
            queries.as_ref().map(|q| q.as_ref().map(|(n, _)| *n)),
        );
        let misspelt =
            fields.misspelt("orders") || fields.misspelt("queries") || fields.misspelt("cancels");
        let orders = orders.flatten().map(|(_, o)| o).unwrap_or_default();
        let queries = queries.flatten().map(|(_, q)| q).unwrap_or_default();
        let cancels = fields
            .get("cancels")
            .map(|f| self.cancels(f, id.as_deref(), &orders, &queries));
        let cancel_count = cancels.as_ref().map(|c| c.as_ref().map(|(n, _)| *n));
        if empty(&order_count) && empty(&query_count) && empty(&cancel_count) && !misspelt {
            self.err(
                top,
                "orders",
                "the batch has no orders, queries or cancels; add at least one under `orders:`, `queries:` or `cancels:`".into(),
            );
        }
        let cancels = cancels.flatten().map(|(_, c)| c).unwrap_or_default();
        Some((id?, orders, queries, cancels))
    }

    fn version(&mut self, f: Field<'_>) {
        let Some(s) = self.scalar("version", f, "1") else {
            return;
        };
        if s.text == "1" && s.plain {
            return;
        }
        let message = if s.text.trim() == "1" {
            "`version` must be the number 1, not the text \"1\"; write `version: 1` without quotes"
                .to_string()
        } else {
            format!(
                "unsupported batch format version `{}`; this hqx reads version {FORMAT_VERSION}: write `version: 1` and use the fields described in the README",
                shown(s.text)
            )
        };
        self.err(s.pos, "version", message);
    }
}

#[cfg(test)]
mod tests;
