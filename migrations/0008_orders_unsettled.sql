-- hqx journal, schema 8: the index of a batch's orders by state holds only
-- the states an order passes through, not every order.
--
-- `orders_state` (batch_id, state) held every order. Each order changed it
-- four times in a run (pending out, sending in, sending out, its outcome
-- in) besides the entry made when it was journaled, and a commit rewrote
-- the index pages of four states. hqx reads orders by state for three
-- states only: `sending` and `unknown`, which are few and must be found
-- at once (a run starts by resolving them), and `pending` and `open`,
-- which a run reads all of, once (a search of the batch's orders by their
-- primary key is as quick for those). So the index keeps the first two:
-- an order enters it when it is sent and leaves it with its answer.
--
-- A query uses this index when it names the state as a literal
-- (`state = 'sending'`); `src/journal.rs` writes them so.

DROP INDEX orders_state;
CREATE INDEX orders_unsettled ON orders(batch_id, state)
    WHERE state = 'sending' OR state = 'unknown';
