-- rank_after(index, cs, cm): the rank, in the index's descending order, of the first
-- session after the one a cursor names (score cs, member cm): just below it while it has
-- not moved, else after everything that sorts before (cs, cm) (a higher score, or the
-- same score and a greater member, as ZREVRANGE orders ties).
-- Byte order, as Redis orders members: Lua's string '>' follows the server's locale.
local function bytes_after(a, b)
  local i = 1
  while true do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return y == nil or (x ~= nil and x > y) end
    if x == nil then return false end
    i = i + 1
  end
end
local function rank_after(index, cs, cm)
  local rank = redis.call('ZREVRANK', index, cm)
  if rank and tonumber(redis.call('ZSCORE', index, cm)) == tonumber(cs) then
    return rank + 1
  end
  local start = redis.call('ZCOUNT', index, '(' .. cs, '+inf')
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, cs, cs)) do
    if bytes_after(member, cm) then start = start + 1 end
  end
  return start
end
