-- Fees per batch, exactly: for each batch and fee currency, the number of
-- fills, of orders filled, and the sum of their fees.
--
--     hqx sql --file examples/queries/fees_per_batch.sql
--
-- Fees are TEXT in the journal; decimal_sum adds them as decimals, never as
-- floats (sum() would make 0.1 + 0.2 into 0.30000000000000004). It is in
-- hqx sql and in the sqlite3 shell (3.40 and later). The `fills` view links
-- each trade to its batch order; fills with no batch (external) are left out.
SELECT batch_id,
       fee_currency,
       count(*)                  AS fills,
       count(DISTINCT order_id)  AS orders,
       decimal_sum(fee)          AS fees
FROM fills
WHERE batch_id IS NOT NULL
GROUP BY batch_id, fee_currency
ORDER BY batch_id, fee_currency;
