-- Realized PnL per pair (average-cost method, in the quote currency), and
-- the same less every fee paid in the quote currency on that pair
-- (including the fees of trades whose position is still open).
--
--     hqx sql --file examples/queries/realized_pnl.sql
--
-- decimal_sub is exact (hqx sql and the sqlite3 shell). A pair whose
-- figures could not be computed shows its `problem` instead.
SELECT account_id,
       pair,
       substr(pair, instr(pair, '-') + 1)        AS currency,
       realized_pnl,
       fees_quote,
       decimal_sub(realized_pnl, fees_quote)     AS realized_pnl_less_fees,
       problem
FROM positions
ORDER BY account_id, pair;
