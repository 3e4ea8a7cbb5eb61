//! Unit tests of the batch reader: whole batch texts through [`super::parse`]
//! and [`super::load`], checked for the values and the positioned errors they give.

use super::orders::ORDER_KEYS;
use super::queries::{time_ms, QUERY_KEYS};
use super::suggest::suggest;
use super::*;
use crate::model::{Amount, OrderType, Side};
use proptest::prelude::*;

const FULL: &str = r#"version: 1
batch: rebalance-2026-11        # the batch's id: its idempotency namespace
defaults: { pair: BTC-USDC, type: limit }
orders:
  - id: buy-1
    side: buy
    quantity: "2"
    price: "24321.00"
  - id: sell-eth
    pair: ETH-USDC
    side: sell
    type: market
    quantity: "1.5"
  - { id: "plain:1", side: buy, quantity: 0.50, price: 24321.00 }
queries:
  - id: fills
    trades: { pair: BTC-USDC, from: 1793491200000, to: "2026-11-02T00:00:00Z", limit: 500 }
  - id: open
    orders: { status: open }
  - id: all-orders
    orders: {}
  - id: funds
    balances: {}
  - id: addr
    deposit_address: { currency: USDC, network: ERC20 }
"#;

fn path() -> &'static Path {
    Path::new("b.yaml")
}

fn errors(text: &str) -> Vec<BatchError> {
    match parse(path(), text) {
        Ok(b) => panic!("expected errors, got {b:?}"),
        Err(e) => e.0,
    }
}

/// The only error of `text`.
fn one(text: &str) -> BatchError {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

fn assert_err(e: &BatchError, line: usize, column: usize, field: &str, needle: &str) {
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (line, column, field),
        "{e}"
    );
    assert!(
        e.message.contains(needle),
        "{:?} lacks {needle:?}",
        e.message
    );
}

/// A valid batch with `order` (YAML lines, indented under `- `) as its
/// only order; the order starts on line 4.
fn with_order(order: &str) -> String {
    format!(
        "version: 1\nbatch: b\norders:\n  - {}\n",
        order.trim_start()
    )
}

fn amount(s: &str) -> Amount {
    s.parse().unwrap()
}

#[test]
fn full_example_parses_into_the_expected_values() {
    let b = parse(Path::new("x/full.yaml"), FULL).unwrap();
    assert_eq!(b.id, "rebalance-2026-11");
    assert_eq!(b.path, Path::new("x/full.yaml"));
    assert_eq!(b.file_sha256, hex::encode(Sha256::digest(FULL.as_bytes())));
    assert_eq!(b.file_sha256.len(), 64);
    let pair = |s: &str| s.parse::<Pair>().unwrap();
    assert_eq!(
        b.orders,
        vec![
            OrderSpec {
                id: "buy-1".into(),
                intent: OrderIntent {
                    pair: pair("BTC-USDC"),
                    kind: OrderType::Limit,
                    side: Side::Buy,
                    quantity: amount("2"),
                    price: Some(amount("24321.00")),
                },
                line: 5,
                marks: b.orders[0].marks,
            },
            OrderSpec {
                id: "sell-eth".into(),
                intent: OrderIntent {
                    pair: pair("ETH-USDC"),
                    kind: OrderType::Market,
                    side: Side::Sell,
                    quantity: amount("1.5"),
                    price: None,
                },
                line: 9,
                marks: b.orders[1].marks,
            },
            OrderSpec {
                id: "plain:1".into(),
                intent: OrderIntent {
                    pair: pair("BTC-USDC"),
                    kind: OrderType::Limit,
                    side: Side::Buy,
                    quantity: amount("0.50"),
                    price: Some(amount("24321.00")),
                },
                line: 14,
                marks: b.orders[2].marks,
            },
        ]
    );
    // Marks: the value of each field; a field from `defaults` or a
    // market order's missing price at the order's start.
    let at = |line, column| Pos { line, column };
    assert_eq!(b.orders[0].marks.pair, at(5, 5));
    assert_eq!(b.orders[0].marks.quantity, at(7, 15));
    assert_eq!(b.orders[0].marks.price, at(8, 12));
    assert_eq!(b.orders[1].marks.pair, at(10, 11));
    assert_eq!(b.orders[1].marks.price, at(9, 5));
    assert_eq!(b.orders[2].marks.quantity, at(14, 43));
    // Plain scalars keep their text: not 0.5, not 24321.
    let plain = &b.orders[2].intent;
    assert_eq!(plain.quantity.text(), "0.50");
    assert_eq!(plain.price.as_ref().unwrap().text(), "24321.00");
    assert_eq!(
        b.orders[0].intent.body(None),
        r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00"}"#
    );
    assert_eq!(
        b.queries,
        vec![
            QuerySpec {
                id: "fills".into(),
                kind: QueryKind::Trades {
                    pair: Some(pair("BTC-USDC")),
                    from_ms: Some(1_793_491_200_000),
                    to_ms: Some(1_793_577_600_000),
                    limit: Some(500),
                },
                line: 16,
            },
            QuerySpec {
                id: "open".into(),
                kind: QueryKind::Orders {
                    pair: None,
                    status: OrderStatusFilter::Open,
                },
                line: 18,
            },
            QuerySpec {
                id: "all-orders".into(),
                kind: QueryKind::Orders {
                    pair: None,
                    status: OrderStatusFilter::All,
                },
                line: 20,
            },
            QuerySpec {
                id: "funds".into(),
                kind: QueryKind::Balances,
                line: 22,
            },
            QuerySpec {
                id: "addr".into(),
                kind: QueryKind::DepositAddress {
                    currency: "USDC".into(),
                    network: "ERC20".into(),
                },
                line: 24,
            },
        ]
    );
}

#[test]
fn order_fields_override_defaults_and_side_can_be_a_default() {
    let b = parse(
        path(),
        "version: 1\nbatch: b\ndefaults: { pair: BTC-USDC, side: sell, type: market }\norders:\n  - { id: a, quantity: '1' }\n  - { id: b, side: buy, type: limit, pair: SOL-USDC, quantity: '2', price: '20.05' }\n",
    )
    .unwrap();
    let (a, c) = (&b.orders[0].intent, &b.orders[1].intent);
    assert_eq!(
        (a.side, a.kind, a.pair.as_str()),
        (Side::Sell, OrderType::Market, "BTC-USDC")
    );
    assert_eq!(
        (c.side, c.kind, c.pair.as_str()),
        (Side::Buy, OrderType::Limit, "SOL-USDC")
    );
    assert_eq!(c.price.as_ref().map(Amount::text), Some("20.05"));
}

#[test]
fn queries_alone_make_a_batch_and_null_filters_mean_none() {
    let b = parse(
        path(),
        "version: 1\nbatch: b\nqueries:\n  - id: t\n    trades:\n  - id: f\n    balances:\n",
    )
    .unwrap();
    assert!(b.orders.is_empty());
    assert_eq!(
        b.queries[0].kind,
        QueryKind::Trades {
            pair: None,
            from_ms: None,
            to_ms: None,
            limit: None
        }
    );
    assert_eq!(b.queries[1].kind, QueryKind::Balances);
}

#[test]
fn order_and_query_ids_are_separate_namespaces() {
    let b = parse(
        path(),
        "version: 1\nbatch: b\norders:\n  - { id: x, pair: BTC-USDC, side: buy, type: market, quantity: '1' }\nqueries:\n  - { id: x, balances: {} }\n",
    )
    .unwrap();
    assert_eq!(
        (b.orders[0].id.as_str(), b.queries[0].id.as_str()),
        ("x", "x")
    );
}

#[test]
fn version_is_required_and_must_be_the_integer_1() {
    let e = one("batch: b\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 1, 1, "version", "add `version: 1`");
    let e = one("version: 2\nbatch: b\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 1, 10, "version", "unsupported batch format version `2`");
    let e = one("version: \"1\"\nbatch: b\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 1, 10, "version", "without quotes");
    let e = one("version: 1.0\nbatch: b\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 1, 10, "version", "write `version: 1`");
}

#[test]
fn batch_id_is_required_and_follows_the_id_rule() {
    let e = one("version: 1\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 1, 1, "batch", "missing `batch`");
    let e = one("version: 1\nbatch: -x\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 2, 8, "batch", "`-x` is not a valid id");
    let long = "a".repeat(65);
    let e = one(&format!(
        "version: 1\nbatch: {long}\nqueries: [{{ id: f, balances: {{}} }}]\n"
    ));
    assert_err(&e, 2, 8, "batch", "is not a valid id");
    assert!(valid_id(&"a".repeat(64)));
    for ok in ["a", "A9", "x.y_z:1-2", "0"] {
        assert!(valid_id(ok), "{ok}");
    }
    for bad in ["", "_a", ".a", "a b", "a/b", "é", "a\n"] {
        assert!(!valid_id(bad), "{bad:?}");
    }
}

#[test]
fn unknown_top_level_key_is_refused_with_a_suggestion() {
    let e = one("version: 1\nbatch: b\norder:\n  - id: x\n");
    assert_err(
        &e,
        3,
        1,
        "order",
        "unknown key `order`; did you mean `orders`?",
    );
    // The misspelling is reported once, not again as "no orders".
    let e = one("version: 1\nbatch: b\nqueries: [{ id: f, balances: {} }]\nextra: 1\n");
    assert_err(&e, 4, 1, "extra", "delete it or fix the spelling");
}

#[test]
fn a_batch_with_no_orders_and_no_queries_is_refused() {
    let e = one("version: 1\nbatch: b\n");
    assert_err(&e, 1, 1, "orders", "no orders, queries or cancels");
    let e = one("# header\nversion: 1\nbatch: b\norders: []\nqueries: []\n");
    assert_err(&e, 2, 1, "orders", "no orders, queries or cancels");
    let e = one("version: 1\nbatch: b\norders:\n");
    assert_err(&e, 3, 1, "orders", "`orders` is empty");
    let e = one("version: 1\nbatch: b\norders: { id: a }\n");
    assert_err(&e, 3, 9, "orders", "must be a list");
}

#[test]
fn order_ids_follow_the_rule_and_are_unique() {
    let e = one(&with_order(
        "{ id: 'a b', pair: BTC-USDC, side: buy, type: market, quantity: '1' }",
    ));
    assert_err(&e, 4, 11, "orders[0].id", "`a b` is not a valid id");
    let text = "version: 1\nbatch: b\ndefaults: { pair: BTC-USDC, type: market, side: buy }\norders:\n  - id: a\n    quantity: '1'\n  - id: b\n    quantity: '1'\n  - id: a\n    quantity: '2'\n";
    let e = one(text);
    assert_err(
        &e,
        9,
        9,
        "orders[2] (a).id",
        "order id `a` is already used by orders[0] (a) at line 5",
    );
    let e = one("version: 1\nbatch: b\norders:\n  - { pair: BTC-USDC, side: buy, type: market, quantity: '1' }\n");
    assert_err(&e, 4, 5, "orders[0].id", "missing `id`");
}

#[test]
fn query_ids_are_unique_among_queries() {
    let e = one(
        "version: 1\nbatch: b\nqueries:\n  - id: q\n    balances: {}\n  - id: q\n    orders: {}\n",
    );
    assert_err(
        &e,
        6,
        9,
        "queries[1] (q).id",
        "query id `q` is already used by queries[0] (q) at line 4",
    );
    let e = one("version: 1\nbatch: b\nqueries:\n  - balances: {}\n");
    assert_err(&e, 4, 5, "queries[0].id", "missing `id`");
}

#[test]
fn unknown_order_field_suggests_the_closest_one() {
    let e = one(&with_order(
        "id: a\n    pair: BTC-USDC\n    side: buy\n    type: market\n    qty: \"2\"",
    ));
    // Only the unknown field: `quantity` is not also reported missing.
    assert_err(
        &e,
        8,
        5,
        "orders[0] (a).qty",
        "unknown field `qty`; did you mean `quantity`?",
    );
    let e = one(&with_order("id: a\n    pair: BTC-USDC\n    side: buy\n    type: market\n    quantity: '1'\n    prise: '2'"));
    assert!(e.message.contains("did you mean `price`?"), "{e}");
    let e = one(&with_order("id: a\n    pair: BTC-USDC\n    side: buy\n    type: market\n    quantity: '1'\n    colour: red"));
    assert_err(
        &e,
        9,
        5,
        "orders[0] (a).colour",
        "an order takes only `id`, `pair`",
    );
    for (typo, meant) in [
        ("Price", "price"),
        ("symbol", "pair"),
        ("tpye", "type"),
        ("sides", "side"),
        ("qnty", "quantity"),
    ] {
        assert_eq!(suggest(typo, ORDER_KEYS), Some(meant), "{typo}");
    }
    assert_eq!(suggest("deposit", QUERY_KEYS), Some("deposit_address"));
    assert_eq!(suggest("trade", QUERY_KEYS), Some("trades"));
    assert_eq!(suggest("zzz", ORDER_KEYS), None);
}

#[test]
fn missing_required_fields_are_named_after_defaults() {
    let e = errors(
        "version: 1\nbatch: b\ndefaults: { pair: BTC-USDC }\norders:\n  - id: a\n    price: '1'\n",
    );
    let got: Vec<(usize, usize, &str)> = e
        .iter()
        .map(|e| (e.line, e.column, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, 5, "orders[0] (a).side"),
            (5, 5, "orders[0] (a).type"),
            (5, 5, "orders[0] (a).quantity"),
        ]
    );
    assert!(e[0].message.contains("missing `side`"), "{}", e[0]);
    assert!(e[0].message.contains("under `defaults`"), "{}", e[0]);
    assert!(e[1].message.contains("missing `type`"), "{}", e[1]);
    assert!(e[2].message.contains("missing `quantity`"), "{}", e[2]);
    // Without defaults the pair is missing too.
    let e = errors(&with_order(
        "id: a\n    side: buy\n    type: market\n    quantity: '1'",
    ));
    assert_eq!(e.len(), 1);
    assert_err(&e[0], 4, 5, "orders[0] (a).pair", "missing `pair`");
}

#[test]
fn bad_side_type_pair_and_decimals_carry_the_model_message() {
    let e = errors(&with_order(
        "id: a\n    pair: btc-usdc\n    side: hold\n    type: stop\n    quantity: -1\n    price: 1e3",
    ));
    let got: Vec<(usize, usize, &str)> = e
        .iter()
        .map(|e| (e.line, e.column, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, 11, "orders[0] (a).pair"),
            (6, 11, "orders[0] (a).side"),
            (7, 11, "orders[0] (a).type"),
            (8, 15, "orders[0] (a).quantity"),
            (9, 12, "orders[0] (a).price"),
        ]
    );
    assert_eq!(e[0].message, "btc-usdc".parse::<Pair>().unwrap_err());
    assert_eq!(e[1].message, "hold".parse::<Side>().unwrap_err());
    assert_eq!(e[2].message, "stop".parse::<OrderType>().unwrap_err());
    assert_eq!(e[3].message, "-1".parse::<Amount>().unwrap_err());
    assert_eq!(e[4].message, "1e3".parse::<Amount>().unwrap_err());
    let e = one(&with_order(
        "{ id: a, pair: BTC-USDC, side: buy, type: market, quantity: '0' }",
    ));
    assert_err(&e, 4, 65, "orders[0] (a).quantity", "is zero");
}

#[test]
fn market_with_price_and_limit_without_price_are_refused() {
    let e = one(&with_order("id: a\n    pair: BTC-USDC\n    side: buy\n    type: market\n    quantity: '1'\n    price: '2'"));
    assert_err(
        &e,
        9,
        5,
        "orders[0] (a).price",
        "a market order must not have a price; remove `price` or set `type: limit`",
    );
    assert_eq!(
        e.to_string(),
        "b.yaml:9:5: orders[0] (a).price: a market order must not have a price; remove `price` or set `type: limit`"
    );
    let e = one(&with_order(
        "id: a\n    pair: BTC-USDC\n    side: buy\n    type: limit\n    quantity: '1'",
    ));
    assert_err(
        &e,
        4,
        5,
        "orders[0] (a).price",
        "a limit order needs a price",
    );
    assert!(e.message.contains("or set `type: market`"), "{e}");
    let e = one("version: 1\nbatch: b\ndefaults: { type: market }\norders:\n  - { id: a, pair: BTC-USDC, side: buy, quantity: '1', price: '2' }\n");
    assert_err(
        &e,
        5,
        56,
        "orders[0] (a).price",
        "(its type comes from `defaults`)",
    );
}

#[test]
fn decimals_accept_quoted_and_plain_text_and_keep_it() {
    for (written, text) in [
        ("\"2\"", "2"),
        ("'2'", "2"),
        ("2", "2"),
        ("24321.00", "24321.00"),
        ("\"24321.00\"", "24321.00"),
        ("0.000100", "0.000100"),
        ("007", "007"),
        ("2 # comment", "2"),
    ] {
        let b = parse(
            path(),
            &with_order(&format!("id: a\n    pair: BTC-USDC\n    side: buy\n    type: limit\n    quantity: {written}\n    price: {written}")),
        )
        .unwrap();
        let i = &b.orders[0].intent;
        assert_eq!(i.quantity.text(), text, "{written}");
        assert_eq!(i.price.as_ref().unwrap().text(), text, "{written}");
    }
}

#[test]
fn scalar_fields_refuse_mappings_lists_and_null() {
    let base = "id: a\n    pair: BTC-USDC\n    side: buy\n    type: market\n    quantity: ";
    let e = one(&with_order(&format!("{base}{{ value: 2 }}")));
    assert_err(
        &e,
        8,
        15,
        "orders[0] (a).quantity",
        "must be a single value, not a mapping",
    );
    let e = one(&with_order(&format!("{base}[2]")));
    assert_err(&e, 8, 15, "orders[0] (a).quantity", "not a list");
    let e = one(&with_order(&format!("{base}~")));
    assert_err(&e, 8, 15, "orders[0] (a).quantity", "has no value");
    // An empty value points at its key.
    let e = one(&with_order(base));
    assert_err(&e, 8, 5, "orders[0] (a).quantity", "has no value");
    // Quoted "null" is text, and so not a decimal.
    let e = one(&with_order(&format!("{base}'null'")));
    assert_err(&e, 8, 15, "orders[0] (a).quantity", "not a plain decimal");
    let e = one(&with_order(&format!("{base}'{}'", "9".repeat(300))));
    assert_err(&e, 8, 15, "orders[0] (a).quantity", "300 characters long");
    let e = one("version: 1\nbatch: b\norders:\n  - buy-1\n");
    assert_err(&e, 4, 5, "orders[0]", "each order must be a mapping");
}

#[test]
fn duplicate_keys_are_reported_with_position_and_the_rest_still_checked() {
    let text = "version: 1\nbatch: b\norders:\n  - id: a\n    pair: BTC-USDC\n    side: buy\n    type: market\n    quantity: '1'\n    quantity: '2'\n  - id: c\n    side: hold\n";
    let e = errors(text);
    assert_err(
        &e[0],
        9,
        5,
        "orders[0] (a).quantity",
        "duplicate key `quantity` (first at line 8, column 5)",
    );
    // Still reported: the second order's problems.
    assert!(
        e.iter()
            .any(|e| e.line == 11 && e.field == "orders[1] (c).side"),
        "{e:#?}"
    );
    let e = errors("version: 1\nbatch: b\nbatch: c\nqueries: [{ id: f, balances: {} }]\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_err(&e[0], 3, 1, "batch", "duplicate key `batch`");
    let e = one("version: 1\nbatch: b\nqueries:\n  - id: t\n    trades: { limit: 5, limit: 6 }\n");
    assert_err(&e, 5, 25, "queries[0] (t).trades.limit", "duplicate key");
}

#[test]
fn yaml_syntax_errors_are_one_error_with_a_position() {
    let e = one("version: 1\nbatch: b\norders:\n  - id: a\n    side: [buy\n");
    assert_eq!((e.line, e.field.as_str()), (6, ""), "{e}");
    assert!(e.message.starts_with("YAML syntax error: "), "{e}");
    let e = one("version: 1\nbatch: b: c\n");
    assert_err(
        &e,
        2,
        9,
        "",
        "YAML syntax error: mapping values are not allowed",
    );
    let e = one("version: 1\nbatch: \"open\n");
    assert!(e.message.contains("YAML syntax error"), "{e}");
    let e = one("- a\n- b\n");
    assert_err(&e, 1, 1, "", "must be a YAML mapping");
}

#[test]
fn anchors_tags_and_second_documents_are_refused() {
    let e = one("version: 1\nbatch: &b b\n");
    // Anchors and tags are reported where their value starts.
    assert_err(&e, 2, 11, "", "anchors and aliases");
    let e = one("version: 1\nbatch: !!str b\n");
    assert_err(&e, 2, 14, "", "tags");
    let e = one("---\nversion: 1\nbatch: b\nqueries: [{ id: f, balances: {} }]\n---\nversion: 1\n");
    assert_err(&e, 5, 1, "", "second one starts here");
    let e = one("version: 1\nbatch: b\nqueries: [{ id: f, balances: {} }]\n...\nmore: 1\n");
    assert_err(&e, 5, 1, "", "second one starts here");
    // A leading `---`, a trailing `...` and a byte order mark are fine.
    parse(path(), "\u{feff}%YAML 1.2\n---\nversion: 1\nbatch: b\nqueries: [{ id: f, balances: {} }]\n...\n# end\n").unwrap();
}

#[test]
fn each_query_asks_exactly_one_thing() {
    let e = one("version: 1\nbatch: b\nqueries:\n  - id: q\n");
    assert_err(&e, 4, 5, "queries[0] (q)", "does not say what to ask");
    let e = one("version: 1\nbatch: b\nqueries:\n  - id: q\n    trades: {}\n    balances: {}\n");
    assert_err(
        &e,
        6,
        5,
        "queries[0] (q).balances",
        "both `trades` and `balances`; split it",
    );
    let e = one("version: 1\nbatch: b\nqueries:\n  - id: q\n    balance: {}\n");
    assert_err(
        &e,
        5,
        5,
        "queries[0] (q).balance",
        "did you mean `balances`?",
    );
    let e = one("version: 1\nbatch: b\nqueries:\n  - id: q\n    balances: { all: true }\n");
    assert_err(&e, 5, 17, "queries[0] (q).balances.all", "takes no fields");
    let e = one("version: 1\nbatch: b\nqueries:\n  - id: q\n    trades: BTC-USDC\n");
    assert_err(&e, 5, 13, "queries[0] (q).trades", "takes a mapping");
}

#[test]
fn query_filters_are_checked() {
    let q = |body: &str| format!("version: 1\nbatch: b\nqueries:\n  - id: q\n    {body}\n");
    let e = one(&q("trades: { pair: BTC-USDC, since: 1 }"));
    assert_err(
        &e,
        5,
        31,
        "queries[0] (q).trades.since",
        "did you mean `from`?",
    );
    let e = one(&q("trades: { limit: 501 }"));
    assert_err(&e, 5, 22, "queries[0] (q).trades.limit", "from 1 to 500");
    let e = one(&q("trades: { limit: 0 }"));
    assert_err(&e, 5, 22, "queries[0] (q).trades.limit", "from 1 to 500");
    let e = one(&q("trades: { from: yesterday }"));
    assert_err(
        &e,
        5,
        21,
        "queries[0] (q).trades.from",
        "`yesterday` is not a time",
    );
    let e = one(&q(
        "trades: { from: 2026-11-02T00:00:00Z, to: 2026-11-01T00:00:00+00:00 }",
    ));
    assert_err(&e, 5, 47, "queries[0] (q).trades.to", "is before `from`");
    let e = one(&q("orders: { status: done }"));
    assert_err(
        &e,
        5,
        23,
        "queries[0] (q).orders.status",
        "status must be `open`, `filled`, `cancelled` or `all`",
    );
    let e = one(&q("orders: { pair: BTCUSDC }"));
    assert_err(
        &e,
        5,
        21,
        "queries[0] (q).orders.pair",
        "pair must look like `BTC-USDC`",
    );
    let e = one(&q("deposit_address: { currency: USDC }"));
    assert_err(
        &e,
        5,
        22,
        "queries[0] (q).deposit_address.network",
        "missing `network`",
    );
    let e = one(&q("deposit_address: { currency: usdc, network: ERC20 }"));
    assert_err(
        &e,
        5,
        34,
        "queries[0] (q).deposit_address.currency",
        "upper-case",
    );
    let e = one(&q("deposit_address:"));
    assert_err(
        &e,
        5,
        5,
        "queries[0] (q).deposit_address",
        "takes a mapping",
    );
    assert_eq!(time_ms("2026-11-01T01:00:00+01:00"), Ok(1_793_491_200_000));
    assert!(time_ms("1969-12-31T23:59:59Z")
        .unwrap_err()
        .contains("before 1970"));
    assert!(time_ms("99999999999999999999").is_err());
}

#[test]
fn defaults_are_checked_once_and_do_not_cascade() {
    let e = errors("version: 1\nbatch: b\ndefaults: { pair: btc, quantity: '1' }\norders:\n  - { id: a, side: buy, type: market, quantity: '1' }\n  - { id: c, side: buy, type: market, quantity: '1' }\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_err(&e[0], 3, 19, "defaults.pair", "pair must look like");
    assert_err(
        &e[1],
        3,
        24,
        "defaults.quantity",
        "`defaults` takes only `pair`, `type`, `side`",
    );
    let e = one("version: 1\nbatch: b\ndefaults: BTC-USDC\nqueries: [{ id: f, balances: {} }]\n");
    assert_err(&e, 3, 11, "defaults", "may set pair, type and side");
}

#[test]
fn several_errors_in_one_file_are_all_reported_in_file_order() {
    let text = "version: 1\nbatch: bad-1\norders:\n  - id: a\n    pair: BTC-USDC\n    side: hold\n    type: limit\n    quantity: \"2\"\n    price: \"24321.00\"\n  - id: b\n    pair: BTC-USDC\n    side: buy\n    type: market\n    quantity: \"1\"\n    price: \"10\"\n  - id: a\n    pair: btc\n    side: sell\n    type: limit\n    quantity: \"-1\"\n";
    let errs = parse(Path::new("bad.yaml"), text).unwrap_err();
    let got: Vec<(usize, &str)> = errs.0.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (6, "orders[0] (a).side"),
            (15, "orders[1] (b).price"),
            (16, "orders[2] (a).price"),
            (16, "orders[2] (a).id"),
            (17, "orders[2] (a).pair"),
            (20, "orders[2] (a).quantity"),
        ]
    );
    let shown = errs.to_string();
    assert!(
        shown.starts_with("bad.yaml:6:11: orders[0] (a).side: side must be"),
        "{shown}"
    );
    assert_eq!(shown.lines().count(), 7);
    assert!(
        shown.ends_with("\n6 errors in bad.yaml; nothing was sent or written"),
        "{shown}"
    );
}

#[test]
fn display_of_one_error_and_of_many() {
    let e = BatchError {
        path: PathBuf::from("examples/x.yaml"),
        line: 0,
        column: 0,
        field: String::new(),
        message: "cannot read".into(),
    };
    assert_eq!(e.to_string(), "examples/x.yaml: cannot read");
    let one = BatchErrors(vec![e.clone()]);
    assert_eq!(
        one.to_string(),
        "examples/x.yaml: cannot read\n1 error in examples/x.yaml; nothing was sent or written"
    );
    let many = BatchErrors(vec![e; MAX_SHOWN_ERRORS + 5]);
    let text = many.to_string();
    assert_eq!(text.lines().count(), MAX_SHOWN_ERRORS + 2);
    assert!(text.contains("... and 5 more not shown"), "{text}");
    assert!(text.ends_with("105 errors in examples/x.yaml; nothing was sent or written"));
}

#[test]
fn messages_stay_on_one_line() {
    let e = one(&with_order(
        "{ id: a, pair: \"BTC\\nUSDC\", side: buy, type: market, quantity: '1' }",
    ));
    assert!(!e.to_string().contains('\n'), "{e}");
    assert!(e.message.contains("BTC\\nUSDC"), "{e}");
}

#[test]
fn too_many_orders_are_refused() {
    let mut text = String::from("version: 1\nbatch: b\norders:\n");
    for _ in 0..=MAX_ORDERS {
        text.push_str("- {}\n");
    }
    let e = one(&text);
    assert_err(&e, 3, 1, "orders", "more than the limit of 100000");
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!((e.0[0].line, e.0[0].column), (0, 0));
    assert!(
        e.0[0].message.starts_with("cannot read the batch file"),
        "{e}"
    );
    assert!(e.to_string().contains("nope.yaml"), "{e}");

    let bad = dir.path().join("latin1.yaml");
    std::fs::write(&bad, b"version: 1\nbatch: caf\xe9\n").unwrap();
    let e = load(&bad).unwrap_err();
    assert_eq!((e.0[0].line, e.0[0].column), (2, 11), "{e}");
    assert!(e.0[0].message.contains("not UTF-8"), "{e}");

    let good = dir.path().join("full.yaml");
    std::fs::write(&good, FULL).unwrap();
    let b = load(&good).unwrap();
    assert_eq!(b.path, good);
    assert_eq!(b.file_sha256, hex::encode(Sha256::digest(FULL.as_bytes())));
}

#[test]
fn example_files_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let quick = load(&dir.join("quickstart.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(quick.id, "quickstart-2026-11");
    assert_eq!(quick.orders.len(), 5);
    assert_eq!(quick.queries.len(), 4);
    let pairs: Vec<&str> = quick
        .orders
        .iter()
        .map(|o| o.intent.pair.as_str())
        .collect();
    assert!(pairs.contains(&"SOL-USDC") && pairs.contains(&"ETH-USDC"));
    assert!(quick
        .orders
        .iter()
        .any(|o| o.intent.kind == OrderType::Market && o.intent.side == Side::Sell));

    let invalid = load(&dir.join("invalid.yaml")).unwrap_err();
    let lines: Vec<usize> = invalid.0.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        vec![13, 19, 20, 24, 25, 26, 27, 28, 35, 37],
        "{invalid}"
    );
}

proptest! {
    #[test]
    fn decimal_text_round_trips_exactly(int in "[0-9]{1,14}", frac in proptest::option::of("[0-9]{1,14}")) {
        let text = match frac {
            Some(f) => format!("{int}.{f}"),
            None => int,
        };
        prop_assume!(text.parse::<Amount>().is_ok());
        for written in [text.clone(), format!("\"{text}\""), format!("'{text}'")] {
            let yaml = with_order(&format!(
                "id: a\n    pair: BTC-USDC\n    side: buy\n    type: limit\n    quantity: {written}\n    price: {written}"
            ));
            let b = parse(path(), &yaml).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let i = &b.orders[0].intent;
            prop_assert_eq!(i.quantity.text(), text.as_str());
            prop_assert_eq!(i.price.as_ref().map(Amount::text), Some(text.as_str()));
        }
    }
}

#[test]
fn a_reused_id_names_the_item_that_has_it_first() {
    let e = errors(
        "version: 1\nbatch: b\ncancels:\n  - { id: x, exchange_order_id: O1 }\n  - { id: y, exchange_order_id: O2 }\n  - { id: x, exchange_order_id: O3 }\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_err(
        &e[0],
        6,
        11,
        "cancels[2] (x).id",
        "cancel id `x` is already used by cancels[0] (x) at line 4",
    );
    // The first of three, however far down the list.
    let orders: String = (0..12)
        .map(|i| {
            format!(
                "  - {{ id: o{}, pair: BTC-USDC, side: buy, type: market, quantity: \"1\" }}\n",
                i % 11
            )
        })
        .collect();
    let e = one(&format!("version: 1\nbatch: b\norders:\n{orders}"));
    assert_err(
        &e,
        15,
        11,
        "orders[11] (o0).id",
        "order id `o0` is already used by orders[0] (o0) at line 4",
    );
}
