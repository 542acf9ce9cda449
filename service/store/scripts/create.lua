-- KEYS[1] card, KEYS[2] index, KEYS[3] channel index, KEYS[4] meta, KEYS[5] operation
-- ARGV[1] session id, ARGV[2] card, ARGV[3] score (epoch ms), ARGV[4] metadata ('' if none)
-- Returns 1 when created (by this operation, also when it is sent again), 0 when the id
-- is taken.
if redis.call('EXISTS', KEYS[5]) == 1 then return 1 end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4]) end
redis.call('SET', KEYS[5], '1', 'PX', ${OPERATION_TTL_MS})
return 1
