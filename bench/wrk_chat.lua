-- wrk script for bench/workers_wrk.py: POST /v1/chat/completions with a bearer key and the
-- same JSON body every time, so that every request after the first is an exact hit.
--   BOUNDGATE_KEY=sk-… wrk -t1 -c16 -d10s --latency -s bench/wrk_chat.lua http://127.0.0.1:8000
-- BOUNDGATE_PROMPT changes the question (default: the one the benchmark stores first).
local key = os.getenv("BOUNDGATE_KEY") or ""
local prompt = os.getenv("BOUNDGATE_PROMPT") or "What is the boiling point of water?"

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"messages":[{"role":"user","content":"' .. prompt .. '"}],"temperature":0}'

-- one machine-readable line for the benchmark (times in microseconds)
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BOUNDGATE_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
