-- A JobQ worker per connection: startjob, then update the job it got to
-- finished, again and again. Threads are spread over several server ports
-- (several nodes sharing one database). Run with -t equal to -c so that each
-- Lua state drives exactly one connection and the two calls alternate.
-- args: PROJECT; env BENCH_PORTS=P1,P2,... (default: the URL's port)
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

-- The ports come from the environment: setup() runs before init() sees args.
local ports, assigned = {}, 0

function thread_setup(thread)
   if assigned == 0 then
      for p in string.gmatch(os.getenv("BENCH_PORTS") or "", "%d+") do
         ports[#ports + 1] = p
      end
   end
   if #ports > 0 then
      thread.addr = wrk.lookup(wrk.host, ports[assigned % #ports + 1])[1]
   end
   assigned = assigned + 1
end

local start_req, update_path, key, last
cycles, empties = 0, 0

function init(args)
   start_req = wrk.format("POST", "/jobq/" .. args[1] .. "/startjob", nil, "")
   update_path = "/jobq/" .. args[1] .. "/update"
end

function request()
   if key then
      last = "update"
      local body = '{"key":"' .. key .. '","state":"finished"}'
      key = nil
      return wrk.format("POST", update_path, nil, body)
   end
   last = "start"
   return start_req
end

function response(status, headers, body)
   if last == "start" then
      if status == 200 then
         key = string.match(body, '"key"%s*:%s*"([^"]+)"')
      else
         empties = empties + 1
      end
   elseif status == 200 then
      cycles = cycles + 1
   end
end
