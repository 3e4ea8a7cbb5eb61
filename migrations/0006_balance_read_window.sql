-- hqx journal, schema 6: when a balance read was sent, beside when its
-- answer came (`taken_ms`). A trade the exchange stamped between the two
-- (give or take the venue's `balance_skew_ms`) may or may not be in the
-- balances read, so such a snapshot is not used to compare balances with
-- trades: reconcile compares two snapshots that no trade straddles.
-- NULL for snapshots journaled before: read in an instant at taken_ms.
ALTER TABLE balance_snapshots ADD COLUMN sent_ms INTEGER;
