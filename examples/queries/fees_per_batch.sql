-- Fees per batch, exactly: for each batch and fee currency, the number of
-- fills, of orders filled, and the sum of their fees.
--
--     hqx sql --file examples/queries/fees_per_batch.sql
--
-- Fees are TEXT in the journal; decimal_sum adds them as decimals, never as
-- floats (sum() would make 0.1 + 0.2 into 0.30000000000000004). Trades are
-- linked to a batch only through their order: same account_id and
-- exchange_order_id. Trades of orders hqx did not place are not here.
SELECT o.batch_id,
       t.fee_currency,
       count(*)                    AS fills,
       count(DISTINCT o.order_id)  AS orders,
       decimal_sum(t.fee)          AS fees
FROM trades AS t
JOIN orders AS o ON o.account_id = t.account_id AND o.exchange_order_id = t.exchange_order_id
GROUP BY o.batch_id, t.fee_currency
ORDER BY o.batch_id, t.fee_currency;
