-- wrk script: PUTs of 4 KiB values to distinct keys of unlocked partitions (HTTP API v1).
-- Usage: wrk -t2 -c64 -d10s --latency -s scripts/wrk-put.lua http://127.0.0.1:7420
-- Each connection writes its own partitions (wrk-<thread>-<n>), so no two requests contend.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  value = string.rep("x", 4096)
  n = 0
end

function request()
  n = n + 1
  local path = string.format("/v1/partitions/wrk-%d-%d/objects/save-%d", tid, n % 1000, n)
  return wrk.format("PUT", path, {["Content-Type"] = "application/octet-stream"}, value)
end
