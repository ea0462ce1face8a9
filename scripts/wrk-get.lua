-- wrk script: GETs of one object in 1,000 partitions (read-0 … read-999, key k), at random.
-- Usage: wrk -t1 -c32 -d8s --latency -s scripts/wrk-get.lua http://NODE
-- scripts/bench-cluster writes the objects first (its plain-read measurement).
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

function request()
  return wrk.format("GET", string.format("/v1/partitions/read-%d/objects/k", math.random(0, 999)))
end
