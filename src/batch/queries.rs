//! The `queries:` list of a batch: what to read from the exchange (trades,
//! orders, balances, a deposit address), each query's filters checked.

use std::collections::HashMap;

use super::tree::MappingNode;
use super::tree::Node;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{
    is_null, item_label, node_pos, peek_id, shown, Check, Field, Fields, IdKind, OrderStatusFilter,
    Pos, QueryKind, QuerySpec, MAX_TRADES_LIMIT,
};
use crate::model::Pair;

const QUERY_KINDS: &[&str] = &["trades", "orders", "balances", "deposit_address"];
pub(super) const QUERY_KEYS: &[&str] = &["id", "trades", "orders", "balances", "deposit_address"];
const TRADES_KEYS: &[&str] = &["pair", "from", "to", "limit"];
const ORDERS_QUERY_KEYS: &[&str] = &["pair", "status"];
const DEPOSIT_KEYS: &[&str] = &["currency", "network"];

const QUERY_ID: IdKind = IdKind {
    list: "queries",
    noun: "query",
    example: "funds",
    missing: "missing `id`; give the query an id like `id: funds`, unique among the queries (its result is journaled under it)",
    rule: "query ids must be unique",
};

impl Check<'_> {
    /// The queries: how many entries there were, and those that are valid.
    pub(super) fn queries(&mut self, f: Field<'_>) -> Option<(usize, Vec<QuerySpec>)> {
        let items = self.list(f, "{ id: funds, balances: {} }")?;
        let mut seen: HashMap<&str, (usize, Pos)> = HashMap::new();
        let mut out = Vec::new();
        for (i, node) in items.iter().enumerate() {
            if let Some(spec) = self.query(i, node, &mut seen) {
                out.push(spec);
            }
        }
        Some((items.len(), out))
    }

    fn query<'a>(
        &mut self,
        i: usize,
        node: &'a Node,
        seen: &mut HashMap<&'a str, (usize, Pos)>,
    ) -> Option<QuerySpec> {
        let before = self.errors.len();
        let pos = node_pos(node);
        let Some(map) = node.as_mapping() else {
            self.err(
                pos,
                &item_label("queries", i, None),
                "each query must be a mapping with an id and what to ask, like `- { id: funds, balances: {} }`".into(),
            );
            return None;
        };
        let label = item_label("queries", i, peek_id(map));
        let at = |name: &str| format!("{label}.{name}");
        let fields = self.fields(map, QUERY_KEYS, &label, "a query");

        let id = self.unique_id(&fields, i, pos, &label, seen, &QUERY_ID);

        let kinds: Vec<(&str, Field<'_>)> = QUERY_KINDS
            .iter()
            .filter_map(|k| fields.get(k).map(|f| (*k, f)))
            .collect();
        let kind = match kinds.as_slice() {
            [] if QUERY_KINDS.iter().any(|k| fields.misspelt(k)) => None,
            [] => {
                self.err(
                    pos,
                    &label,
                    "the query does not say what to ask; add one of `trades: {}`, `orders: {}`, `balances: {}` or `deposit_address: { currency: USDC, network: ERC20 }`".into(),
                );
                None
            }
            [(name, f)] => self.query_kind(name, *f, &at(name)),
            [(first, _), (second, f), ..] => {
                self.err(
                    f.key_pos(),
                    &at(second),
                    format!("a query asks one thing, but this one has both `{first}` and `{second}`; split it into two queries, each with its own id"),
                );
                None
            }
        };

        if self.errors.len() > before {
            return None;
        }
        Some(QuerySpec {
            id: id?.to_string(),
            kind: kind?,
            line: pos.line,
        })
    }

    /// The mapping under a query kind; null counts as empty where the kind
    /// has no required fields.
    pub(super) fn kind_map<'a>(
        &mut self,
        name: &str,
        f: Field<'a>,
        at: &str,
        null_ok: bool,
        example: &str,
    ) -> Option<Option<&'a MappingNode<'a>>> {
        match f.value {
            Node::Mapping(m) => Some(Some(m)),
            Node::Scalar(s) if is_null(s) && null_ok => Some(None),
            _ => {
                let or_all = if null_ok {
                    " (or `{}` for no filter)"
                } else {
                    ""
                };
                self.err(
                    f.value_pos(),
                    at,
                    format!("`{name}` takes a mapping, like `{name}: {example}`{or_all}"),
                );
                None
            }
        }
    }

    fn query_kind(&mut self, name: &str, f: Field<'_>, at: &str) -> Option<QueryKind> {
        let before = self.errors.len();
        let kind = match name {
            "trades" => {
                let map = self.kind_map(name, f, at, true, "{ pair: BTC-USDC }")?;
                let fields = match map {
                    Some(m) => self.fields(m, TRADES_KEYS, at, "`trades`"),
                    None => Fields::default(),
                };
                let pair = fields
                    .get("pair")
                    .and_then(|f| self.value::<Pair>(&format!("{at}.pair"), f, "BTC-USDC"));
                let from = fields
                    .get("from")
                    .and_then(|f| self.time(&format!("{at}.from"), f));
                let to = fields
                    .get("to")
                    .and_then(|f| self.time(&format!("{at}.to"), f));
                if let (Some((from, _)), Some((to, to_pos))) = (from, to) {
                    if to < from {
                        self.err(
                            to_pos,
                            &format!("{at}.to"),
                            format!("`to` ({to}) is before `from` ({from}); swap them"),
                        );
                    }
                }
                let limit = fields
                    .get("limit")
                    .and_then(|f| self.limit(&format!("{at}.limit"), f));
                QueryKind::Trades {
                    pair,
                    from_ms: from.map(|(t, _)| t),
                    to_ms: to.map(|(t, _)| t),
                    limit,
                }
            }
            "orders" => {
                let map = self.kind_map(name, f, at, true, "{ status: open }")?;
                let fields = match map {
                    Some(m) => self.fields(m, ORDERS_QUERY_KEYS, at, "`orders` in a query"),
                    None => Fields::default(),
                };
                let pair = fields
                    .get("pair")
                    .and_then(|f| self.value::<Pair>(&format!("{at}.pair"), f, "BTC-USDC"));
                let status = match fields.get("status") {
                    Some(f) => self.value(&format!("{at}.status"), f, "open")?,
                    None => OrderStatusFilter::All,
                };
                QueryKind::Orders { pair, status }
            }
            "balances" => {
                if let Some(m) = self.kind_map(name, f, at, true, "{}")? {
                    self.fields(m, &[], at, "`balances`");
                }
                QueryKind::Balances
            }
            _ => {
                let example = "{ currency: USDC, network: ERC20 }";
                let m = self
                    .kind_map(name, f, at, false, example)?
                    .expect("null refused");
                let fields = self.fields(m, DEPOSIT_KEYS, at, "`deposit_address`");
                let pos = node_pos(f.value);
                let part = |check: &mut Self,
                            key: &str,
                            example: &str,
                            ok: fn(&str) -> bool,
                            rule: &str| {
                    let field = format!("{at}.{key}");
                    match fields.get(key) {
                        None if fields.misspelt(key) => None,
                        None => {
                            check.err(
                                pos,
                                &field,
                                format!("missing `{key}`; `deposit_address` needs both, like `deposit_address: {{ currency: USDC, network: ERC20 }}`"),
                            );
                            None
                        }
                        Some(f) => {
                            let s = check.scalar(&field, f, example)?;
                            if ok(s.text) {
                                Some(s.text.to_string())
                            } else {
                                check.err(
                                    s.pos,
                                    &field,
                                    format!("{rule}, not `{}`", shown(s.text)),
                                );
                                None
                            }
                        }
                    }
                };
                let currency = part(
                    self,
                    "currency",
                    "USDC",
                    valid_currency,
                    "currency must be an asset code of 2 to 12 upper-case letters and digits, like `USDC`",
                );
                let network = part(
                    self,
                    "network",
                    "ERC20",
                    valid_network,
                    "network must be the chain's name as the exchange spells it, like `ERC20` (1 to 64 characters, no leading or trailing spaces)",
                );
                QueryKind::DepositAddress {
                    currency: currency?,
                    network: network?,
                }
            }
        };
        (self.errors.len() == before).then_some(kind)
    }

    /// A `from`/`to` time: ms since the epoch, or RFC 3339.
    fn time(&mut self, at: &str, f: Field<'_>) -> Option<(i64, Pos)> {
        let s = self.scalar(at, f, "2026-11-01T00:00:00Z")?;
        match time_ms(s.text) {
            Ok(t) => Some((t, s.pos)),
            Err(message) => {
                self.err(s.pos, at, message);
                None
            }
        }
    }

    fn limit(&mut self, at: &str, f: Field<'_>) -> Option<u32> {
        let s = self.scalar(at, f, "100")?;
        let n = s
            .text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.text.parse::<u32>().ok())
            .flatten()
            .filter(|n| (1..=MAX_TRADES_LIMIT).contains(n));
        if n.is_none() {
            self.err(
                s.pos,
                at,
                format!(
                    "`limit` is the page size: a whole number from 1 to {MAX_TRADES_LIMIT}, not `{}`; hqx fetches every page either way",
                    shown(s.text)
                ),
            );
        }
        n
    }
}

/// Milliseconds since the epoch from digits or an RFC 3339 timestamp.
pub(super) fn time_ms(text: &str) -> Result<i64, String> {
    let hint = "write milliseconds since the epoch (like 1793491200000) or an RFC 3339 time (like 2026-11-01T00:00:00Z)";
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| format!("`{}` is too large a time; {hint}", shown(text)));
    }
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("`{}` is not a time; {hint}", shown(text)))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    match i64::try_from(ms) {
        Ok(ms) if ms >= 0 => Ok(ms),
        _ => Err(format!("`{}` is before 1970; {hint}", shown(text))),
    }
}

fn valid_currency(s: &str) -> bool {
    (2..=12).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn valid_network(s: &str) -> bool {
    let n = s.chars().count();
    (1..=64).contains(&n) && s.trim() == s && !s.chars().any(char::is_control)
}
