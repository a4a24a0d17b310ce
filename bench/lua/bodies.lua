-- POST each line of a file as one request body, each line once (thread k of
-- T takes lines k, k+T, ...), then stop the thread. Used for cancel: every
-- request cancels a different pending job. Run with -t equal to -c.
-- args: CONTENT_TYPE FILE THREADS [PATTERN]; answers matching the Lua PATTERN
-- (e.g. one saying a job was cancelled) are counted as `cycles`.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

local reqs, next_i, pattern = {}, 1, nil
cycles = 0

function init(args)
   local nthreads = tonumber(args[3])
   pattern = args[4]
   -- a headers table given to wrk.format replaces wrk.headers (-H): copy them
   local headers = {["Content-Type"] = args[1]}
   for k, v in pairs(wrk.headers) do headers[k] = v end
   local i = 0
   for line in io.lines(args[2]) do
      if i % nthreads == thread_no - 1 then
         reqs[#reqs + 1] = wrk.format("POST", nil, headers, line)
      end
      i = i + 1
   end
end

function request()
   -- past the end (only while the stop takes effect) repeat the last body
   return reqs[math.min(next_i, #reqs)]
end

function response(status, headers, body)
   if pattern and next_i <= #reqs and string.find(body, pattern) then
      cycles = cycles + 1
   end
   next_i = next_i + 1
   if next_i > #reqs then wrk.thread:stop() end
end
