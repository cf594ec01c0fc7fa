-- wrk script for TechEmpower-style pipelining: every write carries `depth`
-- copies of the request (the first script argument, default 16).
-- Used by the load harness: wrk -s benches/pipeline.lua URL -- 16

init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
