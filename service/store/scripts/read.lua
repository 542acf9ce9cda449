-- KEYS[1] session, KEYS[2] index, KEYS[3] the namespace's version
-- ARGV[1] session id, ARGV[2] active cutoff (epoch ms)
-- Returns {the record's fields and values, score, version, the index's active count},
-- or an empty table when unknown.
--! include record.lua
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  if not legacy_move(KEYS[1]) then return {} end
  fields = redis.call('HGETALL', KEYS[1])
end
return {fields, redis.call('ZSCORE', KEYS[2], ARGV[1]), redis.call('GET', KEYS[3]) or false,
  redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf')}
