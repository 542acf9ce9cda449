-- KEYS[1] session, KEYS[2] index, KEYS[3] channel index, KEYS[4] operation
-- ARGV[1] session id, ARGV[2] score (epoch ms), then the record's fields and values
-- Returns 1 when created (by this operation, also when it is sent again), 0 when the id
-- is taken.
--! include record.lua
if redis.call('EXISTS', KEYS[4]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 or legacy_move(KEYS[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
local fields = {}
for k = 3, #ARGV, 2 do fields[ARGV[k]] = ARGV[k + 1] end
channel_added(KEYS[1], fields.channel)
emit(KEYS[1], 'session.created', ARGV[1], fields.channel, ARGV[2], fields.item)
redis.call('SET', KEYS[4], '1', 'PX', ${OPERATION_TTL_MS})
return 1
