-- rafting-put.lua - wrk script: each request PUTs a DISTINCT key with a VALUE_SIZE-byte value.
--   wrk -t2 -c64 -d15s --latency -s bench/rafting-put.lua http://127.0.0.1:8001
-- Keys: /<KEY_PREFIX>/<thread>/<counter 10 digits>; the same workload as etcd-put.lua.
local threads = {}
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

local prefix, value
function init(args)
  prefix = "/v1/kv/" .. (os.getenv("KEY_PREFIX") or "bench") .. "/" .. tostring(tid) .. "/"
  value = string.rep("v", tonumber(os.getenv("VALUE_SIZE") or "100"))
  n = 0
end

function request()
  n = n + 1
  return wrk.format("PUT", prefix .. string.format("%010d", n), nil, value)
end

function done(summary, latency, requests)
  local generated = 0
  for _, t in ipairs(threads) do generated = generated + (t:get("n") or 0) end
  io.write(string.format("LUA_DONE requests_generated=%d completed=%d non2xx=%d errors_connect=%d read=%d write=%d timeout=%d\n",
    generated, summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
