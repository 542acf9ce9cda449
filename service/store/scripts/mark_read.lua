-- KEYS[1] session
-- ARGV[1] session id, ARGV[2] reader, ARGV[3] messages read ('' for all of them now)
-- Marks the session read by the reader up to that many messages (at most all of them).
-- Returns {the record's fields and values, score}, or an empty table when unknown. A
-- mark that moves appends the session's event: the reader's unread counts changed.
--! include record.lua
local s = record_read(KEYS[1])
if not s then return {} end
local ns = namespace_key(KEYS[1], '')
local field = 'read:' .. ARGV[2]
local mark = s.count
if ARGV[3] ~= '' then mark = math.min(tonumber(ARGV[3]), s.count) end
local score = redis.call('ZSCORE', memberships(ns, s)[1][1], ARGV[1]) or '0'
redis.call('SADD', ns .. 'readers', ARGV[2])
local readers, before = read_marks(ns, KEYS[1])
local old = redis.call('HGET', KEYS[1], field)
if tostring(mark) ~= old then
  redis.call('HSET', KEYS[1], field, string.format('%d', mark))
  local _, after = read_marks(ns, KEYS[1])
  local state = state_of(s)
  reads_moved(ns, readers, before, after, state, state)
  emit(KEYS[1], 'session.updated', ARGV[1], s.channel, score, record_item(s))
end
return {redis.call('HGETALL', KEYS[1]), score}
