-- Moves a webhook endpoint's position past an event (store/webhook_state.py).
-- KEYS[1] lease, KEYS[2] position
-- ARGV[1] owner, ARGV[2] the new position (an event id), ARGV[3] lease ms
-- Returns 1 when moved, with the lease renewed; 0, moving nothing, when the caller no
-- longer holds the lease: then another worker may have moved the position since.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
