//! End-to-end tests of the sandbox over loopback, with reqwest as the
//! client and `crate::sign::sign` for signatures.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::sign::sign;

const EXAMPLE: &str =
    r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00"}"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A running sandbox and a client holding its key.
struct T {
    sb: Sandbox,
    key: String,
    secret: Secret,
    http: reqwest::Client,
}

impl T {
    async fn start() -> T {
        T::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> T {
        let (key, secret) = generate_credentials();
        let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
        adjust(&mut cfg);
        let sb = Sandbox::start(cfg, ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        T {
            sb,
            key,
            secret,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sb.base_url())
    }

    /// A signed request with `body`, timestamped `ts`, signed over `signed`.
    fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &str,
        ts: i64,
        signed: &str,
    ) -> reqwest::RequestBuilder {
        let ts = ts.to_string();
        self.http
            .request(method, self.url(path))
            .header("x-api-key", &self.key)
            .header("x-api-timestamp", &ts)
            .header("x-api-sign", sign(&self.secret, &ts, signed.as_bytes()))
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .raw(method, path, body, now_ms(), body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// A GET as the published sample client sends it: body `{}`.
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, "{}").await
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, "{}").await
    }

    async fn place(&self, body: &str) -> (u16, Value) {
        self.post("/trading/api/v1/order", body).await
    }

    async fn accepted(&self) -> Vec<AcceptedOrder> {
        let r = self
            .http
            .get(self.url("/sandbox/orders"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn balance(&self, currency: &str) -> (String, String) {
        let (s, v) = self.get("/account/api/v1/balances").await;
        assert_eq!(s, 200, "{v}");
        let b = v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["currency"] == currency)
            .unwrap_or_else(|| panic!("no {currency} in {v}"));
        (
            b["available"].as_str().unwrap().to_string(),
            b["locked"].as_str().unwrap().to_string(),
        )
    }
}

fn order(pair: &str, kind: &str, side: &str, qty: &str, price: Option<&str>) -> String {
    let mut m = serde_json::Map::new();
    m.insert("pair".into(), pair.into());
    m.insert("type".into(), kind.into());
    m.insert("side".into(), side.into());
    m.insert("quantity".into(), qty.into());
    if let Some(p) = price {
        m.insert("price".into(), p.into());
    }
    Value::Object(m).to_string()
}

#[tokio::test]
async fn signed_place_then_list_and_the_raw_body_is_kept() {
    let t = T::start().await;
    let (s, o) = t.place(EXAMPLE).await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["pair"], "BTC-USDC");
    assert_eq!(o["type"], "limit");
    assert_eq!(o["side"], "buy");
    assert_eq!(o["quantity"], "2");
    assert_eq!(o["price"], "24321.00");
    assert_eq!(o["status"], "filled");
    assert_eq!(o["filledQuantity"], "2");
    assert_eq!(o["averagePrice"], "24012");
    assert!(o["createdAt"].as_i64().unwrap() > 0);
    assert!(o.get("clientOrderId").is_none());
    let id = o["id"].as_str().unwrap().to_string();

    let (s, list) = t.get("/trading/api/v1/orders/my").await;
    assert_eq!(s, 200);
    assert_eq!(list["orders"].as_array().unwrap().len(), 1);
    assert_eq!(list["orders"][0], o);
    let (s, one) = t.get(&format!("/trading/api/v1/order/{id}")).await;
    assert_eq!((s, &one), (200, &o));
    let (s, e) = t.get("/trading/api/v1/order/O9999").await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")));

    let acc = t.accepted().await;
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0].received_body, EXAMPLE);
    assert_eq!((acc[0].seq, acc[0].id.as_str()), (1, id.as_str()));
    assert_eq!(acc, t.sb.accepted_orders());
    // The wire shape is camelCase.
    let raw: Value = t
        .http
        .get(t.url("/sandbox/orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw[0]["receivedBody"], EXAMPLE);
    assert_eq!(raw[0]["type"], "limit");
    assert!(raw[0].get("createdAt").is_some() && raw[0].get("clientOrderId").is_some());
    t.sb.shutdown().await;
}

#[tokio::test]
async fn gets_with_the_sample_clients_body_or_none_are_accepted() {
    let t = T::start().await;
    // The published sample client: GET with `{}`, signed over `<ts>.{}`.
    let r = t
        .raw(
            reqwest::Method::GET,
            "/account/api/v1/balances",
            "{}",
            now_ms(),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("date"), "no Date header");
    assert_eq!(r.headers()["content-type"], "application/json");
    // No body at all: signed over `<ts>.`.
    let r = t
        .raw(
            reqwest::Method::GET,
            "/account/api/v1/balances",
            "",
            now_ms(),
            "",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A `{}` body signed as if empty is refused: the exact bytes count.
    let r = t
        .raw(
            reqwest::Method::GET,
            "/account/api/v1/balances",
            "{}",
            now_ms(),
            "",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    t.sb.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_are_refused_with_401() {
    let t = T::start().await;
    let path = "/trading/api/v1/order";
    // Signed for another body: tampered.
    let r = t
        .raw(reqwest::Method::POST, path, EXAMPLE, now_ms(), "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_signature");
    assert!(v["message"].as_str().unwrap().contains("HMAC"));
    // Unknown key.
    let ts = now_ms().to_string();
    let r = t
        .http
        .post(t.url(path))
        .header("x-api-key", "00000000-0000-0000-0000-000000000000")
        .header("x-api-timestamp", &ts)
        .header("x-api-sign", sign(&t.secret, &ts, EXAMPLE.as_bytes()))
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_key");
    // No headers.
    let r = t.http.post(t.url(path)).body(EXAMPLE).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("x-api-key"), "{v}");
    // Not a number.
    let r = t.raw(reqwest::Method::POST, path, EXAMPLE, 0, EXAMPLE);
    let r = r.header("x-api-timestamp", "soon").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(t.accepted().await.is_empty());
    t.sb.shutdown().await;
}

#[tokio::test]
async fn timestamps_outside_the_window_are_refused_saying_by_how_much() {
    let t = T::start().await;
    let path = "/trading/api/v1/order";
    let old = now_ms() - 60_000;
    let r = t
        .raw(reqwest::Method::POST, path, EXAMPLE, old, EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "timestamp_outside_window");
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains("outside the 30000 ms window") && m.contains("behind"),
        "{m}"
    );
    let ahead = now_ms() + 60_000;
    let r = t
        .raw(reqwest::Method::POST, path, EXAMPLE, ahead, EXAMPLE)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("ahead of"), "{v}");
    assert!(t.accepted().await.is_empty());
    // The window comes from the venue profile.
    let narrow = T::start_with(|c| c.venue.timestamp_window_ms = 1_000_000).await;
    let r = narrow
        .raw(reqwest::Method::POST, path, EXAMPLE, old, EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    narrow.sb.shutdown().await;
    t.sb.shutdown().await;
}

#[tokio::test]
async fn limits_rest_or_fill_markets_fill_and_balances_move() {
    let t = T::start().await;
    assert_eq!(t.balance("USDC").await, ("10000000".into(), "0".into()));
    assert_eq!(t.balance("BTC").await, ("1000".into(), "0".into()));
    // Below the ask (24012): rests, quote locked at the limit price.
    let (s, rest) = t
        .place(&order("BTC-USDC", "limit", "buy", "0.5", Some("20000.10")))
        .await;
    assert_eq!((s, rest["status"].as_str()), (200, Some("open")));
    assert_eq!(rest["filledQuantity"], "0");
    assert_eq!(rest["averagePrice"], Value::Null);
    assert_eq!(
        t.balance("USDC").await,
        ("9989999.95".into(), "10000.05".into())
    );
    // At or above the ask: fills at the ask.
    let (_, fill) = t
        .place(&order("BTC-USDC", "limit", "buy", "1", Some("24012")))
        .await;
    assert_eq!(
        (fill["status"].as_str(), fill["averagePrice"].as_str()),
        (Some("filled"), Some("24012"))
    );
    assert_eq!(t.balance("BTC").await, ("1001".into(), "0".into()));
    // Sells: above the bid rests with base locked; at the bid fills.
    let (_, s1) = t
        .place(&order("ETH-USDC", "limit", "sell", "2", Some("1700")))
        .await;
    assert_eq!(s1["status"], "open");
    assert_eq!(t.balance("ETH").await, ("998".into(), "2".into()));
    let (_, s2) = t
        .place(&order("ETH-USDC", "limit", "sell", "1", Some("1599.2")))
        .await;
    assert_eq!(
        (s2["status"].as_str(), s2["averagePrice"].as_str()),
        (Some("filled"), Some("1599.2"))
    );
    // Markets fill at once, with no price.
    let (_, m1) = t
        .place(&order("SOL-USDC", "market", "buy", "10", None))
        .await;
    assert_eq!(
        (m1["status"].as_str(), m1["averagePrice"].as_str()),
        (Some("filled"), Some("20.01"))
    );
    assert_eq!(m1["price"], Value::Null);
    let (_, m2) = t
        .place(&order("SOL-USDC", "market", "sell", "4", None))
        .await;
    assert_eq!(m2["averagePrice"], "19.99");
    assert_eq!(t.balance("SOL").await, ("1006".into(), "0".into()));
    // USDC: -10000.05 locked, -24012, +1599.2, -200.1, +79.96, and
    // fees of 0.1 % on each fill: 24.012 + 1.5992 + 0.2001 + 0.07996.
    assert_eq!(
        t.balance("USDC").await,
        ("9967441.11874".into(), "10000.05".into())
    );
    // Trades: one per fill, newest first.
    let (_, tr) = t.get("/trading/api/v1/trades/my").await;
    let trades = tr["trades"].as_array().unwrap();
    assert_eq!((trades.len(), tr["total"].as_u64()), (4, Some(4)));
    assert_eq!(trades[0]["orderId"], m2["id"]);
    assert_eq!(trades[0]["side"], "sell");
    assert_eq!(trades[0]["price"], "19.99");
    assert_eq!(trades[0]["quantity"], "4");
    assert_eq!(trades[0]["fee"], "0.07996");
    assert_eq!(trades[0]["feeCurrency"], "USDC");
    assert_eq!(trades[3]["orderId"], fill["id"]);
    let (_, open) = t.get("/trading/api/v1/orders/my?status=open").await;
    assert_eq!(open["orders"].as_array().unwrap().len(), 2);
    let (_, eth) = t
        .get("/trading/api/v1/orders/my?pair=ETH-USDC&status=all")
        .await;
    assert_eq!(eth["orders"].as_array().unwrap().len(), 2);
    let (s, _) = t.get("/trading/api/v1/orders/my?status=done").await;
    assert_eq!(s, 400);
    t.sb.shutdown().await;
}

#[tokio::test]
async fn refused_orders_are_not_stored() {
    let t = T::start().await;
    let (s, e) = t
        .place(&order("BTC-USDC", "limit", "buy", "1000000", Some("25000")))
        .await;
    assert_eq!((s, e["error"].as_str()), (422, Some("insufficient_funds")));
    assert!(e["message"].as_str().unwrap().contains("USDC"), "{e}");
    let (s, _) = t
        .place(&order("BTC-USDC", "market", "sell", "1000.5", None))
        .await;
    assert_eq!(s, 422);
    let number = r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":2,"price":"1"}"#;
    let (s, e) = t.place(number).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_order")));
    assert!(e["message"].as_str().unwrap().contains("string"), "{e}");
    let (s, _) = t.place(&order("BTC-USDC", "limit", "buy", "1", None)).await;
    assert_eq!(s, 400);
    let (s, _) = t
        .place(&order("BTC-USDC", "market", "buy", "1", Some("1")))
        .await;
    assert_eq!(s, 400);
    assert!(t.accepted().await.is_empty());
    assert_eq!(t.balance("USDC").await, ("10000000".into(), "0".into()));
    t.sb.shutdown().await;
}

#[tokio::test]
async fn cancel_unlocks_and_only_open_orders_cancel() {
    let t = T::start().await;
    let (_, o) = t
        .place(&order("BTC-USDC", "limit", "sell", "3", Some("30000")))
        .await;
    let id = o["id"].as_str().unwrap();
    assert_eq!(t.balance("BTC").await, ("997".into(), "3".into()));
    let (s, c) = t.delete(&format!("/trading/api/v1/order/{id}")).await;
    assert_eq!(
        (s, c["status"].as_str(), c["id"].as_str()),
        (200, Some("cancelled"), Some(id))
    );
    assert_eq!(t.balance("BTC").await, ("1000".into(), "0".into()));
    let (s, e) = t.delete(&format!("/trading/api/v1/order/{id}")).await;
    assert_eq!((s, e["error"].as_str()), (409, Some("not_open")));
    let (_, f) = t
        .place(&order("BTC-USDC", "market", "buy", "1", None))
        .await;
    let (s, _) = t
        .delete(&format!(
            "/trading/api/v1/order/{}",
            f["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 409);
    let (s, _) = t.delete("/trading/api/v1/order/O0000000099").await;
    assert_eq!(s, 404);
    assert_eq!(t.accepted().await[0].status, "cancelled");
    t.sb.shutdown().await;
}

#[tokio::test]
async fn trades_paginate_newest_first() {
    let t = T::start().await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        let (_, o) = t
            .place(&order("BTC-USDC", "market", "buy", &format!("0.{i}"), None))
            .await;
        ids.push(o["id"].as_str().unwrap().to_string());
    }
    t.place(&order("ETH-USDC", "market", "buy", "1", None))
        .await;
    let t0 = t;
    let t = &t0;
    let page = |n: u32| async move {
        let (s, v) = t
            .get(&format!(
                "/trading/api/v1/trades/my?pair=BTC-USDC&limit=2&page={n}"
            ))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["page"].as_u64(), v["limit"].as_u64(), v["total"].as_u64()),
            (Some(n.into()), Some(2), Some(5))
        );
        v["trades"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["orderId"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let got: Vec<String> = [page(1).await, page(2).await, page(3).await].concat();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);
    assert!(page(4).await.is_empty());
    let (_, all) = t.get("/trading/api/v1/trades/my").await;
    assert_eq!(
        (
            all["total"].as_u64(),
            all["limit"].as_u64(),
            all["page"].as_u64()
        ),
        (Some(6), Some(100), Some(1))
    );
    // from/to are inclusive bounds on the trade time.
    let ts = all["trades"][5]["timestamp"].as_i64().unwrap();
    let (_, v) = t
        .get(&format!("/trading/api/v1/trades/my?from={ts}&to={ts}"))
        .await;
    assert!(v["total"].as_u64().unwrap() >= 1);
    let (_, v) = t
        .get(&format!("/trading/api/v1/trades/my?to={}", ts - 1))
        .await;
    assert_eq!(v["total"], 0);
    for bad in [
        "limit=501",
        "limit=0",
        "page=0",
        "from=yesterday",
        "pair=btc",
    ] {
        let (s, v) = t.get(&format!("/trading/api/v1/trades/my?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, _) = t.get("/trading/api/v1/trades/my?limit=500").await;
    assert_eq!(s, 200);
    t0.sb.shutdown().await;
}

#[tokio::test]
async fn deposit_addresses_are_stable_and_other_paths_are_404_json() {
    let t = T::start().await;
    let body = r#"{"currency":"USDC","network":"ERC20"}"#;
    let (s, a) = t.post("/account/api/v1/deposit/address", body).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["currency"].as_str(), a["network"].as_str()),
        (Some("USDC"), Some("ERC20"))
    );
    assert!(a["address"].as_str().unwrap().starts_with("0x"));
    let (_, b) = t.post("/account/api/v1/deposit/address", body).await;
    assert_eq!(a, b);
    let (s, _) = t
        .post("/account/api/v1/deposit/address", r#"{"currency":"USDC"}"#)
        .await;
    assert_eq!(s, 400);
    let (s, e) = t.get("/trading/api/v9/nothing").await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")));
    let r = t.http.get(t.url("/sandbox/health")).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        serde_json::json!({"ok": true})
    );
    let (s, _) = t.get("/trading/api/v1/order").await;
    assert_eq!(s, 405);
    t.sb.shutdown().await;
}

#[tokio::test]
async fn client_order_ids_are_stored_and_echoed_where_the_venue_has_them() {
    let t = T::start_with(|c| c.venue.client_order_id_field = Some("clientOrderId".into())).await;
    let body = r#"{"pair":"BTC-USDC","type":"market","side":"buy","quantity":"1","clientOrderId":"hqx-abc"}"#;
    let (s, o) = t.place(body).await;
    assert_eq!((s, o["clientOrderId"].as_str()), (200, Some("hqx-abc")));
    let (_, list) = t.get("/trading/api/v1/orders/my").await;
    assert_eq!(list["orders"][0]["clientOrderId"], "hqx-abc");
    assert_eq!(
        t.accepted().await[0].client_order_id.as_deref(),
        Some("hqx-abc")
    );
    // A second order with the same client id is refused, and nothing moves.
    let (s, e) = t.place(body).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("duplicate_client_order_id"))
    );
    assert_eq!(t.accepted().await.len(), 1);
    t.sb.shutdown().await;
}

#[tokio::test]
async fn a_bad_venue_path_or_rate_is_an_error_not_a_panic() {
    let (key, secret) = generate_credentials();
    let mut cfg = SandboxConfig::new(key, secret);
    cfg.venue.paths.order_by_id = "/order/:id".into();
    let e = Sandbox::start(cfg.clone(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("{id}"), "{e}");
    cfg.venue = Venue::default();
    cfg.rate = Some(0);
    assert!(matches!(
        Sandbox::start(cfg, ([127, 0, 0, 1], 0).into()).await,
        Err(SandboxError::Config(_))
    ));
}

#[test]
fn credentials_have_the_published_shape() {
    let (key, secret) = generate_credentials();
    assert!(uuid::Uuid::parse_str(&key).is_ok());
    let s = secret.expose();
    assert_eq!(s.len(), 32);
    assert!(s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_ne!(generate_credentials().1, secret);
    // Never `-x...`, which a command line reads as an option (1 in 64 of
    // them did; 2,000 draws miss that with odds of 1 in 10^14).
    for _ in 0..2000 {
        assert!(!generate_credentials().1.expose().starts_with('-'));
    }
}

/// State that survives a restart: orders, fills, cancels, balances,
/// the id sequence; a torn last line is ignored and cut off.
#[tokio::test]
async fn state_survives_a_restart_even_with_a_torn_last_line() {
    let dir = std::env::temp_dir().join(format!("hqx-sandbox-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.jsonl");
    let (key, secret) = generate_credentials();
    let start = |state: &Path| {
        let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
        cfg.state_path = Some(state.to_path_buf());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let (key, secret) = (key.clone(), secret.clone());
        async move {
            let sb = Sandbox::start(cfg, ([127, 0, 0, 1], 0).into())
                .await
                .unwrap();
            T {
                sb,
                key,
                secret,
                http,
            }
        }
    };

    let t = start(&state).await;
    let (_, filled) = t.place(EXAMPLE).await;
    let (_, open) = t
        .place(&order("ETH-USDC", "limit", "buy", "1", Some("1000")))
        .await;
    let (_, gone) = t
        .place(&order("SOL-USDC", "limit", "sell", "5", Some("99")))
        .await;
    t.delete(&format!(
        "/trading/api/v1/order/{}",
        gone["id"].as_str().unwrap()
    ))
    .await;
    t.post(
        "/account/api/v1/deposit/address",
        r#"{"currency":"BTC","network":"bitcoin"}"#,
    )
    .await;
    let (_, orders_before) = t.get("/trading/api/v1/orders/my").await;
    let (_, balances_before) = t.get("/account/api/v1/balances").await;
    let (_, trades_before) = t.get("/trading/api/v1/trades/my").await;
    let accepted_before = t.accepted().await;
    t.sb.shutdown().await;

    // A kill -9 mid-write leaves part of a line.
    let whole = std::fs::read(&state).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(br#"{"event":"placed","seq":9,"id":"O00"#);
    std::fs::write(&state, &torn).unwrap();

    let t = start(&state).await;
    assert_eq!(
        std::fs::read(&state).unwrap(),
        whole,
        "the torn line was not cut off"
    );
    // While it runs, no second sandbox may append to the same file.
    let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
    cfg.state_path = Some(state.clone());
    let e = Sandbox::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    assert_eq!(t.get("/trading/api/v1/orders/my").await.1, orders_before);
    assert_eq!(t.get("/account/api/v1/balances").await.1, balances_before);
    assert_eq!(t.get("/trading/api/v1/trades/my").await.1, trades_before);
    assert_eq!(t.accepted().await, accepted_before);
    // The open order is still open and cancellable; ids keep counting.
    let (s, _) = t
        .delete(&format!(
            "/trading/api/v1/order/{}",
            open["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    let (_, next) = t
        .place(&order("BTC-USDC", "market", "sell", "1", None))
        .await;
    let next_id = next["id"].as_str().unwrap();
    for o in [&filled, &open, &gone] {
        assert_ne!(o["id"].as_str().unwrap(), next_id);
    }
    assert_eq!(t.accepted().await.last().unwrap().seq, 4);
    t.sb.shutdown().await;

    // A complete but garbled last line (a torn write that ended in a
    // newline) is also ignored; damage before the last line is refused.
    let mut text = std::fs::read(&state).unwrap();
    let good_len = text.len();
    text.extend_from_slice(b"{\"event\":\"plac\n");
    std::fs::write(&state, &text).unwrap();
    let t = start(&state).await;
    assert_eq!(t.accepted().await.len(), 4);
    t.sb.shutdown().await;
    assert_eq!(std::fs::metadata(&state).unwrap().len() as usize, good_len);
    let mut text = b"garbage\n".to_vec();
    text.extend_from_slice(&std::fs::read(&state).unwrap());
    std::fs::write(&state, &text).unwrap();
    let (key2, secret2) = generate_credentials();
    let mut cfg = SandboxConfig::new(key2, secret2);
    cfg.state_path = Some(state.clone());
    let e = Sandbox::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn over_the_rate_the_answer_is_429_with_retry_after() {
    let t = T::start_with(|c| c.rate = Some(1)).await;
    // Burst 1, one more per second: some request among a quick dozen is
    // refused however slow this machine is.
    let mut refused = None;
    for _ in 0..12 {
        let r = t
            .raw(
                reqwest::Method::GET,
                "/account/api/v1/balances",
                "{}",
                now_ms(),
                "{}",
            )
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("no request was rate limited");
    let secs: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs >= 1);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "rate_limited");
    // The sandbox's own endpoints are not limited.
    for _ in 0..5 {
        assert_eq!(
            t.http
                .get(t.url("/sandbox/orders"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    t.sb.shutdown().await;
}

fn faults(spec: &str) -> FaultSpec {
    spec.parse().unwrap()
}

#[tokio::test]
async fn error5xx_answers_5xx_and_does_nothing() {
    let t = T::start_with(|c| c.faults = faults("error5xx=1")).await;
    for _ in 0..6 {
        let (s, e) = t.place(EXAMPLE).await;
        assert!([500, 502, 503].contains(&s), "{s}");
        assert_eq!(e["error"], "server_error");
    }
    assert!(t.accepted().await.is_empty(), "/sandbox/* is never faulted");
    t.sb.set_faults(FaultSpec::default(), 0);
    assert_eq!(t.balance("USDC").await.0, "10000000");
    t.sb.shutdown().await;
}

#[tokio::test]
async fn drop_commits_then_loses_the_answer() {
    let t = T::start_with(|c| c.faults = faults("drop=1")).await;
    let (mut closed, mut failed) = (0, 0);
    for i in 0..10 {
        let body = order("BTC-USDC", "market", "buy", &format!("0.0{i}1"), None);
        match t
            .raw(
                reqwest::Method::POST,
                "/trading/api/v1/order",
                &body,
                now_ms(),
                &body,
            )
            .send()
            .await
        {
            Ok(r) => {
                assert_eq!(r.status(), 500);
                failed += 1;
            }
            Err(_) => closed += 1,
        }
    }
    assert!(closed > 0 && failed > 0, "closed {closed}, 500 {failed}");
    let acc = t.accepted().await;
    assert_eq!(acc.len(), 10, "every dropped placement was committed");
    assert_eq!(
        acc[3].received_body,
        order("BTC-USDC", "market", "buy", "0.031", None)
    );
    // Drop only hits placements that succeed: a refusal is answered.
    let (s, _) = t
        .place(&order("BTC-USDC", "market", "buy", "100000", None))
        .await;
    assert_eq!(s, 422);
    // And reads are answered normally.
    let (s, v) = t.get("/trading/api/v1/orders/my").await;
    assert_eq!((s, v["orders"].as_array().unwrap().len()), (200, 10));
    t.sb.shutdown().await;
}

#[tokio::test]
async fn reset_closes_the_connection_before_anything_is_done() {
    let t = T::start_with(|c| c.faults = faults("reset=1")).await;
    for _ in 0..3 {
        let r = t
            .raw(
                reqwest::Method::POST,
                "/trading/api/v1/order",
                EXAMPLE,
                now_ms(),
                EXAMPLE,
            )
            .send()
            .await;
        let e = r.expect_err("a reset must not produce a response");
        assert!(!e.is_timeout(), "{e}");
    }
    let r = t
        .raw(
            reqwest::Method::GET,
            "/account/api/v1/balances",
            "{}",
            now_ms(),
            "{}",
        )
        .send()
        .await;
    assert!(r.is_err());
    assert!(t.accepted().await.is_empty());
    t.sb.shutdown().await;
}

#[tokio::test]
async fn limit429_answers_429_with_retry_after_1_and_does_nothing() {
    let t = T::start_with(|c| c.faults = faults("limit429=1")).await;
    let r = t
        .raw(
            reqwest::Method::POST,
            "/trading/api/v1/order",
            EXAMPLE,
            now_ms(),
            EXAMPLE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(t.accepted().await.is_empty());
    t.sb.shutdown().await;
}

#[tokio::test]
async fn stall_hangs_past_the_clients_timeout() {
    let dir = std::env::temp_dir().join(format!("hqx-sandbox-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.jsonl");
    let t = T::start_with(|c| {
        c.faults = faults("stall=1,stall_for=60s");
        c.state_path = Some(state.clone());
    })
    .await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for i in 0..8 {
        let body = order("BTC-USDC", "market", "buy", &format!("0.{i}1"), None);
        let ts = now_ms().to_string();
        let e = impatient
            .post(t.url("/trading/api/v1/order"))
            .header("x-api-key", &t.key)
            .header("x-api-timestamp", &ts)
            .header("x-api-sign", sign(&t.secret, &ts, body.as_bytes()))
            .body(body)
            .send()
            .await
            .expect_err("a stall must outlast the client's timeout");
        assert!(e.is_timeout(), "{e}");
    }
    // Shutdown ends the stalls (with their 504s) rather than waiting a
    // minute, and waits for them: every commit is done by then.
    t.sb.shutdown().await;
    // Placements are committed before the hang, or not at all, by draw.
    let committed = std::fs::read_to_string(&state).unwrap().lines().count();
    assert!(committed > 0 && committed < 8, "{committed} of 8 committed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_stall_ends_with_504_and_latency_delays_but_answers() {
    let t = T::start_with(|c| c.faults = faults("stall=1,stall_for=1ms")).await;
    let (s, e) = t.get("/account/api/v1/balances").await;
    assert_eq!((s, e["error"].as_str()), (504, Some("gateway_timeout")));
    t.sb.set_faults(faults("latency=1ms"), 0);
    let (s, _) = t.get("/account/api/v1/balances").await;
    assert_eq!(s, 200);
    t.sb.shutdown().await;
}

/// The same seed and the same requests give the same faults.
#[tokio::test]
async fn faults_replay_from_the_seed() {
    async fn outcomes(seed: u64) -> (Vec<String>, usize) {
        let t = T::start_with(|c| {
            c.faults = faults("drop=0.3,error5xx=0.2,reset=0.1,limit429=0.1");
            c.seed = seed;
        })
        .await;
        let mut seen = Vec::new();
        for i in 0..30 {
            let body = order("BTC-USDC", "market", "buy", &format!("0.{i}1"), None);
            let r = t
                .raw(
                    reqwest::Method::POST,
                    "/trading/api/v1/order",
                    &body,
                    now_ms(),
                    &body,
                )
                .send()
                .await;
            seen.push(match r {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "closed".into(),
            });
        }
        let n = t.accepted().await.len();
        t.sb.shutdown().await;
        (seen, n)
    }
    let a = outcomes(5).await;
    assert_eq!(a, outcomes(5).await);
    assert_ne!(a.0, outcomes(6).await.0);
    for kind in ["200", "500", "429", "closed"] {
        assert!(a.0.iter().any(|s| s == kind), "no {kind} in {:?}", a.0);
    }
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let t = T::start().await;
    let (s, _) = t.get("/account/api/v1/balances").await;
    assert_eq!(s, 200);
    let url = t.url("/sandbox/health");
    // The client keeps its connection; shutdown must not wait for it.
    t.sb.shutdown().await;
    assert!(t.http.get(url).send().await.is_err());
}

/// Not a test of speed (no assertion on time): prints placements per
/// second over loopback. Run with
/// `cargo test --release --lib sandbox::tests::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    let dir = std::env::temp_dir().join(format!("hqx-sandbox-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.jsonl");
    let t = Arc::new(T::start_with(|c| c.state_path = Some(state.clone())).await);
    let n = 20_000;
    for concurrency in [1usize, 8] {
        let started = std::time::Instant::now();
        let mut tasks = JoinSet::new();
        for w in 0..concurrency {
            let t = t.clone();
            tasks.spawn(async move {
                for i in (w..n).step_by(concurrency) {
                    let price = if i % 2 == 0 { "30000" } else { "1000" };
                    let (s, _) = t
                        .place(&order("BTC-USDC", "limit", "buy", "0.001", Some(price)))
                        .await;
                    assert_eq!(s, 200);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{n} signed placements, {concurrency} in flight, state file on: {secs:.2} s, {:.0}/s",
            n as f64 / secs
        );
    }
    let bytes = std::fs::metadata(&state).unwrap().len();
    println!("state file: {} bytes for {} orders", bytes, 2 * n);
    std::fs::remove_dir_all(&dir).unwrap();
}

impl T {
    /// A POST to a sandbox control endpoint: no auth.
    async fn control(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn sandbox_trades(&self) -> Value {
        let r = self
            .http
            .get(self.url("/sandbox/trades"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// The ids of the orders on one page of `GET orders/my?query`.
    async fn order_page(&self, query: &str) -> (Vec<String>, Value) {
        let (s, v) = self
            .get(&format!("/trading/api/v1/orders/my?{query}"))
            .await;
        assert_eq!(s, 200, "{query}: {v}");
        let ids = v["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        (ids, v)
    }

    /// The trade ids on one page of `GET trades/my?query`.
    async fn trade_page(&self, query: &str) -> Vec<String> {
        let (s, v) = self
            .get(&format!("/trading/api/v1/trades/my?{query}"))
            .await;
        assert_eq!(s, 200, "{query}: {v}");
        v["trades"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn partial_fills_over_http_show_in_the_order_trades_and_balances() {
    let t = T::start().await;
    let (_, o) = t
        .place(&order("BTC-USDC", "limit", "buy", "1", Some("23000")))
        .await;
    let id = id_of(&o);
    assert_eq!(o["updatedAt"], o["createdAt"]);
    let (s, f) = t
        .control(
            "/sandbox/fill",
            &format!(r#"{{"orderId":"{id}","quantity":"0.4"}}"#),
        )
        .await;
    assert_eq!(s, 200, "{f}");
    let ord = &f["order"];
    assert_eq!(ord["status"], "open");
    assert_eq!(ord["filledQuantity"], "0.4");
    assert_eq!(ord["averagePrice"], "23000");
    assert!(ord["updatedAt"].as_i64() >= ord["createdAt"].as_i64());
    let trade = &f["trade"];
    assert_eq!(trade["orderId"].as_str(), Some(id.as_str()));
    assert_eq!(
        (
            trade["price"].as_str(),
            trade["quantity"].as_str(),
            trade["fee"].as_str(),
            trade["feeCurrency"].as_str(),
            trade["side"].as_str(),
            trade["pair"].as_str()
        ),
        (
            Some("23000"),
            Some("0.4"),
            Some("9.2"),
            Some("USDC"),
            Some("buy"),
            Some("BTC-USDC")
        )
    );
    assert!(trade["timestamp"].as_i64().unwrap() > 0);
    let keys: Vec<&str> = trade
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "orderId",
            "pair",
            "side",
            "price",
            "quantity",
            "fee",
            "feeCurrency",
            "timestamp"
        ]
    );
    // The listing, the order endpoint and the trades endpoint agree.
    let (_, one) = t.get(&format!("/trading/api/v1/order/{id}")).await;
    assert_eq!(&one, ord);
    let (_, mine) = t.get("/trading/api/v1/trades/my").await;
    assert_eq!(mine["trades"][0], *trade);
    assert_eq!(t.sandbox_trades().await[0], *trade);
    // 23000 locked, 9200 of it paid, fee 9.2 from available.
    assert_eq!(
        t.balance("USDC").await,
        ("9976990.8".into(), "13800".into())
    );
    assert_eq!(t.balance("BTC").await, ("1000.4".into(), "0".into()));
    // Cancel the rest: it unlocks; the order stays partly filled.
    let (s, c) = t.delete(&format!("/trading/api/v1/order/{id}")).await;
    assert_eq!((s, c["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(c["filledQuantity"], "0.4");
    assert_eq!(c["averagePrice"], "23000");
    assert_eq!(t.balance("USDC").await, ("9990790.8".into(), "0".into()));
    // A second fill, whole remainder, of another order.
    let (_, sell) = t
        .place(&order("SOL-USDC", "limit", "sell", "3", Some("25.5")))
        .await;
    let (s, f) = t
        .control(
            "/sandbox/fill",
            &format!(r#"{{"orderId":"{}"}}"#, id_of(&sell)),
        )
        .await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["order"]["status"], "filled");
    assert_eq!(f["trade"]["quantity"], "3");
    assert_eq!(f["trade"]["fee"], "0.0765");
    assert_eq!(t.balance("SOL").await, ("997".into(), "0".into()));
    assert_eq!(t.sb.accepted_trades().len(), 2);
    t.sb.shutdown().await;
}

#[tokio::test]
async fn control_endpoints_refuse_with_400_404_409() {
    let t = T::start().await;
    let (_, o) = t
        .place(&order("ETH-USDC", "limit", "buy", "2", Some("1500")))
        .await;
    let id = id_of(&o);
    let (_, taken) = t
        .place(&order("ETH-USDC", "market", "buy", "1", None))
        .await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/sandbox/fill",
            r#"{"orderId":"O0000009999"}"#.into(),
            404,
            "not_found",
        ),
        (
            "/sandbox/fill",
            format!(r#"{{"orderId":"{}"}}"#, id_of(&taken)),
            409,
            "not_open",
        ),
        (
            "/sandbox/fill",
            format!(r#"{{"orderId":"{id}","quantity":"0"}}"#),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/fill",
            format!(r#"{{"orderId":"{id}","quantity":"2.1"}}"#),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/fill",
            format!(r#"{{"orderId":"{id}","quantity":0.5}}"#),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/fill",
            r#"{"quantity":"1"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/market",
            r#"{"pair":"ETH-USDC"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/market",
            r#"{"pair":"eth","price":"1"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/market",
            r#"{"pair":"ETH-USDC","price":"-1"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/market",
            r#"{"pair":"ETH-USDC","price":"1","x":1}"#.into(),
            400,
            "invalid_request",
        ),
        ("/sandbox/market", "not json".into(), 400, "invalid_request"),
        (
            "/sandbox/deposit",
            r#"{"currency":"USDC","amount":"0"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/deposit",
            r#"{"currency":"usdc","amount":"1"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "/sandbox/deposit",
            r#"{"currency":"USDC","amount":"1","apiKey":"someone-else"}"#.into(),
            400,
            "invalid_request",
        ),
    ];
    for (path, body, status, code) in cases {
        let (s, e) = t.control(path, &body).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (status, Some(code)),
            "{path} {body}: {e}"
        );
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    let r = t.http.get(t.url("/sandbox/market")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Nothing moved.
    assert_eq!(t.sb.accepted_trades().len(), 1);
    assert_eq!(t.sb.accepted_orders()[0].status, "open");
    // The Rust API answers the same, with the message.
    let e =
        t.sb.control(Control::Fill {
            order_id: "O0000009999".into(),
            quantity: None,
        })
        .unwrap_err();
    assert!(e.contains("no order O0000009999"), "{e}");
    // The served key is accepted on a deposit.
    let (s, d) = t
        .control(
            "/sandbox/deposit",
            &format!(
                r#"{{"currency":"USDC","amount":"1000.50","apiKey":"{}"}}"#,
                t.key
            ),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d,
        serde_json::json!({"currency":"USDC","amount":"1000.5","available":t.balance("USDC").await.0})
    );
    t.sb.shutdown().await;
}

#[tokio::test]
async fn a_market_move_fills_what_crosses_and_the_ticker_follows() {
    let t = T::start().await;
    let (s, tk) = t.get("/trading/api/v1/ticker?pair=BTC-USDC").await;
    assert_eq!(s, 200, "{tk}");
    assert_eq!(
        (
            tk["pair"].as_str(),
            tk["price"].as_str(),
            tk["bid"].as_str(),
            tk["ask"].as_str()
        ),
        (
            Some("BTC-USDC"),
            Some("24000"),
            Some("23988"),
            Some("24012")
        )
    );
    assert!(tk["timestamp"].as_i64().unwrap() > 0);
    let (_, buy) = t
        .place(&order("BTC-USDC", "limit", "buy", "0.5", Some("23500")))
        .await;
    let (_, low) = t
        .place(&order("BTC-USDC", "limit", "buy", "0.5", Some("23000")))
        .await;
    let (_, sell) = t
        .place(&order("BTC-USDC", "limit", "sell", "0.2", Some("26000")))
        .await;
    let (_, eur) = t
        .place(&order("BTC-EUR", "limit", "buy", "0.01", Some("23900")))
        .await;
    let (s, m) = t
        .control(
            "/sandbox/market",
            r#"{"pair":"BTC-USDC","price":"23500.00"}"#,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(
        (m["pair"].as_str(), m["price"].as_str()),
        (Some("BTC-USDC"), Some("23500"))
    );
    let trades = m["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 1, "{m}");
    assert_eq!(trades[0]["orderId"], buy["id"]);
    assert_eq!(
        (trades[0]["price"].as_str(), trades[0]["fee"].as_str()),
        (Some("23500"), Some("11.75"))
    );
    let (_, tk) = t.get("/trading/api/v1/ticker?pair=BTC-USDC").await;
    assert_eq!(
        (tk["price"].as_str(), tk["bid"].as_str(), tk["ask"].as_str()),
        (Some("23500"), Some("23488.25"), Some("23511.75"))
    );
    // Other pairs keep their price.
    let (_, tk) = t.get("/trading/api/v1/ticker?pair=BTC-EUR").await;
    assert_eq!(tk["price"], "24000");
    // Up through the sell: it fills at 26000, not at 30000.
    let m =
        t.sb.control(Control::Market {
            pair: "BTC-USDC".into(),
            price: "30000".into(),
        })
        .unwrap();
    assert_eq!(m["trades"][0]["orderId"], sell["id"]);
    assert_eq!(m["trades"][0]["price"], "26000");
    let status = |id: &Value| {
        let id = id.as_str().unwrap().to_string();
        t.sb.accepted_orders()
            .into_iter()
            .find(|o| o.id == id)
            .unwrap()
            .status
    };
    assert_eq!(status(&buy["id"]), "filled");
    assert_eq!(status(&low["id"]), "open");
    assert_eq!(status(&sell["id"]), "filled");
    assert_eq!(status(&eur["id"]), "open");
    // USDC: -11500 locked (low), -11750 paid from locked and a fee of
    // 11.75 (buy), +5200 -5.2 (sell).
    assert_eq!(
        t.balance("USDC").await,
        ("9981933.05".into(), "11500".into())
    );
    for bad in ["", "?pair=", "?pair=btc", "?pair=BTC"] {
        let (s, e) = t.get(&format!("/trading/api/v1/ticker{bad}")).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("invalid_query")),
            "{bad}"
        );
    }
    t.sb.shutdown().await;
}

/// The ticker is an API endpoint: signed, faulted. `/sandbox/*` never is.
#[tokio::test]
async fn faults_hit_the_api_never_the_sandbox_endpoints() {
    let t = T::start_with(|c| c.faults = faults("error5xx=1")).await;
    let (s, _) = t.get("/trading/api/v1/ticker?pair=BTC-USDC").await;
    assert!([500, 502, 503].contains(&s), "{s}");
    let r = t
        .http
        .get(t.url("/trading/api/v1/ticker?pair=BTC-USDC"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "the ticker is not open to all");
    let controls = [
        ("/sandbox/deposit", r#"{"currency":"USDC","amount":"5"}"#),
        ("/sandbox/market", r#"{"pair":"BTC-USDC","price":"25000"}"#),
        (
            "/sandbox/after-trades-pages",
            r#"{"pages":0,"action":{"deposit":{"currency":"BTC","amount":"1"}}}"#,
        ),
    ];
    for spec in [
        "error5xx=1",
        "reset=1",
        "limit429=1",
        "stall=1,stall_for=60s",
        "drop=1",
    ] {
        t.sb.set_faults(faults(spec), 0);
        for (path, body) in controls {
            let (s, v) = t.control(path, body).await;
            assert_eq!(s, 200, "{spec} {path}: {v}");
        }
        assert!(t.sandbox_trades().await.as_array().unwrap().is_empty());
        assert!(t.accepted().await.is_empty());
    }
    t.sb.set_faults(FaultSpec::default(), 0);
    // Five rounds of each control happened.
    assert_eq!(t.balance("USDC").await.0, "10000025");
    assert_eq!(t.balance("BTC").await.0, "1005");
    t.sb.shutdown().await;
}

#[tokio::test]
async fn the_order_list_pages_oldest_first_and_later_orders_never_shift_pages() {
    let t = T::start_with(|c| c.venue.orders_page_limit = 4).await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        let (_, o) = t
            .place(&order(
                "BTC-USDC",
                "limit",
                "buy",
                &format!("0.{i}"),
                Some("20000"),
            ))
            .await;
        ids.push(id_of(&o));
    }
    let (_, eth) = t
        .place(&order("ETH-USDC", "market", "buy", "1", None))
        .await;
    let (p1, v) = t.order_page("pair=BTC-USDC&limit=2&page=1").await;
    assert_eq!(
        (v["page"].as_u64(), v["limit"].as_u64(), v["total"].as_u64()),
        (Some(1), Some(2), Some(5))
    );
    assert_eq!(p1, ids[0..2]);
    // Orders placed between two page reads append at the end.
    for i in 6..=7 {
        let (_, o) = t
            .place(&order(
                "BTC-USDC",
                "limit",
                "buy",
                &format!("0.{i}"),
                Some("20000"),
            ))
            .await;
        ids.push(id_of(&o));
    }
    let (p2, v) = t.order_page("pair=BTC-USDC&limit=2&page=2").await;
    assert_eq!(v["total"], 7);
    assert_eq!(p2, ids[2..4]);
    let (p3, _) = t.order_page("pair=BTC-USDC&limit=2&page=3").await;
    let (p4, _) = t.order_page("pair=BTC-USDC&limit=2&page=4").await;
    let (p5, _) = t.order_page("pair=BTC-USDC&limit=2&page=5").await;
    assert_eq!([p1, p2, p3, p4].concat(), ids);
    assert!(p5.is_empty());
    // Status filter and the whole account.
    t.sb.control(Control::Fill {
        order_id: ids[1].clone(),
        quantity: None,
    })
    .unwrap();
    let (open, v) = t.order_page("status=open&limit=4").await;
    assert_eq!(v["total"], 6);
    assert_eq!(open, [&ids[0..1], &ids[2..5]].concat());
    let (filled, _) = t.order_page("status=filled&limit=4").await;
    assert_eq!(filled, [ids[1].clone(), id_of(&eth)]);
    // from/to: inclusive bounds on createdAt.
    let created = v["orders"][1]["createdAt"].as_i64().unwrap();
    let (_, v) = t
        .order_page(&format!("from={created}&to={created}&limit=4"))
        .await;
    assert!(v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["createdAt"] == created));
    assert!(v["total"].as_u64().unwrap() >= 1);
    let (none, _) = t.order_page(&format!("to={}", created - 100_000)).await;
    assert!(none.is_empty());
    // Without a limit, a default page (100, capped here by the venue's
    // orders_page_limit of 4), as an exchange that caps its lists would:
    // the first page only, and `total` says there is more.
    let (first, v) = t.order_page("pair=BTC-USDC&status=all").await;
    assert_eq!(first, ids[..4]);
    assert_eq!(
        (v["limit"].as_u64(), v["total"].as_u64(), v["page"].as_u64()),
        (Some(4), Some(7), Some(1))
    );
    for bad in [
        "limit=5",
        "limit=0",
        "page=0",
        "from=x",
        "to=1.5",
        "status=done",
        "pair=btc",
    ] {
        let (s, v) = t.get(&format!("/trading/api/v1/orders/my?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    t.sb.shutdown().await;
}

/// The trigger: an action that lands between two page reads of a
/// client's trade history, deterministically.
#[tokio::test]
async fn after_trades_pages_acts_between_two_page_reads() {
    let t = T::start().await;
    let (_, rest) = t
        .place(&order("BTC-USDC", "limit", "buy", "1", Some("23000")))
        .await;
    for i in 1..=3 {
        t.place(&order("BTC-USDC", "market", "buy", &format!("0.{i}"), None))
            .await;
    }
    t.sb.after_trades_pages(
        2,
        Control::Fill {
            order_id: id_of(&rest),
            quantity: Some("0.25".into()),
        },
    );
    // Failed requests do not count: a 400 and a faulted one.
    let (s, _) = t.get("/trading/api/v1/trades/my?limit=0").await;
    assert_eq!(s, 400);
    t.sb.set_faults(faults("error5xx=1"), 0);
    let (s, _) = t.get("/trading/api/v1/trades/my?limit=2").await;
    assert!(s >= 500);
    t.sb.set_faults(FaultSpec::default(), 0);
    // Newest first, two per page: [T3, T2], then [T1] and the fill lands.
    let first = t.trade_page("limit=2&page=1").await;
    assert_eq!(t.sb.accepted_trades().len(), 3, "not yet");
    let second = t.trade_page("limit=2&page=2").await;
    assert_eq!(first, ["T0000000003", "T0000000002"]);
    assert_eq!(second, ["T0000000001"]);
    // The very next read sees the new trade, which shifts the pages.
    let again = t.trade_page("limit=2&page=1").await;
    assert_eq!(again, ["T0000000004", "T0000000003"]);
    let (_, v) = t.get("/trading/api/v1/trades/my").await;
    assert_eq!(
        (v["total"].as_u64(), v["trades"][0]["quantity"].as_str()),
        (Some(4), Some("0.25"))
    );
    // Over HTTP, a market move after one page.
    let (s, v) = t
        .control(
            "/sandbox/after-trades-pages",
            r#"{"pages":1,"action":{"market":{"pair":"BTC-USDC","price":"22000"}}}"#,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["pages"], 1);
    t.trade_page("limit=1").await;
    let o =
        t.sb.accepted_orders()
            .into_iter()
            .find(|o| o.id == id_of(&rest))
            .unwrap();
    assert_eq!(o.status, "filled");
    assert_eq!(t.sb.accepted_trades().len(), 5);
    // Two triggers due on the same page both run, in the order armed.
    t.sb.after_trades_pages(
        1,
        Control::Deposit {
            currency: "ETH".into(),
            amount: "1".into(),
        },
    );
    t.sb.after_trades_pages(
        1,
        Control::Deposit {
            currency: "ETH".into(),
            amount: "2".into(),
        },
    );
    t.trade_page("limit=1").await;
    assert_eq!(t.balance("ETH").await.0, "1003");
    // A refused action is dropped; the page is still answered.
    t.sb.after_trades_pages(
        1,
        Control::Fill {
            order_id: id_of(&rest),
            quantity: None,
        },
    );
    t.trade_page("limit=1").await;
    t.trade_page("limit=1").await;
    assert_eq!(t.sb.accepted_trades().len(), 5);
    for bad in [
        r#"{"pages":1}"#,
        r#"{"pages":-1,"action":{"deposit":{"currency":"BTC","amount":"1"}}}"#,
        r#"{"pages":1,"action":{"nope":{}}}"#,
        r#"{"pages":1,"action":{"market":{"pair":"BTC-USDC"}}}"#,
        r#"{"pages":1,"action":{"market":{},"fill":{}}}"#,
    ] {
        let (s, v) = t.control("/sandbox/after-trades-pages", bad).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    t.sb.shutdown().await;
}

/// Orders, balances, trades and two reference prices, as served.
async fn snapshot(t: &T) -> (Value, Value, Value, Value, Value) {
    (
        t.get("/trading/api/v1/orders/my").await.1,
        t.get("/account/api/v1/balances").await.1,
        t.get("/trading/api/v1/trades/my").await.1,
        t.get("/trading/api/v1/ticker?pair=BTC-USDC").await.1["price"].clone(),
        t.get("/trading/api/v1/ticker?pair=ETH-USDC").await.1["price"].clone(),
    )
}

/// Market moves, fills and deposits are events of the state file:
/// a restart replays them to the same books.
#[tokio::test]
async fn market_fill_and_deposit_events_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("hqx-sandbox-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.jsonl");
    let t = T::start_with(|c| c.state_path = Some(state.clone())).await;
    let (_, a) = t
        .place(&order("BTC-USDC", "limit", "buy", "1", Some("23000")))
        .await;
    let (_, b) = t
        .place(&order("ETH-USDC", "limit", "sell", "3", Some("1700")))
        .await;
    t.place(&order("SOL-USDC", "market", "buy", "7", None))
        .await;
    t.sb.control(Control::Fill {
        order_id: id_of(&a),
        quantity: Some("0.3".into()),
    })
    .unwrap();
    t.sb.control(Control::Market {
        pair: "ETH-USDC".into(),
        price: "1750".into(),
    })
    .unwrap();
    t.sb.control(Control::Deposit {
        currency: "USDC".into(),
        amount: "123.45".into(),
    })
    .unwrap();
    t.sb.control(Control::Market {
        pair: "BTC-USDC".into(),
        price: "25000".into(),
    })
    .unwrap();
    let before = snapshot(&t).await;
    assert_eq!(before.2["total"], 3);
    assert_eq!(before.0["orders"][1]["id"], b["id"]);
    assert_eq!(before.0["orders"][1]["status"], "filled");
    t.sb.shutdown().await;
    let text = std::fs::read_to_string(&state).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["placed", "placed", "placed", "fill", "market", "deposit", "market"]
    );
    // Another fee rate does not change what was recorded.
    let t = T::start_with(|c| {
        c.state_path = Some(state.clone());
        c.fee_rate = rust_decimal::Decimal::new(5, 2);
    })
    .await;
    let after = snapshot(&t).await;
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1);
    assert_eq!(after.2, before.2);
    assert_eq!((after.3, after.4), (before.3, before.4));
    // Trade ids keep counting after the restart.
    let (_, o) = t
        .place(&order("BTC-USDC", "market", "sell", "1", None))
        .await;
    let last = t.sb.accepted_trades().pop().unwrap();
    assert_eq!(
        (last.id.as_str(), last.order_id),
        ("T0000000004", id_of(&o))
    );
    // At the new bid (25000 × 0.9995) and the new rate.
    assert_eq!(
        (last.price.as_str(), last.fee.as_str()),
        ("24987.5", "1249.375")
    );
    t.sb.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A state file written before fees, partial fills and market moves
/// (lines written by hand in its format) replays with the same
/// balances: its fills are whole-order taker fills with fee 0.
#[tokio::test]
async fn an_old_state_file_replays_unchanged() {
    let dir = std::env::temp_dir().join(format!("hqx-sandbox-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.jsonl");
    let old = [
        r#"{"event":"placed","seq":1,"id":"O0000000001","pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00","createdAt":1700000000000,"receivedBody":"{}","trade":{"id":"T0000000001","price":"24012"}}"#,
        r#"{"event":"placed","seq":2,"id":"O0000000002","pair":"ETH-USDC","type":"limit","side":"buy","quantity":"1","price":"1000","createdAt":1700000000001,"receivedBody":"{}"}"#,
        r#"{"event":"placed","seq":3,"id":"O0000000003","pair":"SOL-USDC","type":"limit","side":"sell","quantity":"5","price":"99","createdAt":1700000000002,"receivedBody":"{}"}"#,
        r#"{"event":"cancelled","id":"O0000000003","at":1700000000003}"#,
        r#"{"event":"placed","seq":4,"id":"O0000000004","pair":"ETH-USDC","type":"market","side":"sell","quantity":"1.5","price":null,"createdAt":1700000000004,"receivedBody":"{}","trade":{"id":"T0000000002","price":"1599.2"}}"#,
        r#"{"event":"deposit_address","currency":"BTC","network":"bitcoin","address":"0xabc"}"#,
    ];
    std::fs::write(&state, old.join("\n") + "\n").unwrap();
    let t = T::start_with(|c| c.state_path = Some(state.clone())).await;
    // USDC: -48024 (fill, no fee), -1000 locked, +2398.8 (fill, no fee).
    assert_eq!(t.balance("USDC").await, ("9953374.8".into(), "1000".into()));
    assert_eq!(t.balance("BTC").await, ("1002".into(), "0".into()));
    assert_eq!(t.balance("ETH").await, ("998.5".into(), "0".into()));
    assert_eq!(t.balance("SOL").await, ("1000".into(), "0".into()));
    let trades = t.sb.accepted_trades();
    assert_eq!(trades.len(), 2);
    assert_eq!(
        (
            trades[0].quantity.as_str(),
            trades[0].fee.as_str(),
            trades[0].timestamp
        ),
        ("2", "0", 1_700_000_000_000)
    );
    assert_eq!(
        (trades[1].quantity.as_str(), trades[1].fee.as_str()),
        ("1.5", "0")
    );
    let (_, list) = t.get("/trading/api/v1/orders/my").await;
    let o = &list["orders"];
    assert_eq!(
        (
            o[0]["filledQuantity"].as_str(),
            o[0]["averagePrice"].as_str()
        ),
        (Some("2"), Some("24012"))
    );
    assert_eq!(
        (o[1]["status"].as_str(), o[1]["filledQuantity"].as_str()),
        (Some("open"), Some("0"))
    );
    assert_eq!(
        (o[2]["status"].as_str(), o[2]["updatedAt"].as_i64()),
        (Some("cancelled"), Some(1_700_000_000_003))
    );
    // The old open order can be filled now; ids go on from the file's.
    let f =
        t.sb.control(Control::Fill {
            order_id: "O0000000002".into(),
            quantity: None,
        })
        .unwrap();
    assert_eq!(
        (f["trade"]["id"].as_str(), f["trade"]["fee"].as_str()),
        (Some("T0000000003"), Some("1"))
    );
    assert_eq!(t.balance("USDC").await, ("9953373.8".into(), "0".into()));
    let (_, next) = t
        .place(&order("BTC-USDC", "market", "buy", "1", None))
        .await;
    assert_eq!(next["id"], "O0000000005");
    t.sb.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
