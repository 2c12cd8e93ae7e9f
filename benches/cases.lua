-- Load for POST /v1/cases (a hotline dispatcher filing cases):
--   wrk -t1 -c64 -d20s --latency -s benches/cases.lua http://127.0.0.1:8080
-- with TOKEN set to a dispatcher's token over the city (wangge user add … --role
-- dispatcher --scope 3716; wangge token issue …) and POINTS naming a file of
-- "lon,lat" lines inside grids. scripts/case-load does all of it.
math.randomseed(7)
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
local points = {}
for line in io.lines(os.getenv("POINTS")) do
  points[#points + 1] = line
end
local n = 0
request = function()
  n = n + 1
  local p = points[math.random(#points)]
  local lon, lat = p:match("([^,]+),([^,]+)")
  local body = string.format(
    '{"lon":%s,"lat":%s,"matter":"WG-005","description":"wrk case %d"}', lon, lat, n)
  return wrk.format("POST", "/v1/cases", nil, body)
end
