-- KEYS[1] session, KEYS[2] messages list
-- ARGV[1] limit, ARGV[2] before (list position; '' for the newest), ARGV[3] most bytes
-- Returns {-1} for an unknown session, else {first position, messages…}: the newest
-- messages before ``before``, at most ``limit`` of them and fewer when more would pass
-- the bytes, oldest first.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local limit, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[3])
local first = redis.call('LLEN', KEYS[2])
if ARGV[2] ~= '' then first = math.min(first, tonumber(ARGV[2])) end
local newest_first, bytes, full = {}, 0, false
while not full and first > 0 and #newest_first < limit do
  local take = math.min(10, limit - #newest_first, first)
  local slice = redis.call('LRANGE', KEYS[2], first - take, first - 1)
  for j = #slice, 1, -1 do
    if #newest_first > 0 and bytes + #slice[j] > max_bytes then
      full = true
      break
    end
    newest_first[#newest_first + 1] = slice[j]
    bytes = bytes + #slice[j]
    first = first - 1
  end
end
local page = {first}
for k = #newest_first, 1, -1 do page[#page + 1] = newest_first[k] end
return page
