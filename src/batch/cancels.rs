//! The `cancels:` list of a batch: what must not be live on the exchange.
//!
//! ```yaml
//! cancels:
//!   - { id: drop-low, order: btc-bid-low }             # an order of this batch
//!   - { id: drop-old, order: rebalance-2026-10/buy-1 } # an order of another batch in this journal
//!   - { id: drop-x, exchange_order_id: O0000000042 }   # any order of the account
//!   - { id: clear-btc, all_open: { pair: BTC-USDC } }  # every open order of the account on a pair
//! ```
//!
//! Cancel ids share the namespace of the batch's order and query ids: a
//! cancel id may not be the id of any order or query of the batch. Errors
//! are positioned like the rest of the batch (`cancels[1] (drop-old).order`).

use std::collections::HashMap;
use std::fmt;

use super::tree::Node;

use super::{
    item_label, node_pos, peek_id, shown, valid_id, Check, Fields, IdKind, OrderSpec, Pos,
    QuerySpec,
};
use crate::model::Pair;

const CANCEL_KEYS: &[&str] = &["id", "order", "exchange_order_id", "all_open"];
const CANCEL_TARGETS: &[&str] = &["order", "exchange_order_id", "all_open"];
const ALL_OPEN_KEYS: &[&str] = &["pair"];

const CANCEL_ID: IdKind = IdKind {
    list: "cancels",
    noun: "cancel",
    example: "drop-low",
    missing: "missing `id`; give the cancel an id like `id: drop-low`, unique within the batch (orders, queries and cancels share ids) and kept the same across reruns (it is how hqx knows a cancel was already done)",
    rule: "cancel ids must be unique within the batch",
};

/// One cancel of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelSpec {
    /// The cancel's id, unique within the batch (orders, queries, cancels).
    pub id: String,
    /// What must not be live.
    pub target: CancelTarget,
    /// The 1-based line where the cancel starts in the file.
    pub line: usize,
}

/// What a cancel is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelTarget {
    /// A journal order: `order: id` (this batch) or `order: batch/id`.
    Order {
        /// The order's batch (this batch's id when written without one).
        batch: String,
        /// The order's id within its batch.
        order: String,
    },
    /// Any order of the account, by the exchange's id.
    ExchangeOrderId(String),
    /// Every order of the account open on a pair when the run starts.
    AllOpen {
        /// The pair.
        pair: Pair,
    },
}

impl CancelTarget {
    /// The journal's spelling of the kind: `order`, `exchange_order_id`, `all_open`.
    pub fn kind(&self) -> &'static str {
        match self {
            CancelTarget::Order { .. } => "order",
            CancelTarget::ExchangeOrderId(_) => "exchange_order_id",
            CancelTarget::AllOpen { .. } => "all_open",
        }
    }

    /// The journal's text of the target: `batch/order`, the exchange id, or the pair.
    pub fn text(&self) -> String {
        match self {
            CancelTarget::Order { batch, order } => format!("{batch}/{order}"),
            CancelTarget::ExchangeOrderId(id) => id.clone(),
            CancelTarget::AllOpen { pair } => pair.as_str().to_string(),
        }
    }
}

impl fmt::Display for CancelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelTarget::Order { batch, order } => write!(f, "order {batch}/{order}"),
            CancelTarget::ExchangeOrderId(id) => write!(f, "exchange order {id}"),
            CancelTarget::AllOpen { pair } => write!(f, "all open orders on {pair}"),
        }
    }
}

impl Check<'_> {
    /// The cancels: how many entries there were, and those that are valid.
    /// `batch` is this batch's id (if valid); `orders` and `queries` are
    /// the valid ones, for the shared id namespace and `order:` targets.
    pub(super) fn cancels(
        &mut self,
        f: super::Field<'_>,
        batch: Option<&str>,
        orders: &[OrderSpec],
        queries: &[QuerySpec],
    ) -> Option<(usize, Vec<CancelSpec>)> {
        let items = self.list(f, "{ id: drop-low, order: btc-bid-low }")?;
        let mut seen: HashMap<&str, (usize, Pos)> = HashMap::new();
        let mut out = Vec::new();
        let taken: HashMap<&str, String> = orders
            .iter()
            .map(|o| {
                (
                    o.id.as_str(),
                    format!("order `{}` at line {}", o.id, o.line),
                )
            })
            .chain(queries.iter().map(|q| {
                (
                    q.id.as_str(),
                    format!("query `{}` at line {}", q.id, q.line),
                )
            }))
            .collect();
        for (i, node) in items.iter().enumerate() {
            if let Some(spec) = self.cancel(i, node, &mut seen, batch, orders, &taken) {
                out.push(spec);
            }
        }
        Some((items.len(), out))
    }

    fn cancel<'a>(
        &mut self,
        i: usize,
        node: &'a Node,
        seen: &mut HashMap<&'a str, (usize, Pos)>,
        batch: Option<&str>,
        orders: &[OrderSpec],
        taken: &HashMap<&str, String>,
    ) -> Option<CancelSpec> {
        let before = self.errors.len();
        let pos = node_pos(node);
        let Some(map) = node.as_mapping() else {
            self.err(
                pos,
                &item_label("cancels", i, None),
                "each cancel must be a mapping with an id and a target, like `- { id: drop-low, order: btc-bid-low }`".into(),
            );
            return None;
        };
        let label = item_label("cancels", i, peek_id(map));
        let at = |name: &str| format!("{label}.{name}");
        let fields = self.fields(map, CANCEL_KEYS, &label, "a cancel");

        let id = self.unique_id(&fields, i, pos, &label, seen, &CANCEL_ID);
        if let Some(id) = id {
            if let Some(other) = taken.get(id) {
                let id_pos = fields.get("id").map(|f| f.value_pos()).unwrap_or(pos);
                self.err(
                    id_pos,
                    &at("id"),
                    format!("cancel id `{id}` is already used by {other}; orders, queries and cancels of a batch share ids: rename the cancel"),
                );
            }
        }

        let targets: Vec<(&str, super::Field<'_>)> = CANCEL_TARGETS
            .iter()
            .filter_map(|k| fields.get(k).map(|f| (*k, f)))
            .collect();
        let target = match targets.as_slice() {
            [] if CANCEL_TARGETS.iter().any(|k| fields.misspelt(k)) => None,
            [] => {
                self.err(
                    pos,
                    &label,
                    "the cancel does not say what to cancel; add one of `order: btc-bid-low` (an order of this batch), `order: other-batch/buy-1`, `exchange_order_id: O0000000042` or `all_open: { pair: BTC-USDC }`".into(),
                );
                None
            }
            [(name, f)] => self.cancel_target(name, *f, &at(name), batch, orders),
            [(first, _), (second, f), ..] => {
                self.err(
                    f.key_pos(),
                    &at(second),
                    format!("a cancel has one target, but this one has both `{first}` and `{second}`; split it into two cancels, each with its own id"),
                );
                None
            }
        };

        if self.errors.len() > before {
            return None;
        }
        Some(CancelSpec {
            id: id?.to_string(),
            target: target?,
            line: pos.line,
        })
    }

    fn cancel_target(
        &mut self,
        name: &str,
        f: super::Field<'_>,
        at: &str,
        batch: Option<&str>,
        orders: &[OrderSpec],
    ) -> Option<CancelTarget> {
        match name {
            "order" => {
                let s = self.scalar(at, f, "btc-bid-low")?;
                let (b, o) = match s.text.split_once('/') {
                    Some((b, o)) => (Some(b), o),
                    None => (None, s.text),
                };
                if !b.is_none_or(valid_id) || !valid_id(o) {
                    self.err(
                        s.pos,
                        at,
                        format!(
                            "`{}` is not an order; write an order id of this batch (`order: btc-bid-low`) or another batch's id and order id (`order: rebalance-2026-10/buy-1`), each 1 to 64 letters, digits, `.`, `_`, `:` or `-`",
                            shown(s.text)
                        ),
                    );
                    return None;
                }
                let this = b.is_none() || b == batch;
                if this && !orders.iter().any(|x| x.id == o) {
                    self.err(
                        s.pos,
                        at,
                        format!(
                            "this batch has no order `{}`; name one of its orders, or write `order: <batch>/<order>` for an order of another batch",
                            shown(o)
                        ),
                    );
                    return None;
                }
                let batch = match (b, batch) {
                    (Some(b), _) | (None, Some(b)) => b.to_string(),
                    // The batch id is invalid: reported already.
                    (None, None) => return None,
                };
                Some(CancelTarget::Order {
                    batch,
                    order: o.to_string(),
                })
            }
            "exchange_order_id" => {
                let s = self.scalar(at, f, "O0000000042")?;
                let ok = !s.text.is_empty()
                    && s.text.len() <= 128
                    && s.text.bytes().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-')
                    });
                if !ok {
                    self.err(
                        s.pos,
                        at,
                        format!(
                            "`{}` is not an exchange order id; write the id the exchange gave the order (1 to 128 letters, digits, `.`, `_`, `:` or `-`), like `exchange_order_id: O0000000042`",
                            shown(s.text)
                        ),
                    );
                    return None;
                }
                Some(CancelTarget::ExchangeOrderId(s.text.to_string()))
            }
            _ => {
                let example = "{ pair: BTC-USDC }";
                let m = self
                    .kind_map(name, f, at, false, example)?
                    .expect("null refused");
                let fields: Fields<'_> = self.fields(m, ALL_OPEN_KEYS, at, "`all_open`");
                match fields.get("pair") {
                    None if fields.misspelt("pair") => None,
                    None => {
                        self.err(
                            node_pos(f.value),
                            &format!("{at}.pair"),
                            "missing `pair`; `all_open` cancels every open order of the account on one pair, like `all_open: { pair: BTC-USDC }`".into(),
                        );
                        None
                    }
                    Some(p) => self
                        .value::<Pair>(&format!("{at}.pair"), p, "BTC-USDC")
                        .map(|pair| CancelTarget::AllOpen { pair }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, BatchError};

    const HEAD: &str = "version: 1\nbatch: b\norders:\n  - { id: bid, pair: BTC-USDC, side: buy, type: limit, quantity: \"1\", price: \"10\" }\nqueries:\n  - { id: funds, balances: {} }\ncancels:\n";

    fn errors(cancels: &str) -> Vec<BatchError> {
        match parse(Path::new("b.yaml"), &format!("{HEAD}{cancels}")) {
            Ok(b) => panic!("expected errors, got {b:?}"),
            Err(e) => e.0,
        }
    }

    fn at(e: &BatchError) -> (usize, usize, &str) {
        (e.line, e.column, e.field.as_str())
    }

    #[test]
    fn every_target_parses_and_existing_files_need_no_cancels() {
        let b = parse(
            Path::new("b.yaml"),
            &format!(
                "{HEAD}  - {{ id: drop-low, order: bid }}\n  - {{ id: drop-old, order: other-1/buy-1 }}\n  - {{ id: drop-x, exchange_order_id: O0000000042 }}\n  - id: clear-btc\n    all_open: {{ pair: BTC-USDC }}\n"
            ),
        )
        .unwrap();
        let t: Vec<(&str, String, usize)> = b
            .cancels
            .iter()
            .map(|c| (c.id.as_str(), c.target.to_string(), c.line))
            .collect();
        assert_eq!(
            t,
            vec![
                ("drop-low", "order b/bid".into(), 8),
                ("drop-old", "order other-1/buy-1".into(), 9),
                ("drop-x", "exchange order O0000000042".into(), 10),
                ("clear-btc", "all open orders on BTC-USDC".into(), 11),
            ]
        );
        // A batch of cancels alone is a batch.
        let b = parse(
            Path::new("b.yaml"),
            "version: 1\nbatch: b\ncancels:\n  - { id: c, exchange_order_id: X1 }\n",
        )
        .unwrap();
        assert!(b.orders.is_empty() && b.cancels.len() == 1);
    }

    #[test]
    fn errors_name_line_column_field_and_what_to_do() {
        let e = errors(
            "  - { id: bid, order: bid }\n  - { id: funds, exchange_order_id: X }\n  - { id: c1, order: nope }\n  - { id: c2, order: \"a/b/c\" }\n  - { id: c3, exchange_order_id: \"has space\" }\n  - { id: c4, all_open: { pair: btc } }\n  - { id: c5, all_open: {} }\n  - { id: c6 }\n  - { id: c7, order: bid, all_open: { pair: BTC-USDC } }\n  - { id: c1, exchange_order_id: X }\n  - { id: c8, ordr: bid }\n",
        );
        let got: Vec<(usize, usize, &str)> = e.iter().map(at).collect();
        assert_eq!(
            got,
            vec![
                (8, 11, "cancels[0] (bid).id"),
                (9, 11, "cancels[1] (funds).id"),
                (10, 22, "cancels[2] (c1).order"),
                (11, 22, "cancels[3] (c2).order"),
                (12, 34, "cancels[4] (c3).exchange_order_id"),
                (13, 33, "cancels[5] (c4).all_open.pair"),
                (14, 25, "cancels[6] (c5).all_open.pair"),
                (15, 5, "cancels[7] (c6)"),
                (16, 27, "cancels[8] (c7).all_open"),
                (17, 11, "cancels[9] (c1).id"),
                (18, 15, "cancels[10] (c8).ordr"),
            ],
            "{e:#?}"
        );
        assert!(e[0]
            .message
            .contains("already used by order `bid` at line 4"));
        assert!(e[1]
            .message
            .contains("already used by query `funds` at line 6"));
        assert!(e[2].message.contains("this batch has no order `nope`"));
        assert!(e[3].message.contains("`order: rebalance-2026-10/buy-1`"));
        assert!(e[7].message.contains("does not say what to cancel"));
        assert!(e[8].message.contains("split it into two cancels"));
        assert!(e[9].message.contains("cancel ids must be unique"));
        assert!(e[10].message.contains("order"));
    }
}
