-- Fills that came from outside hqx: trades of orders no batch in this
-- journal placed (by hand, another tool, another journal), as `hqx
-- reconcile` brought them in. Newest first.
--
--     hqx sql --file examples/queries/external_fills.sql
SELECT strftime('%Y-%m-%dT%H:%M:%SZ', traded_ms / 1000, 'unixepoch') AS traded_at,
       account_id,
       trade_id,
       exchange_order_id,
       pair,
       side,
       price,
       quantity,
       fee,
       fee_currency
FROM external_fills
ORDER BY traded_ms DESC, trade_id DESC;
