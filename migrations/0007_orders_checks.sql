-- hqx journal, schema 7: the same `orders` table, with its CHECKs written
-- so that SQLite checks them cheaply, and one index fewer to keep up on
-- every change of an order's state.
--
-- SQLite codes `x IN (list of more than two constants)` as a temporary
-- b-tree that it builds every time the statement runs: every change of an
-- order's state built one (the `state` CHECK, seven values). The same
-- values written as equalities joined by OR are checked in a few
-- comparisons. The accepted values are exactly those of schema 1.
--
-- SQLite changes a column's constraint by rebuilding the table: create
-- the new one, copy every row (rowid included), drop the old one, rename
-- the new one, then create again the indexes (dropped with the old table;
-- one replaced, below) and the views that read it (dropped first: a
-- rename checks every view, and they would name a table that is gone),
-- with the same text as in schemas 3 and 4. Journal::open runs this with foreign keys off and
-- checks `PRAGMA foreign_key_check` afterwards.

DROP VIEW external_fills;
DROP VIEW fills;
DROP VIEW open_orders;

CREATE TABLE orders_new (
    batch_id          TEXT NOT NULL REFERENCES batches(id),
    order_id          TEXT NOT NULL,
    seq               INTEGER NOT NULL,            -- position in the batch file
    pair              TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side = 'buy' OR side = 'sell'),
    type              TEXT NOT NULL CHECK (type = 'limit' OR type = 'market'),
    quantity          TEXT NOT NULL,
    price             TEXT,
    body              TEXT NOT NULL,               -- the exact JSON body signed and sent
    state             TEXT NOT NULL CHECK (state = 'pending' OR state = 'sending'
                        OR state = 'open' OR state = 'filled' OR state = 'cancelled'
                        OR state = 'rejected' OR state = 'unknown'),
    attempts          INTEGER NOT NULL DEFAULT 0,  -- placement requests sent so far
    exchange_order_id TEXT,
    exchange_status   TEXT,
    filled_quantity   TEXT,
    average_price     TEXT,
    client_order_id   TEXT,
    last_error        TEXT,
    created_ms        INTEGER NOT NULL,            -- intent journaled
    first_sent_ms     INTEGER,
    last_sent_ms      INTEGER,
    updated_ms        INTEGER NOT NULL,
    last_deadline_ms  INTEGER,                     -- the latest send stops waiting for its answer
    account_id        INTEGER REFERENCES accounts(id),
    PRIMARY KEY (batch_id, order_id)
);
INSERT INTO orders_new (rowid, batch_id, order_id, seq, pair, side, type, quantity, price, body,
                        state, attempts, exchange_order_id, exchange_status, filled_quantity,
                        average_price, client_order_id, last_error, created_ms, first_sent_ms,
                        last_sent_ms, updated_ms, last_deadline_ms, account_id)
    SELECT rowid, batch_id, order_id, seq, pair, side, type, quantity, price, body,
           state, attempts, exchange_order_id, exchange_status, filled_quantity,
           average_price, client_order_id, last_error, created_ms, first_sent_ms,
           last_sent_ms, updated_ms, last_deadline_ms, account_id
    FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;

CREATE UNIQUE INDEX orders_exchange_order_id ON orders(account_id, exchange_order_id)
    WHERE exchange_order_id IS NOT NULL;
CREATE INDEX orders_state ON orders(batch_id, state);
-- Schema 3's orders_account_state (account_id, state) was changed with
-- every change of every order's state, and hqx never reads it; what reads
-- orders by account and state is the `open_orders` view (`WHERE
-- account_id = ?`), which this smaller index serves: it changes only when
-- an order becomes or stops being open.
CREATE INDEX orders_open ON orders(account_id) WHERE state = 'open';

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

CREATE VIEW external_fills AS
SELECT * FROM fills WHERE order_id IS NULL;

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
