-- KEYS[1] session, KEYS[2] index, KEYS[3] messages, KEYS[4] seen, KEYS[5] operation
-- ARGV[1] session id, ARGV[2] channel key prefix
-- Returns 1 when deleted (by this operation, also when it is sent again), 0 when unknown.
--! include record.lua
if redis.call('EXISTS', KEYS[5]) == 1 then return 1 end
local s = record_read(KEYS[1])
if not s then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local channel_index = ARGV[2] .. s.channel
redis.call('ZREM', channel_index, ARGV[1])
redis.call('UNLINK', KEYS[1], KEYS[3], KEYS[4])
channel_left(KEYS[1], s.channel, channel_index)
emit(KEYS[1], 'session.deleted', ARGV[1], s.channel)
redis.call('SET', KEYS[5], '1', 'PX', ${OPERATION_TTL_MS})
return 1
