-- What happened to one order: every state change, oldest first, with the
-- run that made it and why.
--
--     hqx sql --file examples/queries/order_history.sql -p batch BATCH -p order ORDER
--
-- Events are named in README.md (journaled, send, acknowledged, lost, found…).
SELECT e.id,
       strftime('%Y-%m-%dT%H:%M:%fZ', e.at_ms / 1000.0, 'unixepoch') AS at_utc,
       e.run_id,
       e.event,
       e.from_state,
       e.to_state,
       e.detail
FROM order_events AS e
WHERE e.batch_id = :batch AND e.order_id = :order
ORDER BY e.id;
