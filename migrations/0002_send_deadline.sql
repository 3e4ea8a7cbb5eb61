-- hqx journal, schema 2: when the latest placement request of an order
-- stops waiting for its answer (its send time plus the request timeout of
-- the run that sent it). An unknown order may be called absent only once
-- this, plus the grace period, has passed: a later run with a shorter
-- timeout must not cut the wait short.
ALTER TABLE orders ADD COLUMN last_deadline_ms INTEGER;
