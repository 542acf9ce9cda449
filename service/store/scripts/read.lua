-- KEYS[1] card, KEYS[2] index, KEYS[3] meta
-- ARGV[1] session id
-- Returns {card, score, metadata or false}, or an empty table when unknown.
local card = redis.call('GET', KEYS[1])
if not card then return {} end
return {card, redis.call('ZSCORE', KEYS[2], ARGV[1]), redis.call('GET', KEYS[3])}
