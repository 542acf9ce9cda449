-- Gives up a namespace's sweep lease, if the caller still holds it, so that the next
-- sweeper need not wait for it to run out (store/sweep_lease.py).
-- KEYS[1] lease
-- ARGV[1] owner
-- Returns 1 when released, 0 when the caller did not hold it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
