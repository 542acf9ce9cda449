-- KEYS[1] session, KEYS[2] the namespace's version, KEYS[3] its index, KEYS[4] its
-- archived sessions
-- ARGV[1] session id, ARGV[2] active cutoff (epoch ms)
-- Returns {the record's fields and values, score, version (version.lua: two values)},
-- or an empty table when unknown.
--! include record.lua
--! include version.lua
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  if not legacy_move(KEYS[1]) then return {} end
  fields = redis.call('HGETALL', KEYS[1])
end
local score = redis.call('ZSCORE', KEYS[3], ARGV[1]) or redis.call('ZSCORE', KEYS[4], ARGV[1])
local latest, all_active = namespace_version(KEYS[2], KEYS[3], KEYS[4], ARGV[2])
return {fields, score, latest, all_active}
