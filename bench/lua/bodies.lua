-- POST each line of a file as one request body, each line once (thread k of
-- T takes lines k, k+T, ...), then stop the thread. Used for cancel: every
-- request cancels a different pending job. Run with -t equal to -c.
-- args: CONTENT_TYPE FILE THREADS
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

local reqs, next_i = {}, 1

function init(args)
   local nthreads = tonumber(args[3])
   local i = 0
   for line in io.lines(args[2]) do
      if i % nthreads == thread_no - 1 then
         reqs[#reqs + 1] = wrk.format("POST", nil, {["Content-Type"] = args[1]}, line)
      end
      i = i + 1
   end
end

function request()
   -- past the end (only while the stop takes effect) repeat the last body
   return reqs[math.min(next_i, #reqs)]
end

function response(status, headers, body)
   next_i = next_i + 1
   if next_i > #reqs then wrk.thread:stop() end
end
