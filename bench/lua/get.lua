-- GET the URL given to wrk (query string included); only adds the report.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
