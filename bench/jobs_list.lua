-- bench/jobs_list.lua - the paginated list of bench/jobs.sh.
--
--   wrk -t1 -c1 ... -s bench/jobs_list.lua URL -- TOKEN TEAM PAGES
--
-- GET /api/v1/jobs?team=TEAM&limit=100, then follows the answer's next page token
-- PAGES-1 times, then starts again from the first page.  With one connection the
-- requests are strictly one after another, so the token of an answer is used by the very
-- next request.  A separate script from jobs.lua because wrk parses response bodies for
-- every request as soon as a script defines response().  done() prints the WRK_STATS line
-- of jobs.lua.  (done() runs in wrk's main Lua state and cannot see how many tokens the
-- thread followed: bench/jobs.sh walks the pages once with curl to show that.)

local token, team, pages, page, next_token

function init(args)
    token = args[1]
    team = args[2]
    pages = tonumber(args[3] or "5")
    page = 1
end

function request()
    local path = "/api/v1/jobs?team=" .. team .. "&limit=100"
    if next_token then
        path = path .. "&page_token=" .. next_token
    end
    return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
    local found = status == 200 and (body:match('"next_page_token"%s*:%s*"([^"]+)"') or
                                     body:match('"page_token"%s*:%s*"([^"]+)"'))
    if found and page < pages then
        next_token = found
        page = page + 1
    else
        next_token = nil
        page = 1
    end
end

function done(summary, latency, requests)
    local seconds = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "WRK_STATS requests=%d duration_s=%.3f rps=%.2f p50_ms=%.3f p99_ms=%.3f " ..
        "non2xx=%d socket_errors=%d\n",
        summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        e.status, e.connect + e.read + e.write + e.timeout))
end
