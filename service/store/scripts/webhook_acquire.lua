-- A webhook endpoint's lease and position (store/webhook_state.py).
-- KEYS[1] lease, KEYS[2] position, KEYS[3] events (the namespace's stream)
-- ARGV[1] owner (one worker's delivery to this endpoint), ARGV[2] lease ms
-- Returns nil when another owner holds the lease. Otherwise takes or renews it and
-- returns {position, new}: the id of the last event handled, and 1 when the endpoint
-- had none, when its position is set to the stream's newest event ('0-0' for an empty
-- stream) so that a new endpoint gets the events written from now on, not the history.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return nil end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local position = redis.call('GET', KEYS[2])
if position then return {position, 0} end
local newest = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
position = newest and newest[1] or '0-0'
redis.call('SET', KEYS[2], position)
return {position, 1}
