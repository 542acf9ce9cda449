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
local old = redis.call('HGET', KEYS[1], field)
if tostring(mark) ~= old then
  redis.call('HSET', KEYS[1], field, string.format('%d', mark))
  local before = state_of(s)
  local reads = {}
  for _, reader in ipairs(before.reads) do
    if reader ~= ARGV[2] then reads[#reads + 1] = reader end
  end
  if s.count > 0 and mark >= s.count then reads[#reads + 1] = ARGV[2] end
  s.reads = reads
  if #reads > 0 then
    redis.call('HSET', KEYS[1], 'read_to_end', cjson.encode(reads))
  else
    redis.call('HDEL', KEYS[1], 'read_to_end')
  end
  reads_moved(ns, before, state_of(s))
  emit(KEYS[1], 'session.updated', ARGV[1], s.channel, score, record_item(s))
end
return {redis.call('HGETALL', KEYS[1]), score}
