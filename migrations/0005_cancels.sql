-- hqx journal, schema 5: cancels.
--
-- A batch's `cancels:` entry is one row of `cancels`, journaled with the
-- batch's orders before anything is sent. Once hqx knows which exchange
-- orders it is about (at once for `order:` and `exchange_order_id:`; from
-- the account's open orders, read once, for `all_open:`), each of them is a
-- row of `cancel_orders`, journaled before its DELETE leaves. Every change
-- of a `cancel_orders` row is a row of `cancel_events`.

CREATE TABLE cancels (
    batch_id    TEXT NOT NULL REFERENCES batches(id),
    cancel_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,        -- position in the file
    target_kind TEXT NOT NULL CHECK (target_kind IN ('order', 'exchange_order_id', 'all_open')),
    target      TEXT NOT NULL,           -- batch/order, exchange order id, or pair
    -- pending (its orders not yet known), expanded (its orders are in
    -- cancel_orders), then as the run left it: done, waiting, unknown, failed
    state       TEXT NOT NULL,
    detail      TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (batch_id, cancel_id)
);

CREATE TABLE cancel_orders (
    batch_id          TEXT NOT NULL,
    cancel_id         TEXT NOT NULL,
    item              INTEGER NOT NULL,  -- 0, 1, ... within the cancel
    exchange_order_id TEXT,              -- NULL: a journal order never sent
    order_batch_id    TEXT,              -- the journal order, when there is one
    order_id          TEXT,
    -- pending, waiting, sending, unknown, done, already_filled,
    -- already_cancelled, not_needed, failed (src/cancel.rs)
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    created_ms        INTEGER NOT NULL,
    first_sent_ms     INTEGER,
    last_sent_ms      INTEGER,
    updated_ms        INTEGER NOT NULL,
    PRIMARY KEY (batch_id, cancel_id, item),
    FOREIGN KEY (batch_id, cancel_id) REFERENCES cancels(batch_id, cancel_id)
);
CREATE INDEX cancel_orders_exchange ON cancel_orders(exchange_order_id);

CREATE TABLE cancel_events (
    id         INTEGER PRIMARY KEY,
    batch_id   TEXT NOT NULL,
    cancel_id  TEXT NOT NULL,
    item       INTEGER,                  -- NULL: about the cancel itself
    run_id     INTEGER REFERENCES runs(id),
    at_ms      INTEGER NOT NULL,
    event      TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT,
    detail     TEXT
);
CREATE INDEX cancel_events_cancel ON cancel_events(batch_id, cancel_id, id);
