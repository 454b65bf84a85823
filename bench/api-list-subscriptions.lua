-- wrk workload: a page of 10 subscriptions with its total count (token lookup, one count
-- and one page query on the read pool).
--   TOKEN=hrat_... wrk -t4 -c64 -d10s -s bench/api-list-subscriptions.lua http://127.0.0.1:8080
local token = os.getenv("TOKEN")
local body = '{"query":"{ eventSubscriptions(first: 10) { totalCount edges { cursor node { subscriptionId status eventSubscriptionDetails { eventTypes } } } } }"}'

function request()
  return wrk.format("POST", "/graphql", { ["X-Auth-Token"] = token, ["Content-Type"] = "application/json" }, body)
end
