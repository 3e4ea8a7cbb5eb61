-- hqx journal, schema 4: the journal as an analyst's database.
--
-- Views that answer a desk's questions in plain SQL: any SQLite reader
-- (the sqlite3 shell, Python's sqlite3, DuckDB's sqlite extension,
-- Datasette) can read them, because they use no function that hqx
-- registers. Their columns are an API: README.md documents each one.
--
-- DuckDB binds a SQLite view's SQL with its own dialect, so these use only
-- SQL that means the same in both: no SQLite date functions (times stay
-- milliseconds), no integer `/` (DuckDB's is a float division), CAST to
-- BIGINT. The one exception, SQLite's clock, is the `journal_clock` view,
-- which DuckDB hands to SQLite whole.
--
-- Decimals stay TEXT. Sums, average costs and realized PnL cannot be
-- computed exactly in plain SQL (SQLite's sum() is a float), so hqx keeps
-- them in `position_figures` and `position_fee_figures`, computed with
-- rust_decimal in the same transaction that journals the trades, and
-- rebuildable from the trades (`hqx journal rebuild`). This migration
-- only creates them: Journal::open fills them right after it (SQL alone
-- cannot), in the same process, before anything else is written.

-- Per account and pair: the average-cost figures of every trade journaled
-- for it, applied in (traded_ms, trade_id) order. The method is in
-- README.md ("Positions and PnL").
CREATE TABLE position_figures (
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    pair            TEXT NOT NULL,
    trades          INTEGER NOT NULL,  -- trades applied
    bought          TEXT,              -- sum of bought quantities (base)
    sold            TEXT,              -- sum of sold quantities (base)
    net_quantity    TEXT,              -- bought - sold (base): < 0 is short
    average_cost    TEXT,              -- open_cost / |net_quantity| (quote per base); NULL when flat
    open_cost       TEXT,              -- what the open position cost (quote)
    realized_pnl    TEXT,              -- average-cost realized PnL (quote), fees apart
    bought_value    TEXT,              -- sum of price x quantity of buys (quote)
    sold_value      TEXT,              -- sum of price x quantity of sells (quote)
    fees_quote      TEXT,              -- fees paid in the quote currency
    fees            TEXT,              -- every fee currency: JSON object {"USDC":"1.5"}
    first_traded_ms INTEGER,
    last_traded_ms  INTEGER,           -- with last_trade_id: the last trade applied
    last_trade_id   TEXT,
    problem         TEXT,              -- why the figures are NULL (a trade hqx cannot read)
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (account_id, pair)
);

-- Per account, pair and fee currency: fills and the exact sum of fees.
CREATE TABLE position_fee_figures (
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    pair         TEXT NOT NULL,
    fee_currency TEXT NOT NULL,        -- '' when the exchange named none
    fills        INTEGER NOT NULL,
    fees         TEXT NOT NULL,
    PRIMARY KEY (account_id, pair, fee_currency)
);

-- A pair's trades in the order the figures apply them (a late trade makes
-- hqx recompute its pair from them).
CREATE INDEX trades_pair_time ON trades(account_id, pair, traded_ms, trade_id);

-- One row per trade. batch_id and order_id name the journaled order the
-- trade filled; NULL there means the trade is external (an order placed
-- outside this journal).
CREATE VIEW fills AS
SELECT t.account_id,
       t.trade_id,
       t.pair,
       CASE WHEN instr(t.pair, '-') > 0 THEN substr(t.pair, 1, instr(t.pair, '-') - 1) END AS base_currency,
       CASE WHEN instr(t.pair, '-') > 0 THEN substr(t.pair, instr(t.pair, '-') + 1) END AS quote_currency,
       t.side,
       t.price,
       t.quantity,
       t.fee,
       t.fee_currency,
       t.traded_ms,
       t.exchange_order_id,
       o.batch_id,
       o.order_id,
       t.first_run_id,
       t.seen_ms
FROM trades AS t
LEFT JOIN orders AS o
       ON o.account_id = t.account_id AND o.exchange_order_id = t.exchange_order_id;

-- Fills of orders placed outside this journal.
CREATE VIEW external_fills AS
SELECT * FROM fills WHERE order_id IS NULL;

-- Per account and pair: quantities, average cost, realized PnL, fees.
CREATE VIEW positions AS
SELECT account_id, pair, trades, bought, sold, net_quantity, average_cost, open_cost,
       realized_pnl, fees_quote, fees, bought_value, sold_value,
       first_traded_ms, last_traded_ms, problem
FROM position_figures;

-- Per account, pair and fee currency: fills and fees.
CREATE VIEW position_fees AS
SELECT account_id, pair, fee_currency, fills, fees FROM position_fee_figures;

-- The time now by SQLite's clock, in ms (to the second).
CREATE VIEW journal_clock AS
SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000 AS now_ms;

-- What is resting on the book now, as far as the journal knows: batch
-- orders in state `open`, and external orders not known to be done.
CREATE VIEW open_orders AS
SELECT account_id, source, batch_id, order_id, exchange_order_id, pair, side, type,
       quantity, price, filled_quantity, placed_ms,
       CAST((age_ms - age_ms % 1000) / 1000 AS BIGINT) AS age_s
FROM (
    SELECT o.account_id,
           'batch'                                  AS source,
           o.batch_id,
           o.order_id,
           o.exchange_order_id,
           o.pair, o.side, o.type, o.quantity, o.price,
           coalesce(o.filled_quantity, '0')         AS filled_quantity,
           coalesce(o.first_sent_ms, o.created_ms)  AS placed_ms,
           CAST(c.now_ms AS BIGINT) - coalesce(o.first_sent_ms, o.created_ms) AS age_ms
    FROM orders AS o, journal_clock AS c
    WHERE o.state = 'open'
    UNION ALL
    SELECT e.account_id,
           'external',
           NULL,
           NULL,
           e.exchange_order_id,
           e.pair, e.side, e.type, e.quantity, e.price,
           coalesce(e.filled_quantity, '0'),
           e.created_ms,
           CAST(c.now_ms AS BIGINT) - e.created_ms
    FROM external_orders AS e, journal_clock AS c
    WHERE coalesce(e.status, 'open') NOT IN
          ('filled', 'cancelled', 'canceled', 'rejected', 'expired', 'done', 'closed')
) AS u;

-- Per UTC day (day_ms: its midnight, in ms), method and endpoint (the
-- path without its query string): requests, errors (no answer seen, or a
-- status of 400 or more) and nearest-rank latency percentiles in
-- microseconds.
CREATE VIEW requests_daily AS
WITH r AS (
    SELECT at_ms - at_ms % 86400000 AS day_ms,
           method,
           CASE WHEN instr(path, '?') > 0 THEN substr(path, 1, instr(path, '?') - 1) ELSE path END AS endpoint,
           status,
           latency_us
    FROM http_log
), ranked AS (
    SELECT r.*,
           row_number() OVER (PARTITION BY day_ms, method, endpoint ORDER BY latency_us) AS k,
           count(*)     OVER (PARTITION BY day_ms, method, endpoint)                     AS n
    FROM r
)
SELECT day_ms,
       method,
       endpoint,
       count(*)                                            AS requests,
       sum(status IS NULL OR status >= 400)                AS errors,
       min(CASE WHEN k * 100 >= n * 50 THEN latency_us END) AS p50_us,
       min(CASE WHEN k * 100 >= n * 90 THEN latency_us END) AS p90_us,
       min(CASE WHEN k * 100 >= n * 99 THEN latency_us END) AS p99_us,
       max(latency_us)                                     AS max_us
FROM ranked
GROUP BY day_ms, method, endpoint;

-- Each account's latest balance snapshot, one row per currency.
CREATE VIEW latest_balances AS
SELECT s.account_id, s.id AS snapshot_id, s.taken_ms, b.currency, b.available, b.locked, b.total
FROM balance_snapshots AS s
JOIN balances AS b ON b.snapshot_id = s.id
WHERE s.id = (SELECT max(s2.id) FROM balance_snapshots AS s2 WHERE s2.account_id = s.account_id);

-- Reconcile findings that alerted and no one has acknowledged yet.
CREATE VIEW open_findings AS
SELECT id, account_id, kind, subject, detail, first_seen_ms, last_seen_ms, times_seen
FROM findings
WHERE status = 'open';
