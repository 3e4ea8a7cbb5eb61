//! Reference prices from the exchange's ticker, for pre-trade limits.
//!
//! The ticker is an assumption (`paths.ticker` in [`crate::venue`]): a
//! signed `GET <ticker>?pair=BTC-USDC` answering `{pair, price, bid, ask,
//! timestamp}`. Its `price` is read as exact decimal text. Whatever goes
//! wrong (no answer, an error status, a body without a readable positive
//! price, another pair's price) leaves the pair without a price and says
//! why; [`crate::limits::check`] then refuses the orders that needed it.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::client::{field, text_of, Client, Method, SendError};
use crate::journal::HttpRecord;
use crate::limits::ReferencePrices;
use crate::model::Pair;

/// Tries per pair when the exchange fails (5xx, 429, no answer): a read is
/// safe to repeat.
const TRIES: u32 = 3;

/// Fetch the reference price of each pair, one request at a time through
/// the client's rate limiter. Returns the prices (or why not) and the
/// requests made, for the journal's `http_log`.
pub async fn fetch(
    client: &Client,
    pairs: impl IntoIterator<Item = Pair>,
) -> (ReferencePrices, Vec<HttpRecord>) {
    let mut prices = ReferencePrices::new();
    let mut log = Vec::new();
    for pair in pairs {
        let path = format!("{}?pair={pair}", client.venue().paths.ticker);
        let mut last = String::new();
        let mut got = None;
        for try_no in 0..TRIES {
            let (result, rec) = client.send(Method::Get, &path, None).await;
            log.push(rec);
            match result {
                Ok(r) if (200..300).contains(&r.status) => {
                    got = Some(read_price(&pair, &r.body).map_err(|m| format!("GET {path}: {m}")));
                    break;
                }
                Ok(r) if r.status == 429 => {
                    client.back_off(r.retry_after.unwrap_or(Duration::from_secs(1)));
                    last = r.message();
                }
                Ok(r) if r.status >= 500 => last = r.message(),
                Ok(r) => {
                    let mut m = r.message();
                    if r.status == 403 {
                        m.push_str(&client.credentials().forbidden_hint());
                    }
                    got = Some(Err(format!("GET {path} answered {m}")));
                    break;
                }
                Err(e @ (SendError::NotSent(_) | SendError::NoAnswer(_))) => last = e.to_string(),
            }
            if try_no + 1 < TRIES {
                tokio::time::sleep(Duration::from_millis(200 << try_no)).await;
            }
        }
        let price = got
            .unwrap_or_else(|| Err(format!("GET {path}: no usable answer after {TRIES} tries: {last}")))
            .map_err(|m| {
                format!("{m}; check that the exchange serves its ticker there (the venue profile's `paths.ticker`), then run again")
            });
        prices.insert(pair, price);
    }
    (prices, log)
}

/// The `price` of a ticker answer for `pair`: exact, above zero.
fn read_price(pair: &Pair, body: &str) -> Result<Decimal, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| "the answer is not JSON".to_string())?;
    if let Some(p) = text_of(field(&v, &["pair", "symbol"])) {
        if p != pair.as_str() {
            return Err(format!("the answer is for pair {p}, not {pair}"));
        }
    }
    // Text only: a JSON number may have been rounded in binary on its
    // way here, and a limit checked against a rounded price is not exact.
    let text = match field(&v, &["price", "last", "lastPrice"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(_)) => {
            return Err(
                "the answer's price is a JSON number, not decimal text; hqx reads prices only as text (a number may have been rounded)"
                    .into(),
            )
        }
        _ => return Err("the answer has no `price`".into()),
    };
    match Decimal::from_str_exact(&text) {
        Ok(d) if d > Decimal::ZERO => Ok(d),
        _ => Err(format!(
            "the answer's price `{}` is not a decimal above zero",
            text.chars().take(40).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_is_read_exactly_or_not_at_all() {
        let pair: Pair = "BTC-USDC".parse().unwrap();
        let ok = read_price(&pair, r#"{"pair":"BTC-USDC","price":"24000.10"}"#).unwrap();
        assert_eq!(ok.to_string(), "24000.10");
        for bad in [
            "nope",
            r#"{"pair":"ETH-USDC","price":"1600"}"#,
            r#"{"pair":"BTC-USDC"}"#,
            r#"{"price":"0"}"#,
            r#"{"price":"-5"}"#,
            r#"{"price":"1e3"}"#,
            r#"{"price":null}"#,
            r#"{"price":24000.5}"#,
        ] {
            assert!(read_price(&pair, bad).is_err(), "{bad}");
        }
    }
}
