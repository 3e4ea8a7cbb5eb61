//! The sandbox's market moving between runs: partial fills, market moves
//! and fees reach the journal through a plain `hqx run`.

use crate::util::Env;

const RESTING: &str = r#"version: 1
batch: market-1
defaults: { pair: BTC-USDC, type: limit }
orders:
  - id: bid
    side: buy
    quantity: "1"
    price: "23000"
  - id: ask
    side: sell
    quantity: "0.5"
    price: "25000.50"
"#;

fn exchange_id(env: &Env, order: &str) -> String {
    env.one(&format!(
        "SELECT exchange_order_id FROM orders WHERE order_id = '{order}'"
    ))
}

#[test]
fn partial_fills_and_market_moves_between_runs_reach_the_journal() {
    let env = Env::new();
    let f = env.write("b.yaml", RESTING);
    env.run(&f).assert().code(0);
    let (bid, ask) = (exchange_id(&env, "bid"), exchange_id(&env, "ask"));
    assert_eq!(env.one::<i64>("SELECT count(*) FROM trades"), 0);

    // Part of the bid fills; the next run sees it, still open.
    let fill = env.fill(&bid, Some("0.25"));
    assert_eq!(fill["trade"]["fee"], "5.75");
    env.run(&f).assert().code(0);
    assert_eq!(
        env.one::<String>(
            "SELECT state || ' ' || filled_quantity FROM orders WHERE order_id = 'bid'"
        ),
        "open 0.25"
    );
    assert_eq!(
        env.one::<String>(
            "SELECT quantity || ' ' || price || ' ' || fee || ' ' || fee_currency FROM trades"
        ),
        "0.25 23000 5.75 USDC"
    );

    // The market rises through the ask: it fills whole at its own limit.
    let moved = env.market("BTC-USDC", "26000");
    assert_eq!(moved["trades"].as_array().unwrap().len(), 1);
    env.run(&f).assert().code(0);
    assert_eq!(
        env.one::<String>(
            "SELECT state || ' ' || filled_quantity FROM orders WHERE order_id = 'ask'"
        ),
        "filled 0.5"
    );
    assert_eq!(
        env.one::<String>(&format!(
            "SELECT quantity || ' ' || price || ' ' || fee FROM trades WHERE exchange_order_id = '{ask}'"
        )),
        "0.5 25000.5 12.50025"
    );

    // Down through the bid: the rest (0.75) fills at 23000.
    env.market("BTC-USDC", "22999.99");
    env.run(&f).assert().code(0);
    assert_eq!(
        env.one::<String>(
            "SELECT state || ' ' || filled_quantity FROM orders WHERE order_id = 'bid'"
        ),
        "filled 1"
    );
    // Every trade is journaled once, with this fill's own quantity.
    let trades = env.exchange_trades();
    assert_eq!(trades.len(), 3);
    assert_eq!(env.one::<i64>("SELECT count(*) FROM trades"), 3);
    for t in &trades {
        assert_eq!(
            env.one::<String>(&format!(
                "SELECT quantity || ' ' || fee FROM trades WHERE trade_id = '{}'",
                t.id
            )),
            format!("{} {}", t.quantity, t.fee)
        );
    }
    assert_eq!(
        env.one::<String>(&format!(
            "SELECT group_concat(quantity, ',') FROM (SELECT quantity FROM trades WHERE exchange_order_id = '{bid}' ORDER BY traded_ms, trade_id)"
        )),
        "0.25,0.75"
    );
    // Nothing was sent twice along the way.
    assert_eq!(env.accepted().len(), 2);
}
