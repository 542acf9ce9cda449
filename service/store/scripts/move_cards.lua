-- KEYS[1] index or archived sessions, KEYS[2] the namespace's channels (a set), KEYS[3]
-- its readers (a set)
-- ARGV[1] session key prefix, ARGV[2] first rank, ARGV[3] how many ranks
-- Brings the sessions at those ranks to this release's record: moves those still cards
-- (a release before hashes) to their hashes, writes anew an item without the members
-- 0.3 added (pinned, archived, tags), names their channels in the namespace's channels
-- (releases before 0.3 kept none), and names in read_to_end the readers whose marks
-- reach the count (0.4 added it). Returns {sessions moved, ranks read}.
--! include record.lua
local ids = redis.call('ZRANGE', KEYS[1], ARGV[2], tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local moved = 0
local channels = {}
local readers = redis.call('SMEMBERS', KEYS[3])
local mark_fields = {}
for i, reader in ipairs(readers) do mark_fields[i] = 'read:' .. reader end
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 0 and legacy_move(key) then moved = moved + 1 end
  local s = record_read(key)
  if s then
    channels[s.channel] = true
    if #readers > 0 and s.count > 0 then
      local marks = redis.call('HMGET', key, unpack(mark_fields))
      local reads = {}
      for i, reader in ipairs(readers) do
        if marks[i] and tonumber(marks[i]) >= s.count then reads[#reads + 1] = reader end
      end
      if #reads > 0 then redis.call('HSET', key, 'read_to_end', cjson.encode(reads)) end
    end
    local item = redis.call('HGET', key, 'item')
    -- A record no write of this release met yet: counts learn it as they are kept now.
    if not string.find(item, '","pinned":', 1, true) then
      record_write(key, s)
      if s.count == 0 then
        redis.call('HINCRBY', namespace_key(key, 'empty'), s.channel, 1)
      end
    end
  end
end
for channel in pairs(channels) do redis.call('SADD', KEYS[2], channel) end
return {moved, #ids}
