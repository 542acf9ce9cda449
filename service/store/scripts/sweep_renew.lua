-- Extends a namespace's sweep lease, if the caller still holds it (store/sweep_lease.py).
-- KEYS[1] lease
-- ARGV[1] owner, ARGV[2] lease ms
-- Returns 1 when renewed, 0 when the caller no longer holds it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
