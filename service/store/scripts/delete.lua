-- KEYS[1] session, KEYS[2] operation
-- ARGV[1] session id
-- Returns 1 when deleted (by this operation, also when it is sent again), 0 when unknown.
--! include record.lua
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local s = record_read(KEYS[1])
if not s then return 0 end
record_delete(namespace_key(KEYS[1], ''), KEYS[1], ARGV[1], s)
redis.call('SET', KEYS[2], '1', 'PX', ${OPERATION_TTL_MS})
return 1
