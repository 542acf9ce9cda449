-- KEYS[1] card, KEYS[2] index, KEYS[3] messages, KEYS[4] seen, KEYS[5] meta,
-- KEYS[6] operation
-- ARGV[1] session id, ARGV[2] channel key prefix
-- Returns 1 when deleted (by this operation, also when it is sent again), 0 when unknown.
--! include card.lua
if redis.call('EXISTS', KEYS[6]) == 1 then return 1 end
local card = redis.call('GET', KEYS[1])
if not card then return 0 end
local s = card_parse(card)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. s.channel, ARGV[1])
redis.call('UNLINK', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[6], '1', 'PX', ${OPERATION_TTL_MS})
return 1
