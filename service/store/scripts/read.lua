-- KEYS[1] session, KEYS[2] index
-- ARGV[1] session id
-- Returns {the record's fields and values, score}, or an empty table when unknown.
--! include record.lua
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  if not legacy_move(KEYS[1]) then return {} end
  fields = redis.call('HGETALL', KEYS[1])
end
return {fields, redis.call('ZSCORE', KEYS[2], ARGV[1])}
