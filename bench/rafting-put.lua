-- rafting-put.lua - wrk script: each request PUTs a DISTINCT key with a VALUE_SIZE-byte value.
--   wrk -t2 -c64 -d15s --latency -s bench/rafting-put.lua http://127.0.0.1:8001
-- Keys: /<KEY_PREFIX>/<thread>/<counter 10 digits>; the same workload as etcd-put.lua.
-- Optional: TOKEN (sent as `Authorization: Bearer <TOKEN>`, for a tenant of a secure cluster)
-- and KEYS (each thread cycles over that many keys instead of writing new ones).
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
  keys = tonumber(os.getenv("KEYS") or "0")
  headers = {}
  if os.getenv("TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("TOKEN") end
  n = 0
end

function request()
  n = n + 1
  local key = n
  if keys > 0 then key = n % keys end
  return wrk.format("PUT", prefix .. string.format("%010d", key), headers, value)
end

function done(summary, latency, requests)
  local generated = 0
  for _, t in ipairs(threads) do generated = generated + (t:get("n") or 0) end
  io.write(string.format("LUA_DONE requests_generated=%d completed=%d non2xx=%d errors_connect=%d read=%d write=%d timeout=%d\n",
    generated, summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
