-- wrk script of bench/faults.sh: counts answers by HTTP status (wrk itself only says
-- "Non-2xx or 3xx") and prints one machine-readable line at the end:
--   STATUS 200=12345 502=3
-- The request (path, Cookie, Accept) comes from wrk's command line (-H, URL).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      for status, n in pairs(counts) do
         total[status] = (total[status] or 0) + n
      end
   end
   local keys = {}
   for status in pairs(total) do
      table.insert(keys, status)
   end
   table.sort(keys)
   local parts = {}
   for _, status in ipairs(keys) do
      table.insert(parts, status .. "=" .. total[status])
   end
   io.write(string.format("STATUS %s\n", table.concat(parts, " ")))
   io.write(string.format("LATENCY p50=%.3f p99=%.3f max=%.3f\n",
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
   io.write(string.format("TOTAL requests=%d duration_s=%.2f timeouts=%d connect=%d read=%d\n",
      summary.requests, summary.duration / 1e6, summary.errors.timeout,
      summary.errors.connect, summary.errors.read))
end
