-- bench/jobs.lua - the wrk requests of bench/jobs.sh (all but the paginated list).
--
--   wrk ... -s bench/jobs.lua URL -- MODE TOKEN [ARG]
--
--   healthz          GET /healthz
--   submit RUN       POST /api/v1/jobs; the Idempotency-Key RUN-<thread>-<n> is new for
--                    every request, so every request is a new job
--   get FILE         GET /api/v1/jobs/<id>, a random id from FILE (one per line)
--   get seq:N        the same with ids job-<26 digits> below N (bench/jobs_bulk.py's ids)
--
-- Every mode builds its requests in request(), so the baseline (/healthz) pays the same
-- client-side cost as the measured endpoint.  done() prints one parsable line:
--   WRK_STATS requests=.. duration_s=.. rps=.. p50_ms=.. p99_ms=.. non2xx=.. socket_errors=..

local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

local mode, token, headers, fixed, ids, id_count, run, sequence

local function read_ids(path)
    local list = {}
    for line in io.lines(path) do
        if line ~= "" then
            list[#list + 1] = line
        end
    end
    return list
end

function init(args)
    mode = args[1]
    token = args[2]
    headers = {["Authorization"] = "Bearer " .. token}
    math.randomseed(os.time() * 1000 + (tid or 0))
    if mode == "healthz" then
        fixed = wrk.format("GET", "/healthz", {})
    elseif mode == "submit" then
        run = args[3] or "run"
        sequence = 0
        headers["Content-Type"] = "application/json"
        wrk.body = '{"name":"bench-submit","team":"bench","spark_version":"4.0",' ..
                   '"application":{"file":"local:///bench/job.py","args":["1"]}}'
    elseif mode == "get" then
        local source = args[3]
        if source:sub(1, 4) == "seq:" then
            id_count = tonumber(source:sub(5))
        else
            ids = read_ids(source)
            id_count = #ids
        end
        if id_count == nil or id_count < 1 then
            error("get: no ids in " .. source)
        end
    else
        error("unknown mode " .. tostring(mode))
    end
end

function request()
    if fixed then
        return fixed
    elseif mode == "submit" then
        sequence = sequence + 1
        headers["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, sequence)
        return wrk.format("POST", "/api/v1/jobs", headers)
    end
    local n = math.random(1, id_count)
    local id = ids and ids[n] or string.format("job-%026d", n - 1)
    return wrk.format("GET", "/api/v1/jobs/" .. id, headers)
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
