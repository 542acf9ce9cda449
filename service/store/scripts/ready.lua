-- KEYS[1] READY_KEY
-- Returns 1. It writes, so that a Redis refusing writes (OOM, READONLY, MISCONF) is not
-- taken for ready.
redis.call('SET', KEYS[1], '1', 'PX', 10000)
return 1
