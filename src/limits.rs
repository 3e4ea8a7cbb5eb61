//! Pre-trade limits: the rules that stop a fat-fingered order before
//! anything is journaled or sent.
//!
//! Limits come from two places: the batch's own `limits:` mapping and a
//! file shared by many batches (`--limits FILE`, env `HQX_LIMITS`), whose
//! top level is the same mapping. When both set a rule, the stricter one
//! wins, rule by rule ([`merge`]):
//!
//! ```yaml
//! limits:
//!   pairs: [BTC-USDC, ETH-USDC]     # allowed pairs (both lists apply)
//!   max_order_notional: "50000"     # quote currency, per order (the lower wins)
//!   max_batch_notional: "250000"    # sum over the batch's new orders (the lower wins)
//!   max_quantity: { BTC-USDC: "2" } # per order, per pair (the lower wins)
//!   price_band: "5%"                # a limit price at most this far from the reference (the narrower wins)
//!   market_slippage: "1%"           # a market buy counts at reference x (1 + this) (the wider wins)
//! ```
//!
//! Why checks take a [`Prices`] argument: `validate` has no exchange, so it
//! checks what needs no price (pairs, quantities, the notional of limit
//! orders); `plan` and `run` fetch each pair's reference price from the
//! ticker first ([`crate::reference`]) and check everything. A check that
//! needs a reference price that could not be had refuses the order (fail
//! closed): a limit nobody can check is not a limit.
//!
//! All arithmetic is exact ([`Decimal`], checked): a product too large to
//! hold is a breach, never a rounded number.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::batch::Node;
use rust_decimal::Decimal;

use crate::batch::{self, Batch, BatchError, BatchErrors, Check, Field, OrderSpec, Pos};
use crate::model::{Amount, OrderType, Pair, Side};

const LIMIT_KEYS: &[&str] = &[
    "pairs",
    "max_order_notional",
    "max_batch_notional",
    "max_quantity",
    "price_band",
    "market_slippage",
];

/// The largest limits file [`load_file`] reads, in bytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The margin a market buy counts with when no limit sets
/// `market_slippage`: 1 %.
pub const DEFAULT_MARKET_SLIPPAGE: &str = "1%";

/// Where a rule was written: the file, line and column of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The batch file or the limits file.
    pub path: PathBuf,
    /// The value's position.
    pub pos: Pos,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.path.display(),
            self.pos.line,
            self.pos.column
        )
    }
}

/// One rule's value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<T> {
    /// The value.
    pub value: T,
    /// Where it was set.
    pub source: Source,
}

/// A percentage as written (`"5%"`), with its value in percent (5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Percent {
    /// The text as written, `%` included.
    pub text: String,
    /// The number before `%`.
    pub value: Decimal,
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A set of limits: from one source, or merged from two with [`merge`].
/// Every rule is optional; none set means nothing is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Allowed pairs. Each list applies: after a merge, a pair must be in
    /// both.
    pub pairs: Vec<Rule<BTreeSet<Pair>>>,
    /// Highest notional (quantity x price, in the pair's quote currency)
    /// of one order.
    pub max_order_notional: Option<Rule<Amount>>,
    /// Highest sum of the notionals of the batch's new orders, per quote
    /// currency.
    pub max_batch_notional: Option<Rule<Amount>>,
    /// Highest quantity of one order, per pair.
    pub max_quantity: BTreeMap<Pair, Rule<Amount>>,
    /// How far, in percent of the reference price, a limit price may be
    /// from it.
    pub price_band: Option<Rule<Percent>>,
    /// The margin over the reference price a market buy counts at.
    pub market_slippage: Option<Rule<Percent>>,
}

/// Reference prices by pair: the price, or why there is none.
pub type ReferencePrices = BTreeMap<Pair, Result<Decimal, String>>;

/// What the checks know of the market.
#[derive(Debug, Clone, Copy)]
pub enum Prices<'a> {
    /// Nothing (`validate`): checks that need a reference price are left
    /// to `plan` and `run`.
    Offline,
    /// The reference price of every pair [`needs_reference`] named.
    Reference(&'a ReferencePrices),
}

// ---------------------------------------------------------------------------
// Reading.

/// The batch's `limits:` mapping, if it has one; problems go to `check`.
pub(crate) fn from_batch(check: &mut Check<'_>, root: &Node) -> Option<Limits> {
    let (key, value) = root
        .as_mapping()?
        .iter()
        .find(|(k, _)| k.as_str() == "limits")?;
    let f = Field { key, value };
    let Some(map) = value.as_mapping() else {
        check.err(
            f.value_pos(),
            "limits",
            "`limits` must be a mapping of rules, like `limits: { max_order_notional: \"50000\", price_band: \"5%\" }`, or delete it".into(),
        );
        return None;
    };
    rules(check, map, "limits")
}

/// Read a limits file (`--limits FILE`): the same mapping as a batch's
/// `limits:`, at the top level. Every problem is reported at once, with its
/// position in the limits file.
pub fn load_file(path: &Path) -> Result<Limits, BatchErrors> {
    let whole_file = |message: String| {
        BatchErrors(vec![BatchError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
        }])
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            whole_file(format!(
                "cannot read the limits file: {e}; check the --limits path (or HQX_LIMITS)"
            ))
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(whole_file(
            "the limits file is larger than 1 MiB; a limits file holds a few rules".into(),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| whole_file("the limits file is not UTF-8 text; save it as UTF-8".into()))?;
    let mut check = Check::new(path);
    let limits = match batch::read_tree(&text, &mut check) {
        Some(root) => match root.as_mapping() {
            Some(map) => rules(&mut check, map, ""),
            None => {
                check.err(batch::node_pos(&root), "", not_a_mapping());
                None
            }
        },
        None => None,
    };
    match limits {
        Some(l) if check.errors.is_empty() => Ok(l),
        _ => {
            let mut errors = check.into_errors();
            // The YAML reader words a top level that is not a mapping for
            // batch files.
            for e in &mut errors.0 {
                if e.message.starts_with("a batch file must be a YAML mapping") {
                    e.message = not_a_mapping();
                }
            }
            Err(errors)
        }
    }
}

fn not_a_mapping() -> String {
    "a limits file is a YAML mapping of rules, like `max_order_notional: \"50000\"` on its own line; see the README's \"Pre-trade limits\"".into()
}

/// The rules of a `limits` mapping; `at` prefixes field names.
fn rules(check: &mut Check<'_>, map: &batch::MappingNode<'_>, at: &str) -> Option<Limits> {
    let before = check.errors.len();
    let what = if at.is_empty() {
        "a limits file"
    } else {
        "`limits`"
    };
    let fields = check.fields(map, LIMIT_KEYS, at, what);
    let name = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    let source = |check: &Check<'_>, pos: Pos| Source {
        path: check.path.to_path_buf(),
        pos,
    };
    let mut out = Limits::default();

    if let Some(f) = fields.get("pairs") {
        let at = name("pairs");
        match f.value {
            Node::Sequence(items) if !items.is_empty() => {
                let mut set = BTreeSet::new();
                for item in items.iter() {
                    let pos = batch::node_pos(item);
                    match item {
                        Node::Scalar(s) => match s.as_str().parse::<Pair>() {
                            Ok(p) => {
                                set.insert(p);
                            }
                            Err(m) => check.err(pos, &at, m),
                        },
                        _ => check.err(
                            pos,
                            &at,
                            "each entry of `pairs` is one pair, like `BTC-USDC`".into(),
                        ),
                    }
                }
                out.pairs.push(Rule {
                    value: set,
                    source: source(check, f.value_pos()),
                });
            }
            Node::Sequence(_) => check.err(
                f.value_pos(),
                &at,
                "`pairs` is empty, which would allow no order at all; list the pairs to allow, like `pairs: [BTC-USDC, ETH-USDC]`, or delete `pairs`".into(),
            ),
            _ => check.err(
                f.value_pos(),
                &at,
                "`pairs` must be a list of the pairs to allow, like `pairs: [BTC-USDC, ETH-USDC]`"
                    .into(),
            ),
        }
    }

    for (key, slot) in [
        ("max_order_notional", &mut out.max_order_notional),
        ("max_batch_notional", &mut out.max_batch_notional),
    ] {
        if let Some(f) = fields.get(key) {
            if let Some(v) = check.value::<Amount>(&name(key), f, "\"50000\"") {
                *slot = Some(Rule {
                    value: v,
                    source: source(check, f.value_pos()),
                });
            }
        }
    }

    if let Some(f) = fields.get("max_quantity") {
        let at = name("max_quantity");
        match f.value.as_mapping() {
            Some(m) if !m.is_empty() => {
                for (key, value) in m.iter() {
                    let pair_field = Field { key, value };
                    let pair = match key.as_str().parse::<Pair>() {
                        Ok(p) => p,
                        Err(msg) => {
                            check.err(pair_field.key_pos(), &at, msg);
                            continue;
                        }
                    };
                    let field = format!("{at}.{pair}");
                    if let Some(v) = check.value::<Amount>(&field, pair_field, "\"2\"") {
                        out.max_quantity.insert(
                            pair,
                            Rule {
                                value: v,
                                source: source(check, pair_field.value_pos()),
                            },
                        );
                    }
                }
            }
            _ => check.err(
                f.value_pos(),
                &at,
                "`max_quantity` must be a mapping from pair to the largest quantity of one order, like `max_quantity: { BTC-USDC: \"2\" }`".into(),
            ),
        }
    }

    for (key, slot, zero_ok, example) in [
        ("price_band", &mut out.price_band, false, "\"5%\""),
        ("market_slippage", &mut out.market_slippage, true, "\"1%\""),
    ] {
        if let Some(f) = fields.get(key) {
            let at = name(key);
            if let Some(s) = check.scalar(&at, f, example) {
                match percent(s.text, zero_ok) {
                    Ok(p) => {
                        *slot = Some(Rule {
                            value: p,
                            source: source(check, s.pos),
                        })
                    }
                    Err(m) => check.err(s.pos, &at, format!("`{key}` {m}, like {example}")),
                }
            }
        }
    }

    (check.errors.len() == before).then_some(out)
}

/// A percentage: plain decimal digits and `%`, above 0 (or 0 with
/// `zero_ok`) and at most 100.
fn percent(text: &str, zero_ok: bool) -> Result<Percent, String> {
    let number = text.strip_suffix('%').ok_or_else(|| {
        format!(
            "is a percentage and must end in `%` (`{}` is ambiguous: 5% or 0.05%?)",
            batch::shown(text)
        )
    })?;
    let plain = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let ok_shape = match number.split_once('.') {
        Some((i, f)) => plain(i) && plain(f),
        None => plain(number),
    };
    let value = ok_shape
        .then(|| Decimal::from_str_exact(number).ok())
        .flatten()
        .ok_or_else(|| format!("must be plain digits and `%`, not `{}`", batch::shown(text)))?;
    let hundred = Decimal::ONE_HUNDRED;
    if value > hundred || (value.is_zero() && !zero_ok) {
        let low = if zero_ok { "0%" } else { "above 0%" };
        return Err(format!(
            "must be from {low} to 100%, not `{}`",
            batch::shown(text)
        ));
    }
    Ok(Percent {
        text: text.to_string(),
        value,
    })
}

// ---------------------------------------------------------------------------
// Merging.

/// The limits in force when a batch's own (`batch`) and a shared file's
/// (`file`) both may apply: per rule, the stricter. `None` when neither
/// sets anything.
pub fn merge(batch: Option<&Limits>, file: Option<&Limits>) -> Option<Limits> {
    let (a, b) = match (batch, file) {
        (None, None) => return None,
        (Some(l), None) | (None, Some(l)) => return Some(l.clone()),
        (Some(a), Some(b)) => (a, b),
    };
    fn pick<T: Clone>(
        a: &Option<Rule<T>>,
        b: &Option<Rule<T>>,
        b_stricter: impl Fn(&T, &T) -> bool,
    ) -> Option<Rule<T>> {
        match (a, b) {
            (Some(x), Some(y)) if b_stricter(&x.value, &y.value) => Some(y.clone()),
            (Some(x), _) => Some(x.clone()),
            (None, y) => y.clone(),
        }
    }
    let lower = |x: &Amount, y: &Amount| y.value() < x.value();
    let mut max_quantity = a.max_quantity.clone();
    for (pair, rule) in &b.max_quantity {
        let keep = max_quantity
            .get(pair)
            .is_some_and(|r| r.value.value() <= rule.value.value());
        if !keep {
            max_quantity.insert(pair.clone(), rule.clone());
        }
    }
    Some(Limits {
        pairs: a.pairs.iter().chain(&b.pairs).cloned().collect(),
        max_order_notional: pick(&a.max_order_notional, &b.max_order_notional, lower),
        max_batch_notional: pick(&a.max_batch_notional, &b.max_batch_notional, lower),
        max_quantity,
        price_band: pick(&a.price_band, &b.price_band, |x, y| y.value < x.value),
        market_slippage: pick(&a.market_slippage, &b.market_slippage, |x, y| {
            y.value > x.value
        }),
    })
}

// ---------------------------------------------------------------------------
// Checking.

impl Limits {
    fn notional_limited(&self) -> bool {
        self.max_order_notional.is_some() || self.max_batch_notional.is_some()
    }

    /// Whether checking `o` needs its pair's reference price: a limit
    /// order under a price band, a market order under a notional limit.
    pub fn needs_reference(&self, o: &OrderSpec) -> bool {
        match o.intent.kind {
            OrderType::Limit => self.price_band.is_some(),
            OrderType::Market => self.notional_limited(),
        }
    }

    /// The slippage margin market buys count with, in percent, and its text.
    fn slippage(&self) -> (Decimal, String) {
        match &self.market_slippage {
            Some(r) => (r.value.value, format!("market_slippage {}", r.value)),
            None => (
                Decimal::ONE,
                format!("the default market_slippage {DEFAULT_MARKET_SLIPPAGE}"),
            ),
        }
    }
}

/// The pairs whose reference price checking `orders` needs.
pub fn needs_reference<'a>(
    limits: &Limits,
    orders: impl IntoIterator<Item = &'a OrderSpec>,
) -> BTreeSet<Pair> {
    orders
        .into_iter()
        .filter(|o| limits.needs_reference(o))
        .map(|o| o.intent.pair.clone())
        .collect()
}

/// A decimal for messages: trailing zeros dropped.
fn shown(d: Decimal) -> String {
    d.normalize().to_string()
}

// Exact arithmetic: rust_decimal rounds a result whose digits do not fit
// (rather than failing), so each operation checks that nothing was lost;
// `None` means "not exactly computable", which the checks treat as a breach.

/// `a x b`, exactly.
fn mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    let v = a.checked_mul(b)?;
    (v.scale() == a.scale() + b.scale()).then_some(v)
}

/// `a + b`, exactly.
fn add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let v = a.checked_add(b)?;
    (v.scale() == a.scale().max(b.scale())).then_some(v)
}

/// `pct` percent of `x` (`x x pct / 100`), exactly.
fn percent_of(x: Decimal, pct: Decimal) -> Option<Decimal> {
    let v = mul(x, pct)?;
    (v.scale() + 2 <= 28).then(|| Decimal::from_i128_with_scale(v.mantissa(), v.scale() + 2))
}

/// Check the batch's orders for which `is_new` holds (the orders this
/// command may send) against `limits`. Every breach is reported, each at
/// the order's offending field, with the rule and where it was set.
pub fn check(
    b: &Batch,
    limits: &Limits,
    is_new: impl Fn(&OrderSpec) -> bool,
    prices: Prices<'_>,
) -> Result<(), BatchErrors> {
    let mut errors = Vec::new();
    let mut err = |pos: Pos, field: String, message: String| {
        errors.push(BatchError {
            path: b.path.clone(),
            line: pos.line,
            column: pos.column,
            field,
            message,
        })
    };
    // Per quote currency: the running sum, and the order that first took
    // it over `max_batch_notional` (index into `errors`-to-be, label, pos).
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut tipped: BTreeMap<String, (Pos, String, Decimal)> = BTreeMap::new();
    let mut overflowed: BTreeSet<String> = BTreeSet::new();
    let (slip, slip_text) = limits.slippage();

    for (i, o) in b.orders.iter().enumerate() {
        if !is_new(o) {
            continue;
        }
        let label = format!("orders[{i}] ({})", o.id);
        let at = |name: &str| format!("{label}.{name}");
        let it = &o.intent;
        let pair = &it.pair;
        let quote = pair.quote().to_string();

        if let Some(rule) = limits.pairs.iter().find(|r| !r.value.contains(pair)) {
            let allowed = rule
                .value
                .iter()
                .map(Pair::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            err(
                o.marks.pair,
                at("pair"),
                format!(
                    "{pair} is not an allowed pair: `pairs` (set at {}) allows only {allowed}; fix the pair, or add it to `pairs`",
                    rule.source
                ),
            );
        }

        if let Some(rule) = limits.max_quantity.get(pair) {
            if it.quantity.value() > rule.value.value() {
                err(
                    o.marks.quantity,
                    at("quantity"),
                    format!(
                        "quantity {} is above max_quantity {} for {pair} (set at {}); check the quantity, or raise the limit",
                        it.quantity, rule.value, rule.source
                    ),
                );
            }
        }

        let reference = |what: &str,
                         field: &str,
                         pos: Pos,
                         err: &mut dyn FnMut(Pos, String, String)|
         -> Option<Decimal> {
            let Prices::Reference(map) = prices else {
                return None;
            };
            match map.get(pair) {
                Some(Ok(r)) => Some(*r),
                why => {
                    let why = match why {
                        Some(Err(w)) => w.clone(),
                        _ => "it was not fetched".into(),
                    };
                    err(
                        pos,
                        at(field),
                        format!(
                            "no reference price for {pair}: {why}; so {what} cannot be checked, and the batch is refused (fail closed)"
                        ),
                    );
                    None
                }
            }
        };

        // The price one unit counts at, and how it was arrived at.
        let unit: Option<(Decimal, String)> = match (it.kind, &it.price) {
            (OrderType::Limit, Some(p)) => Some((p.value(), format!("price {p}"))),
            (OrderType::Market, _) if limits.notional_limited() => {
                let what = "the notional of this market order (it counts at the reference price)";
                match (
                    reference(what, "quantity", o.marks.quantity, &mut err),
                    it.side,
                ) {
                    (None, _) => None,
                    (Some(r), Side::Sell) => Some((r, format!("reference price {}", shown(r)))),
                    (Some(r), Side::Buy) => match percent_of(r, Decimal::ONE_HUNDRED + slip) {
                        Some(u) => Some((u, format!("reference price {} + {slip_text}", shown(r)))),
                        None => {
                            err(
                                o.marks.quantity,
                                at("quantity"),
                                format!(
                                    "the reference price {} of {pair} + {slip_text} cannot be computed exactly, so the notional of this market order cannot be checked, and the batch is refused (fail closed)",
                                    shown(r)
                                ),
                            );
                            None
                        }
                    },
                }
            }
            _ => None,
        };

        if let Some((unit, how)) = unit {
            match mul(it.quantity.value(), unit) {
                None => err(
                    o.marks.quantity,
                    at("quantity"),
                    format!(
                        "quantity {} x {how} cannot be computed exactly (too large, or too many decimals); check the quantity and price",
                        it.quantity
                    ),
                ),
                Some(notional) => {
                    if let Some(rule) = &limits.max_order_notional {
                        if notional > rule.value.value() {
                            err(
                                o.marks.quantity,
                                at("quantity"),
                                format!(
                                    "notional {} {quote} (quantity {} x {how}) is above max_order_notional {} (set at {}); check the quantity and price, or raise the limit",
                                    shown(notional), it.quantity, rule.value, rule.source
                                ),
                            );
                        }
                    }
                    if let Some(rule) = &limits.max_batch_notional {
                        let sum = sums.entry(quote.clone()).or_default();
                        match add(*sum, notional) {
                            Some(s) => {
                                *sum = s;
                                if s > rule.value.value() && !tipped.contains_key(&quote) {
                                    tipped.insert(quote.clone(), (o.marks.quantity, at("quantity"), s));
                                }
                            }
                            None => {
                                overflowed.insert(quote.clone());
                                tipped
                                    .entry(quote.clone())
                                    .or_insert((o.marks.quantity, at("quantity"), *sum));
                            }
                        }
                    }
                }
            }
        }

        if let (Some(rule), OrderType::Limit, Some(p)) = (&limits.price_band, it.kind, &it.price) {
            let what = format!("price_band {} (set at {})", rule.value, rule.source);
            if let Some(r) = reference(&what, "price", o.marks.price, &mut err) {
                let band = rule.value.value;
                let off = (p.value() - r).abs();
                let outside = match (mul(off, Decimal::ONE_HUNDRED), mul(r, band)) {
                    (Some(a), Some(b)) => a > b,
                    _ => true,
                };
                if outside {
                    // For the message only: the distance rounded to
                    // 0.01%, the band's ends exact (checked, as all else).
                    let hundred = Decimal::ONE_HUNDRED;
                    let of_ref = |x: Decimal| percent_of(r, x).map_or_else(|| "?".into(), shown);
                    let pct = off
                        .checked_mul(hundred)
                        .and_then(|v| v.checked_div(r))
                        .map_or_else(|| "?".into(), |v| shown(v.round_dp(2)));
                    let dir = if p.value() > r { "above" } else { "below" };
                    err(
                        o.marks.price,
                        at("price"),
                        format!(
                            "price {p} is {pct}% {dir} the reference price {} of {pair}; price_band {} (set at {}) allows {} to {}; check the price, or widen the band",
                            shown(r), rule.value, rule.source, of_ref(hundred - band), of_ref(hundred + band)
                        ),
                    );
                }
            }
        }
    }

    if let Some(rule) = &limits.max_batch_notional {
        for (quote, (pos, field, reached)) in tipped {
            let total = if overflowed.contains(&quote) {
                "more than hqx can add up exactly".to_string()
            } else {
                format!("{} {quote}", shown(sums[&quote]))
            };
            err(
                pos,
                field,
                format!(
                    "the batch's new orders in {quote} reach {} {quote} with this order and total {total}, above max_batch_notional {} (set at {}); split the batch, or raise the limit",
                    shown(reached), rule.value, rule.source
                ),
            );
        }
    }

    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|e| (e.line, e.column));
    Err(BatchErrors(errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(text: &str) -> Batch {
        batch::parse(Path::new("b.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    const HEAD: &str = "version: 1\nbatch: b\ndefaults: { pair: BTC-USDC, type: limit }\n";

    #[test]
    fn stricter_wins_rule_by_rule() {
        let a = batch(&format!(
            "{HEAD}limits: {{ pairs: [BTC-USDC, ETH-USDC], max_order_notional: \"100\", max_batch_notional: 50, max_quantity: {{ BTC-USDC: \"2\", ETH-USDC: 1 }}, price_band: 5%, market_slippage: 1% }}\norders:\n  - {{ id: a, side: buy, quantity: 1, price: 1 }}\n"
        ));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("limits.yaml");
        std::fs::write(
            &f,
            "pairs: [BTC-USDC]\nmax_order_notional: \"200\"\nmax_batch_notional: \"10\"\nmax_quantity: { BTC-USDC: \"1.5\", SOL-USDC: 9 }\nprice_band: \"10%\"\nmarket_slippage: \"2.5%\"\n",
        )
        .unwrap();
        let file = load_file(&f).unwrap();
        let m = merge(a.limits.as_ref(), Some(&file)).unwrap();
        assert_eq!(m.pairs.len(), 2, "both pair lists apply");
        assert_eq!(m.max_order_notional.unwrap().value.text(), "100");
        let batch_notional = m.max_batch_notional.unwrap();
        assert_eq!(batch_notional.value.text(), "10");
        assert_eq!(
            batch_notional.source.to_string(),
            format!("{}:3:21", f.display())
        );
        let q = |p: &str| {
            m.max_quantity[&p.parse::<Pair>().unwrap()]
                .value
                .text()
                .to_string()
        };
        assert_eq!(
            (q("BTC-USDC"), q("ETH-USDC"), q("SOL-USDC")),
            ("1.5".into(), "1".into(), "9".into())
        );
        assert_eq!(m.price_band.unwrap().value.text, "5%");
        assert_eq!(m.market_slippage.unwrap().value.text, "2.5%");
    }

    #[test]
    fn arithmetic_is_exact_or_refused() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(mul(d("25"), d("24100.00")), Some(d("602500.00")));
        assert_eq!(percent_of(d("1600"), d("101")), Some(d("1616.00")));
        // 30 decimals do not fit: refused, never rounded.
        assert_eq!(mul(d("0.000000000000001"), d("0.0000000000000001")), None);
        assert_eq!(mul(d("79228162514264337593543950335"), d("2")), None);
        assert_eq!(add(d("79228162514264337593543950335"), d("1")), None);
        assert_eq!(add(d("0.1"), d("0.20")), Some(d("0.30")));
        assert_eq!(percent_of(d("0.000000000000000000000000001"), d("1")), None);
    }

    #[test]
    fn percentages_are_exact_and_need_their_sign() {
        assert_eq!(percent("5%", false).unwrap().value, Decimal::new(5, 0));
        assert_eq!(percent("0.25%", false).unwrap().value, Decimal::new(25, 2));
        assert!(percent("0%", true).is_ok());
        for bad in ["5", "0.05", "0%", "-1%", "101%", "5 %", "1e1%", "%", ".5%"] {
            assert!(percent(bad, false).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_market_buy_counts_at_the_reference_plus_slippage_exactly() {
        let b = batch(&format!(
            "{HEAD}limits: {{ max_order_notional: \"10100\", market_slippage: \"1%\" }}\norders:\n  - {{ id: m, side: buy, type: market, quantity: \"1\" }}\n  - {{ id: s, side: sell, type: market, quantity: \"1.01\" }}\n"
        ));
        let l = b.limits.clone().unwrap();
        let pair: Pair = "BTC-USDC".parse().unwrap();
        let at = |price: i64| {
            let mut p = ReferencePrices::new();
            p.insert(pair.clone(), Ok(Decimal::new(price, 0)));
            check(&b, &l, |_| true, Prices::Reference(&p))
        };
        // 10000 x 1.01 = 10100: at the limit, not above; the sell 1.01 x 10000 too.
        assert!(at(10000).is_ok());
        let e = at(10001).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.0[0].message.contains("10101.01 USDC"), "{e}");
        // Offline, market orders are left to plan and run.
        assert!(check(&b, &l, |_| true, Prices::Offline).is_ok());
        // No price: refused, saying why.
        let mut none = ReferencePrices::new();
        none.insert(pair, Err("HTTP 404: not found".into()));
        let e = check(&b, &l, |_| true, Prices::Reference(&none)).unwrap_err();
        assert!(
            e.0[0].message.contains("HTTP 404") && e.0[0].message.contains("fail closed"),
            "{e}"
        );
    }
}
