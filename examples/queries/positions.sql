-- Position and average cost per pair: what is held (below zero: short),
-- at what average cost, and what it cost, per account.
--
--     hqx sql --file examples/queries/positions.sql
--
-- The figures are hqx's, exact, kept with the trades (README: "Positions
-- and PnL"); any SQLite reader gets the same from the `positions` view.
SELECT account_id,
       pair,
       net_quantity,
       average_cost,
       open_cost,
       trades
FROM positions
WHERE average_cost IS NOT NULL           -- NULL when flat
ORDER BY account_id, pair;
