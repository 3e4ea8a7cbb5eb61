-- hqx journal, schema 1. Every timestamp is milliseconds since the Unix
-- epoch, UTC (read them with datetime(x/1000, 'unixepoch')). Decimals are
-- TEXT exactly as written or as the exchange sent them: never REAL.

-- One row per batch id: the idempotency namespace of its orders.
CREATE TABLE batches (
    id          TEXT PRIMARY KEY,
    file_path   TEXT NOT NULL,     -- where it was last run from
    file_sha256 TEXT NOT NULL,     -- hash of the file as last run
    base_url    TEXT NOT NULL,     -- the exchange it is bound to
    api_key     TEXT NOT NULL,     -- the public key it is bound to (never the secret)
    created_ms  INTEGER NOT NULL
);

-- One row per invocation of hqx run / hqx resolve on a batch.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    batch_id    TEXT NOT NULL REFERENCES batches(id),
    command     TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    exit_code   INTEGER,
    summary     TEXT
);

-- One row per batch order: the intent as written and where it stands.
CREATE TABLE orders (
    batch_id          TEXT NOT NULL REFERENCES batches(id),
    order_id          TEXT NOT NULL,
    seq               INTEGER NOT NULL,            -- position in the batch file
    pair              TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    type              TEXT NOT NULL CHECK (type IN ('limit', 'market')),
    quantity          TEXT NOT NULL,
    price             TEXT,
    body              TEXT NOT NULL,               -- the exact JSON body signed and sent
    state             TEXT NOT NULL CHECK (state IN
                        ('pending', 'sending', 'open', 'filled', 'cancelled', 'rejected', 'unknown')),
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
    PRIMARY KEY (batch_id, order_id)
);
-- One exchange order is never adopted by two journal orders.
CREATE UNIQUE INDEX orders_exchange_order_id ON orders(exchange_order_id)
    WHERE exchange_order_id IS NOT NULL;
CREATE INDEX orders_state ON orders(batch_id, state);

-- Append-only: every state change of every order, in order.
CREATE TABLE order_events (
    id         INTEGER PRIMARY KEY,
    batch_id   TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    run_id     INTEGER,
    at_ms      INTEGER NOT NULL,
    event      TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX order_events_order ON order_events(batch_id, order_id, id);

-- Every HTTP exchange with the exchange: no key, no signature, no body.
CREATE TABLE http_log (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER,
    at_ms      INTEGER NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,          -- with the query string
    status     INTEGER,                -- NULL when no answer was seen
    latency_us INTEGER NOT NULL,
    error      TEXT,
    batch_id   TEXT,
    order_id   TEXT                    -- the batch order a placement was for
);

-- Trades of the account, unique by the exchange's trade id, upserted.
CREATE TABLE trades (
    trade_id          TEXT PRIMARY KEY,
    exchange_order_id TEXT,
    pair              TEXT,
    side              TEXT,
    price             TEXT,
    quantity          TEXT,
    fee               TEXT,
    fee_currency      TEXT,
    traded_ms         INTEGER,
    first_run_id      INTEGER,         -- the run that first fetched it
    last_run_id       INTEGER,         -- the run that last fetched it
    raw               TEXT NOT NULL    -- the trade as the exchange sent it
);
CREATE INDEX trades_order ON trades(exchange_order_id);

-- The answer to every batch query, per run.
CREATE TABLE query_results (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    batch_id   TEXT NOT NULL,
    query_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    fetched_ms INTEGER NOT NULL,
    ok         INTEGER NOT NULL,       -- 1 answered, 0 failed
    result     TEXT,                   -- JSON as received (all pages for trades)
    error      TEXT
);
CREATE INDEX query_results_query ON query_results(batch_id, query_id, id);
