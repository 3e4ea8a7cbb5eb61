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
