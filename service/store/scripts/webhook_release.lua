-- Gives up a webhook endpoint's lease, if the caller still holds it, so that another
-- worker takes the endpoint over at once (store/webhook_state.py).
-- KEYS[1] lease
-- ARGV[1] owner
-- Returns 1 when released, 0 when the caller did not hold it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
