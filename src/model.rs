//! Domain types shared by every layer: sides, order types, pairs, and the
//! decimal that keeps the exact text the user wrote.
//!
//! Why a text-keeping decimal: the contract says decimals travel as JSON
//! strings and the signature covers the exact bytes sent. If `"24321.00"`
//! went through a float or a normalising decimal, hqx could send `24321`
//! and sign something the user never wrote. [`Amount`] parses the text
//! (for validation and arithmetic) but always sends the original.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy the base asset with the quote asset.
    Buy,
    /// Sell the base asset for the quote asset.
    Sell,
}

impl Side {
    /// The wire spelling: `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            other => Err(format!("side must be `buy` or `sell`, not `{other}`")),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limit or market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    /// Rests on the book at `price` or better; needs a price.
    Limit,
    /// Fills against the book at once; must not carry a price.
    Market,
}

impl OrderType {
    /// The wire spelling: `limit` or `market`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
        }
    }
}

impl FromStr for OrderType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "limit" => Ok(OrderType::Limit),
            "market" => Ok(OrderType::Market),
            other => Err(format!("type must be `limit` or `market`, not `{other}`")),
        }
    }
}

impl fmt::Display for OrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trading pair such as `BTC-USDC`: base and quote, upper-case letters
/// and digits, 2 to 12 characters each, joined by one hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair(String);

impl Pair {
    /// The pair as written, e.g. `BTC-USDC`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The base asset (`BTC` in `BTC-USDC`).
    pub fn base(&self) -> &str {
        self.0.split_once('-').map(|(b, _)| b).unwrap_or(&self.0)
    }
    /// The quote asset (`USDC` in `BTC-USDC`).
    pub fn quote(&self) -> &str {
        self.0.split_once('-').map(|(_, q)| q).unwrap_or("")
    }
}

impl FromStr for Pair {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok_part = |p: &str| {
            (2..=12).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        match s.split_once('-') {
            Some((b, q)) if ok_part(b) && ok_part(q) && b != q => Ok(Pair(s.to_string())),
            _ => Err(format!(
                "pair must look like `BTC-USDC` (BASE-QUOTE, upper-case letters and digits), not `{s}`"
            )),
        }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A positive decimal that remembers the exact text it was written as.
///
/// Accepted text: digits, optionally a dot and more digits (`2`, `0.5`,
/// `24321.00`). No sign, exponent, spaces, or thousands separators: those
/// are ambiguous on the wire and the exchange publishes no rule for them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    text: String,
    value: Decimal,
}

impl Amount {
    /// The text exactly as the user wrote it; this is what is signed and sent.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The numeric value, for comparisons and arithmetic (never for the wire).
    pub fn value(&self) -> Decimal {
        self.value
    }
}

impl FromStr for Amount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(format!(
                "`{s}` is not a plain decimal: write digits with an optional fraction, like \"2\" or \"24321.00\""
            ));
        }
        let value = Decimal::from_str_exact(s)
            .map_err(|_| format!("`{s}` has too many digits (at most 28 significant digits)"))?;
        if value.is_zero() {
            return Err(format!("`{s}` is zero: amounts must be greater than zero"));
        }
        Ok(Amount {
            text: s.to_string(),
            value,
        })
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({:?})", self.text)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What one order asks the exchange to do: the part of a batch order that
/// reaches the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderIntent {
    /// The pair traded.
    pub pair: Pair,
    /// Limit or market.
    pub kind: OrderType,
    /// Buy or sell.
    pub side: Side,
    /// Quantity of the base asset, as written.
    pub quantity: Amount,
    /// Limit price, as written; `None` for market orders.
    pub price: Option<Amount>,
}

impl OrderIntent {
    /// The request body, byte for byte: compact JSON, keys in the order of
    /// the contract's published example (`pair`, `type`, `side`,
    /// `quantity`, `price`), decimals as the strings the user wrote.
    ///
    /// `client_order_id` is added as the last key only where a venue
    /// profile says the exchange supports one.
    pub fn body(&self, client_order_id: Option<(&str, &str)>) -> String {
        let mut fields: Vec<(&str, &str)> = vec![
            ("pair", self.pair.as_str()),
            ("type", self.kind.as_str()),
            ("side", self.side.as_str()),
            ("quantity", self.quantity.text()),
        ];
        if let Some(p) = &self.price {
            fields.push(("price", p.text()));
        }
        if let Some((key, value)) = client_order_id {
            // As a JSON object would: a key already there keeps its place.
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(f) => f.1 = value,
                None => fields.push((key, value)),
            }
        }
        // Written field by field (each string escaped by serde_json): the
        // same bytes as a serde_json object with these keys in this order,
        // without building one (a rerun computes every order's body).
        let mut out = String::with_capacity(96);
        for (key, value) in fields {
            out.push(if out.is_empty() { '{' } else { ',' });
            push_json_string(&mut out, key);
            out.push(':');
            push_json_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes it:
/// a string with nothing to escape (`"`, `\\`, control characters) is
/// copied as it is; any other goes through serde_json itself.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string always serialises"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_matches_the_published_example_byte_for_byte() {
        let intent = OrderIntent {
            pair: "BTC-USDC".parse().unwrap(),
            kind: OrderType::Limit,
            side: Side::Buy,
            quantity: "2".parse().unwrap(),
            price: Some("24321.00".parse().unwrap()),
        };
        assert_eq!(
            intent.body(None),
            r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00"}"#
        );
    }

    #[test]
    fn body_is_the_bytes_of_the_json_object_it_stands_for() {
        let intent = OrderIntent {
            pair: "BTC-USDC".parse().unwrap(),
            kind: OrderType::Market,
            side: Side::Sell,
            quantity: "0.5".parse().unwrap(),
            price: None,
        };
        let as_object = |extra: Option<(&str, &str)>| {
            let mut m = serde_json::Map::new();
            m.insert("pair".into(), "BTC-USDC".into());
            m.insert("type".into(), "market".into());
            m.insert("side".into(), "sell".into());
            m.insert("quantity".into(), "0.5".into());
            if let Some((k, v)) = extra {
                m.insert(k.into(), v.into());
            }
            serde_json::Value::Object(m).to_string()
        };
        for extra in [
            None,
            Some(("clientOrderId", "b-\"q\"\u{1}\u{e9}")),
            Some(("side", "buy")),
        ] {
            assert_eq!(intent.body(extra), as_object(extra), "{extra:?}");
        }
    }

    #[test]
    fn json_string_is_what_serde_json_writes() {
        for s in [
            "",
            "BTC-USDC",
            "0.5",
            "a/b",
            "\u{7f}",
            "\u{e9}\u{1f600}",
            "\"",
            "\\",
            "a\nb",
            "\u{1f}",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn amount_keeps_text_and_rejects_what_is_not_plain() {
        let a: Amount = "24321.00".parse().unwrap();
        assert_eq!(a.text(), "24321.00");
        assert_eq!(a.value(), Decimal::new(2432100, 2));
        for bad in [
            "", "-1", "+1", "1e3", "1.", ".5", "0", "0.000", "1,000", " 1", "abc",
        ] {
            assert!(bad.parse::<Amount>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn pair_shape() {
        assert!("BTC-USDC".parse::<Pair>().is_ok());
        for bad in [
            "btc-usdc",
            "BTCUSDC",
            "BTC-",
            "-USDC",
            "BTC-USDC-X",
            "B-USDC",
            "BTC-BTC",
        ] {
            assert!(bad.parse::<Pair>().is_err(), "{bad:?} should be refused");
        }
    }
}
