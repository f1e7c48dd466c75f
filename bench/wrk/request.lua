-- Replays one fixed request (method, path, headers, body) read from the file named by
-- $BENCH_REQUEST, so a SigV4-signed request made by bench/lib/bench.py at the start of a run is
-- sent unchanged on every call (valid for the proxy's 5-minute clock-skew window).
-- File format: line 1 method, line 2 path, then "Name: value" lines, an empty line, the body.
-- done() prints one machine-readable line that bench/run parses.

local path = os.getenv("BENCH_REQUEST")
local f = assert(io.open(path, "rb"), "BENCH_REQUEST: cannot open " .. tostring(path))
local text = f:read("*a")
f:close()

local head, body = text:match("^(.-)\n\n(.*)$")
local lines = {}
for line in (head .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end

wrk.method = lines[1]
wrk.path = lines[2]
wrk.body = body
for i = 3, #lines do
  local name, value = lines[i]:match("^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    math.floor(latency.mean), e.connect, e.read, e.write, e.status, e.timeout))
end
