//! The `defaults:` and `orders:` of a batch: each order's fields checked,
//! with pair, side and type taken from `defaults` where the order has none.

use std::collections::HashMap;
use std::str::FromStr;

use super::tree::Node;

use super::{
    is_null, item_label, node_pos, peek_id, Check, Dotted, Field, Fields, IdKind, Label,
    OrderMarks, OrderSpec, Pos, Scalar, MAX_ORDERS,
};
use crate::model::{Amount, OrderIntent, OrderType, Pair, Side};

const DEFAULT_KEYS: &[&str] = &["pair", "type", "side"];
pub(super) const ORDER_KEYS: &[&str] = &["id", "pair", "side", "type", "quantity", "price"];

const ORDER_ID: IdKind = IdKind {
    list: "orders",
    noun: "order",
    example: "buy-1",
    missing: "missing `id`; give the order an id like `id: buy-1`, unique within the batch and kept the same across reruns (it is how hqx knows an order was already placed)",
    rule: "order ids must be unique within the batch",
};

/// A default from `defaults`: absent, usable, or reported as invalid (then
/// orders relying on it report nothing more about it).
pub(super) enum Preset<T> {
    Unset,
    Set(T),
    Broken,
}

pub(super) struct Defaults {
    pub(super) pair: Preset<Pair>,
    pub(super) side: Preset<Side>,
    pub(super) kind: Preset<OrderType>,
}

impl Check<'_> {
    pub(super) fn defaults(&mut self, f: Field<'_>) -> Defaults {
        let mut out = Defaults {
            pair: Preset::Unset,
            side: Preset::Unset,
            kind: Preset::Unset,
        };
        let Some(map) = f.value.as_mapping() else {
            let what = match f.value {
                Node::Scalar(s) if is_null(s) => "has no value",
                Node::Sequence(_) => "is a list",
                _ => "is a single value",
            };
            self.err(
                f.value_pos(),
                "defaults",
                format!("`defaults` {what}; it is a mapping that may set pair, type and side, like `defaults: {{ pair: BTC-USDC, type: limit }}`, or delete it"),
            );
            return out;
        };
        let fields = self.fields(map, DEFAULT_KEYS, "defaults", "`defaults`");
        let preset = |check: &mut Self, name: &str, example: &str| {
            fields.get(name).map(|f| {
                let at = format!("defaults.{name}");
                (check.scalar(&at, f, example), at)
            })
        };
        if let Some((s, at)) = preset(self, "pair", "BTC-USDC") {
            out.pair = self.preset_of(s, &at);
        }
        if let Some((s, at)) = preset(self, "side", "buy") {
            out.side = self.preset_of(s, &at);
        }
        if let Some((s, at)) = preset(self, "type", "limit") {
            out.kind = self.preset_of(s, &at);
        }
        out
    }

    fn preset_of<T: FromStr<Err = String>>(
        &mut self,
        s: Option<Scalar<'_>>,
        at: &str,
    ) -> Preset<T> {
        let Some(s) = s else {
            return Preset::Broken;
        };
        match s.text.parse() {
            Ok(v) => Preset::Set(v),
            Err(message) => {
                self.err(s.pos, at, message);
                Preset::Broken
            }
        }
    }

    /// The orders: how many entries there were, and those that are valid.
    pub(super) fn orders(
        &mut self,
        f: Field<'_>,
        defaults: &Defaults,
    ) -> Option<(usize, Vec<OrderSpec>)> {
        let items = self.list(f, "id: buy-1")?;
        if items.len() > MAX_ORDERS {
            self.err(
                f.key_pos(),
                "orders",
                format!(
                    "the batch has {} orders, more than the limit of {MAX_ORDERS}; split it into several batch files, each with its own `batch` id",
                    items.len()
                ),
            );
            return None;
        }
        let mut seen: HashMap<&str, (usize, Pos)> = HashMap::with_capacity(items.len());
        let mut out = Vec::with_capacity(items.len());
        for (i, node) in items.iter().enumerate() {
            if let Some(spec) = self.order(i, node, defaults, &mut seen) {
                out.push(spec);
            }
        }
        Some((items.len(), out))
    }

    fn order<'a>(
        &mut self,
        i: usize,
        node: &'a Node,
        defaults: &Defaults,
        seen: &mut HashMap<&'a str, (usize, Pos)>,
    ) -> Option<OrderSpec> {
        let before = self.errors.len();
        let pos = node_pos(node);
        let Some(map) = node.as_mapping() else {
            self.err(
                pos,
                &item_label("orders", i, None),
                "each order must be a mapping of fields, like `- { id: buy-1, side: buy, quantity: \"2\", price: \"24321.00\" }`".into(),
            );
            return None;
        };
        let label = item_label("orders", i, peek_id(map));
        let at = |name| Dotted(&label, name);
        let fields = self.fields(map, ORDER_KEYS, &label, "an order");

        let id = self.unique_id(&fields, i, pos, &label, seen, &ORDER_ID);

        let pair = self.preset_field(&fields, "pair", &defaults.pair, pos, &label, "BTC-USDC");
        let side = self.preset_field(&fields, "side", &defaults.side, pos, &label, "buy");
        let kind = self.preset_field(&fields, "type", &defaults.kind, pos, &label, "limit");

        let quantity = match fields.get("quantity") {
            None if fields.misspelt("quantity") => None,
            None => {
                self.err(
                    pos,
                    &at("quantity").text(),
                    "missing `quantity`; add the amount of the base asset, like `quantity: \"2\"`"
                        .into(),
                );
                None
            }
            Some(f) => self.value::<Amount>(&at("quantity"), f, "\"2\""),
        };

        let price_field = fields.get("price");
        let price = match (kind, price_field) {
            (Some((OrderType::Market, from_default)), Some(f)) => {
                let whence = if from_default {
                    " (its type comes from `defaults`)"
                } else {
                    ""
                };
                self.err(
                    f.key_pos(),
                    &at("price").text(),
                    format!("a market order{whence} must not have a price; remove `price` or set `type: limit`"),
                );
                None
            }
            (Some((OrderType::Limit, _)), None) if fields.misspelt("price") => None,
            (Some((OrderType::Limit, from_default)), None) => {
                let whence = if from_default {
                    " (its type comes from `defaults`)"
                } else {
                    ""
                };
                self.err(
                    pos,
                    &at("price").text(),
                    format!("a limit order{whence} needs a price; add one in the quote currency, like `price: \"24321.00\"`, or set `type: market`"),
                );
                None
            }
            (_, Some(f)) => self.value::<Amount>(&at("price"), f, "\"24321.00\""),
            (_, None) => None,
        };

        if self.errors.len() > before {
            return None;
        }
        let mark = |name: &str| fields.get(name).map_or(pos, |f| f.value_pos());
        let marks = OrderMarks {
            pair: mark("pair"),
            quantity: mark("quantity"),
            price: mark("price"),
        };
        Some(OrderSpec {
            id: id?.to_string(),
            intent: OrderIntent {
                pair: pair?.0,
                kind: kind?.0,
                side: side?.0,
                quantity: quantity?,
                price,
            },
            line: pos.line,
            marks,
        })
    }

    /// A field an order may take from `defaults`: the value and whether it
    /// came from there. Missing with no default is reported at `pos`.
    fn preset_field<T: FromStr<Err = String> + Clone>(
        &mut self,
        fields: &Fields<'_>,
        name: &str,
        preset: &Preset<T>,
        pos: Pos,
        label: &str,
        example: &str,
    ) -> Option<(T, bool)> {
        let at = Dotted(label, name);
        match (fields.get(name), preset) {
            (Some(f), _) => self.value(&at, f, example).map(|v| (v, false)),
            (None, Preset::Set(v)) => Some((v.clone(), true)),
            (None, Preset::Broken) => None,
            (None, Preset::Unset) if fields.misspelt(name) => None,
            (None, Preset::Unset) => {
                self.err(
                    pos,
                    &at.text(),
                    format!("missing `{name}`; add `{name}: {example}` to this order, or set it for all orders under `defaults`"),
                );
                None
            }
        }
    }
}
