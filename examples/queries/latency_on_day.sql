-- How slow was the exchange on a day (UTC): per endpoint, requests, errors
-- and latency percentiles in milliseconds. Yesterday:
--
--     hqx sql --file examples/queries/latency_on_day.sql -p day "$(date -u -d yesterday +%F)"
--
-- `requests_daily` keeps latencies as integer microseconds; the
-- milliseconds here are floats, which is fine for durations.
SELECT method,
       endpoint,
       requests,
       errors,
       p50_us / 1000.0  AS p50_ms,
       p90_us / 1000.0  AS p90_ms,
       p99_us / 1000.0  AS p99_ms,
       max_us / 1000.0  AS max_ms
FROM requests_daily
WHERE day_ms = CAST(strftime('%s', :day) AS INTEGER) * 1000
ORDER BY p99_us DESC, method, endpoint;
