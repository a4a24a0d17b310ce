-- POST one fixed body: LINE repeated N times, joined by newlines.
-- args: CONTENT_TYPE LINE [N]   (N=1000 gives a batched JobQ push)
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

local req

function init(args)
   local n = tonumber(args[3] or "1")
   local lines = {}
   for i = 1, n do lines[i] = args[2] end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = args[1]
   wrk.body = table.concat(lines, "\n")
   req = wrk.format()  -- built once: building per request would load wrk
end

function request()
   return req
end
