-- KEYS[1] session, KEYS[2] messages, KEYS[3] seen, KEYS[4] operation
-- ARGV[1] session id
-- Returns 1 when deleted (by this operation, also when it is sent again), 0 when unknown.
--! include record.lua
if redis.call('EXISTS', KEYS[4]) == 1 then return 1 end
local s = record_read(KEYS[1])
if not s then return 0 end
local ns = namespace_key(KEYS[1], '')
reindex(ns, ARGV[1], memberships(ns, s), {}, '0', false)
local readers, marks = read_marks(ns, KEYS[1])
reads_moved(ns, readers, marks, marks, state_of(s), nil)
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
emit(KEYS[1], 'session.deleted', ARGV[1], s.channel)
redis.call('SET', KEYS[4], '1', 'PX', ${OPERATION_TTL_MS})
return 1
