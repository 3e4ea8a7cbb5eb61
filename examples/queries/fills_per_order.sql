-- Fills per order: each batch order with its trades: how many, the quantity
-- filled, the traded value (price × quantity, in the pair's quote currency)
-- and the fees, all exact. An order without trades shows 0 fills and 0.
--
--     hqx sql --file examples/queries/fills_per_order.sql
--
-- Trades belong to an order through (account_id, exchange_order_id): exchange
-- order ids are unique per account only.
SELECT o.batch_id,
       o.order_id,
       o.pair,
       o.side,
       o.quantity                                     AS ordered,
       o.state,
       count(t.trade_id)                              AS fills,
       decimal_sum(t.quantity)                        AS filled,
       decimal_sum(decimal_mul(t.price, t.quantity))  AS traded_value,
       decimal_sum(t.fee)                             AS fees
FROM orders AS o
LEFT JOIN trades AS t ON t.account_id = o.account_id AND t.exchange_order_id = o.exchange_order_id
GROUP BY o.batch_id, o.order_id
ORDER BY o.batch_id, o.seq;
