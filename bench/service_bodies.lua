-- wrk script for bench/service.py: POST prepared request bodies, in turn, to the URL's path.
--
--   wrk ... -s bench/service_bodies.lua URL -- BODIES_FILE CONTENT_TYPE API_KEY
--
-- BODIES_FILE holds the bodies one after another, each preceded by its length in bytes on a
-- line of its own, so binary (multipart) bodies need no escaping. Every request is formatted
-- once, in init(), so the loop itself only hands out ready strings. Each thread starts at its
-- own place in the pool. done() prints one line, "WRK_JSON {...}", that bench/service.py
-- reads: counts, error counts (status = responses of 400 and over) and latency percentiles in
-- microseconds.

local prepared = {}
local position = 1
local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

function init(args)
   local path, content_type, key = args[1], args[2], args[3]
   local handle = assert(io.open(path, "rb"))
   local headers = {
      ["Content-Type"] = content_type,
      ["Authorization"] = "Bearer " .. key,
   }
   while true do
      local line = handle:read("*l")
      if not line or line == "" then break end
      local body = handle:read(tonumber(line))
      prepared[#prepared + 1] = wrk.format("POST", nil, headers, body)
   end
   handle:close()
   assert(#prepared > 0, "no bodies in " .. path)
   position = ((id or 0) * 7919) % #prepared + 1
end

function request()
   local value = prepared[position]
   position = position % #prepared + 1
   return value
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
         .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, '
         .. '"p99_us": %d, "p999_us": %d, "mean_us": %.1f, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.mean,
      latency.max
   ))
end
