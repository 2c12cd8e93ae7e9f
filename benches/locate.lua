-- Load for GET /v1/locate: wrk -t1 -c64 -d10s --latency -s benches/locate.lua http://127.0.0.1:8080
-- with TOKEN set to a token of a role that may locate (wangge token issue NAME).
-- Random points over Binzhou's extent, one GET /v1/locate each.
math.randomseed(42)
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
request = function()
  local lon = 117.30 + math.random() * 1.10
  local lat = 36.70 + math.random() * 1.55
  return wrk.format("GET", string.format("/v1/locate?lon=%.6f&lat=%.6f", lon, lat))
end
