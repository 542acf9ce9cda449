-- KEYS[1] session, KEYS[2] index
-- ARGV[1] session id, ARGV[2] title
-- Returns {the record's fields and values, score}, or an empty table when unknown.
--! include record.lua
local s = record_read(KEYS[1])
if not s then return {} end
s.title = ARGV[2]
s.source = 'user'
local item = record_write(KEYS[1], s)
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
emit(KEYS[1], 'session.updated', ARGV[1], s.channel, score or '0', item)
return {redis.call('HGETALL', KEYS[1]), score}
