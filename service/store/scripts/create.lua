-- KEYS[1] session, KEYS[2] operation
-- ARGV[1] session id, ARGV[2] time (epoch ms), ARGV[3] the same as RFC 3339, ARGV[4]
-- title, ARGV[5] title source, ARGV[6] channel, ARGV[7] user ('' for none), ARGV[8]
-- metadata JSON ('' for none)
-- Returns the record's fields and values when created (by this operation, also when it
-- is sent again), 0 when the id is taken.
--! include record.lua
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.call('HGETALL', KEYS[1]) end
if redis.call('EXISTS', KEYS[1]) == 1 or legacy_move(KEYS[1]) then return 0 end
local s = {title = ARGV[4], source = ARGV[5], channel = ARGV[6], created = ARGV[3],
  updated = ARGV[3], count = 0, pinned = false, archived = false, tags = {}}
if ARGV[7] ~= '' then s.user = ARGV[7] end
local item = record_write(KEYS[1], s)
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'metadata', ARGV[8]) end
local ns = namespace_key(KEYS[1], '')
reindex(ns, ARGV[1], {}, memberships(ns, s), ARGV[2], true)
reads_moved(ns, nil, state_of(s))
emit(KEYS[1], 'session.created', ARGV[1], s.channel, ARGV[2], item)
redis.call('SET', KEYS[2], '1', 'PX', ${OPERATION_TTL_MS})
return redis.call('HGETALL', KEYS[1])
