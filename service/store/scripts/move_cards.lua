-- KEYS[1] index
-- ARGV[1] session key prefix, ARGV[2] first rank, ARGV[3] how many ranks
-- Moves the sessions at those ranks that are still cards (a release before hashes) to
-- their hashes. Returns {sessions moved, ranks read}.
--! include record.lua
local ids = redis.call('ZRANGE', KEYS[1], ARGV[2], tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local moved = 0
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 0 and legacy_move(key) then moved = moved + 1 end
end
return {moved, #ids}
