-- Slow or failed requests, per endpoint and day (UTC): how many requests,
-- how many failed (no answer seen, or a status of 400 or more), how many
-- took over a second, and the worst and average latency in milliseconds.
--
--     hqx sql --file examples/queries/requests_per_endpoint_day.sql
--
-- The endpoint is the path without its query string. Latencies are
-- integers (microseconds); the milliseconds are floats, which is fine for
-- durations.
SELECT date(h.at_ms / 1000, 'unixepoch')                   AS day,
       h.method,
       CASE WHEN instr(h.path, '?') > 0
            THEN substr(h.path, 1, instr(h.path, '?') - 1)
            ELSE h.path END                                  AS endpoint,
       count(*)                                              AS requests,
       sum(h.status IS NULL OR h.status >= 400)              AS failed,
       sum(h.latency_us > 1000000)                           AS slow,
       max(h.latency_us) / 1000.0                            AS max_ms,
       round(avg(h.latency_us) / 1000.0, 3)                  AS avg_ms
FROM http_log AS h
GROUP BY day, h.method, endpoint
ORDER BY day, h.method, endpoint;
