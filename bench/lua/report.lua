-- Shared by every bench script (loaded with dofile): keeps the threads so
-- done() can add up the per-thread counters, and prints one parseable line
-- that bench/wrk.py reads (wrk's own text output rounds too much).
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
   if thread_setup then thread_setup(thread) end
end

function done(summary, latency, requests)
   local cycles, empties = 0, 0
   for _, t in ipairs(threads) do
      cycles = cycles + (t:get("cycles") or 0)
      empties = empties + (t:get("empties") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"mean_us":%.1f,"max_us":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"cycles":%d,"empties":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout,
      cycles, empties))
end
