-- KEYS[1] session, KEYS[2] messages list
-- ARGV[1] first position, ARGV[2] most messages, ARGV[3] most bytes
-- Returns {-1} for an unknown session, else {total messages, messages…}: from the first
-- position on, fewer than asked when more would pass the bytes (one at least).
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local position, count, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local page = {redis.call('LLEN', KEYS[2])}
local bytes = 0
while position < page[1] and #page <= count do
  local take = math.min(10, count - #page + 1)
  local slice = redis.call('LRANGE', KEYS[2], position, position + take - 1)
  if #slice == 0 then break end
  for _, m in ipairs(slice) do
    if #page > 1 and bytes + #m > max_bytes then return page end
    page[#page + 1] = m
    bytes = bytes + #m
    position = position + 1
  end
end
return page
