-- KEYS[1] session, KEYS[2] index
-- ARGV[1] session id, ARGV[2] title
-- Returns {the record's fields and values, score}, or an empty table when unknown.
--! include record.lua
local s = record_read(KEYS[1])
if not s then return {} end
s.title = ARGV[2]
s.source = 'user'
record_write(KEYS[1], s)
return {redis.call('HGETALL', KEYS[1]), redis.call('ZSCORE', KEYS[2], ARGV[1])}
