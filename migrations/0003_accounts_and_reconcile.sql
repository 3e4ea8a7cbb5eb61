-- hqx journal, schema 3: exchange accounts, and what `hqx reconcile` keeps.
--
-- Until now trades were keyed by the exchange's trade id alone and
-- exchange order ids were unique across the whole journal, so two accounts
-- (or the sandbox and production) in one journal overwrote each other's
-- trades. From here on an account is (base URL, public key), and trades,
-- adopted exchange orders, cursors, balance snapshots, external orders and
-- findings all belong to one.
--
-- Journal::open runs this with foreign keys off (the tables `runs`,
-- `orders` and `trades` are rebuilt, SQLite's documented way to change a
-- column's constraints) and checks `PRAGMA foreign_key_check` afterwards.

-- One row per exchange account: where (the base URL, or for the in-process
-- sandbox its state file) and which public key. Never the secret.
CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    base_url   TEXT NOT NULL,
    api_key    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (base_url, api_key)
);
INSERT INTO accounts (base_url, api_key, created_ms)
    SELECT base_url, api_key, MIN(created_ms) FROM batches GROUP BY base_url, api_key;

ALTER TABLE batches ADD COLUMN account_id INTEGER REFERENCES accounts(id);
UPDATE batches SET account_id =
    (SELECT a.id FROM accounts a WHERE a.base_url = batches.base_url AND a.api_key = batches.api_key);

-- runs: a reconcile belongs to an account, not to a batch.
CREATE TABLE runs_new (
    id          INTEGER PRIMARY KEY,
    batch_id    TEXT REFERENCES batches(id),      -- NULL for `reconcile`
    account_id  INTEGER REFERENCES accounts(id),  -- NULL for commands that reach no exchange
    command     TEXT NOT NULL,                     -- run, resolve, reconcile, ack
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    exit_code   INTEGER,
    summary     TEXT
);
INSERT INTO runs_new (id, batch_id, account_id, command, started_ms, finished_ms, exit_code, summary)
    SELECT r.id, r.batch_id, b.account_id, r.command, r.started_ms, r.finished_ms, r.exit_code, r.summary
    FROM runs r LEFT JOIN batches b ON b.id = r.batch_id;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_account ON runs(account_id, id);

-- orders: the account is copied from the batch so that "one exchange order
-- is adopted by at most one journal order" holds per account.
ALTER TABLE orders ADD COLUMN account_id INTEGER REFERENCES accounts(id);
UPDATE orders SET account_id = (SELECT b.account_id FROM batches b WHERE b.id = orders.batch_id);
DROP INDEX orders_exchange_order_id;
CREATE UNIQUE INDEX orders_exchange_order_id ON orders(account_id, exchange_order_id)
    WHERE exchange_order_id IS NOT NULL;
CREATE INDEX orders_account_state ON orders(account_id, state);

-- trades: unique per (account, trade id). A schema-2 trade is given the
-- account of the batch whose run fetched it.
CREATE TABLE trades_new (
    account_id        INTEGER NOT NULL REFERENCES accounts(id),
    trade_id          TEXT NOT NULL,
    exchange_order_id TEXT,
    pair              TEXT,
    side              TEXT,
    price             TEXT,
    quantity          TEXT,            -- this trade's quantity
    fee               TEXT,
    fee_currency      TEXT,
    traded_ms         INTEGER,         -- the exchange's time
    first_run_id      INTEGER,         -- the run that first fetched it
    last_run_id       INTEGER,         -- the run that last fetched it
    seen_ms           INTEGER,         -- when hqx first journaled it
    raw               TEXT NOT NULL,   -- the trade as the exchange sent it
    PRIMARY KEY (account_id, trade_id)
);
INSERT INTO trades_new (account_id, trade_id, exchange_order_id, pair, side, price, quantity, fee,
                        fee_currency, traded_ms, first_run_id, last_run_id, seen_ms, raw)
    SELECT (SELECT b.account_id FROM runs r JOIN batches b ON b.id = r.batch_id WHERE r.id = t.first_run_id),
           t.trade_id, t.exchange_order_id, t.pair, t.side, t.price, t.quantity, t.fee,
           t.fee_currency, t.traded_ms, t.first_run_id, t.last_run_id,
           (SELECT r.started_ms FROM runs r WHERE r.id = t.first_run_id), t.raw
    FROM trades t;
DROP TABLE trades;
ALTER TABLE trades_new RENAME TO trades;
CREATE INDEX trades_order ON trades(account_id, exchange_order_id);
CREATE INDEX trades_time ON trades(account_id, traded_ms);

-- Where the incremental reads of the account stand. `trades`: every
-- trade with traded_ms <= synced_to_ms was read completely; the next read
-- starts an overlap before it, for clock skew and late trades. `orders`:
-- every order created at or before synced_to_ms has been seen (new
-- external orders are looked for after it). `pair` is '' when the
-- exchange lists all pairs at once.
CREATE TABLE sync_cursors (
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    stream       TEXT NOT NULL CHECK (stream IN ('trades', 'orders')),
    pair         TEXT NOT NULL DEFAULT '',
    synced_to_ms INTEGER NOT NULL,
    run_id       INTEGER,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (account_id, stream, pair)
);

-- Balances as the exchange reported them at each reconcile: one row per
-- currency per snapshot. A failed read writes no snapshot (unknown is not
-- zero).
CREATE TABLE balance_snapshots (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    taken_ms   INTEGER NOT NULL
);
CREATE INDEX balance_snapshots_account ON balance_snapshots(account_id, id);
CREATE TABLE balances (
    snapshot_id INTEGER NOT NULL REFERENCES balance_snapshots(id),
    currency    TEXT NOT NULL,
    available   TEXT NOT NULL,
    locked      TEXT NOT NULL,
    total       TEXT NOT NULL,        -- available + locked, exact
    PRIMARY KEY (snapshot_id, currency)
);

-- Orders on the account that no journal order holds: placed by hand, by
-- another tool, or by a batch run from a lost journal. Never adopted by a
-- batch order.
CREATE TABLE external_orders (
    account_id        INTEGER NOT NULL REFERENCES accounts(id),
    exchange_order_id TEXT NOT NULL,
    pair              TEXT,
    side              TEXT,
    type              TEXT,
    quantity          TEXT,
    price             TEXT,
    status            TEXT,
    filled_quantity   TEXT,
    average_price     TEXT,
    created_ms        INTEGER,
    first_run_id      INTEGER NOT NULL,
    last_run_id       INTEGER NOT NULL,
    raw               TEXT NOT NULL,
    PRIMARY KEY (account_id, exchange_order_id)
);

-- Drift: what reconcile found that a routine sync does not explain. One
-- row per (account, kind, subject), seen once or many times. `open`: it
-- alerted once and is listed as known. `acknowledged`: a person took note
-- (`hqx ack ID --note ...`); listed, never alerts again unless
-- its figures (`fingerprint`) change. `cleared`: a state finding (an order
-- with missing fills) that is no longer true; it alerts again if it comes
-- back. Event findings (an unexplained balance change between two
-- snapshots) never clear by themselves.
CREATE TABLE findings (
    id                INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL REFERENCES accounts(id),
    kind              TEXT NOT NULL,   -- external_order, missing_fills, unexplained_balance, ...
    subject           TEXT NOT NULL,   -- what it is about: an order id, a currency, ...
    detail            TEXT NOT NULL,   -- the figures, for people
    fingerprint       TEXT NOT NULL,   -- the figures, for comparing: a change re-opens it
    first_run_id      INTEGER NOT NULL,
    last_run_id       INTEGER NOT NULL,
    first_seen_ms     INTEGER NOT NULL,
    last_seen_ms      INTEGER NOT NULL,
    times_seen        INTEGER NOT NULL DEFAULT 1,
    status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'cleared')),
    cleared_ms        INTEGER,
    ack_note          TEXT,
    ack_ms            INTEGER,
    UNIQUE (account_id, kind, subject)
);
