-- wrk workload: every request creates a new Buy with Prime subscription (a distinct URL
-- per request), so each one is a committed, fsync'd write through the group-committing
-- SQLite writer.  Usage (see bench/README.md):
--   TOKEN=hrat_... wrk -t4 -c64 -d10s -s bench/api-create-subscription.lua http://127.0.0.1:8080
local token = os.getenv("TOKEN")
local run = tostring(os.time())
local next_thread = 0

function setup(thread)
  thread:set("tid", next_thread)
  thread:set("run", run)
  next_thread = next_thread + 1
end

local n = 0
function request()
  n = n + 1
  local body = '{"query":"mutation { createEventSubscription(input: { destination: { webhook: { url: \\"https://hooks.example.com/'
    .. run .. '/' .. tid .. '/' .. n .. '\\" } }, eventType: \\"ORDER_CONFIRMED\\" }) { subscriptionId } }"}'
  return wrk.format("POST", "/graphql", { ["X-Auth-Token"] = token, ["Content-Type"] = "application/json" }, body)
end

local errors = 0
function response(status, headers, body)
  if status ~= 200 or body:find('"errors"') then
    errors = errors + 1
    if errors < 3 then print(status, body) end
  end
end
