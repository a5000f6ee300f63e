-- rafting-get.lua - wrk script: linearizable GET of one key (ReadIndex through the leader).
--   READ_KEY=/bench/put-c1/1/0000000002 wrk -t2 -c64 -d15s --latency -s bench/rafting-get.lua http://127.0.0.1:8001
-- STALE=1 reads the node's local copy instead.
local key = os.getenv("READ_KEY") or "/bench/1/0000000001"
local stale = os.getenv("STALE") == "1" and "?stale" or ""
wrk.method = "GET"
wrk.path = "/v1/kv" .. key .. stale

function done(summary, latency, requests)
  io.write(string.format("LUA_DONE completed=%d non2xx=%d errors_connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
