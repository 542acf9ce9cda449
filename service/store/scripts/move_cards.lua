-- KEYS[1] index, KEYS[2] the namespace's channels (a set)
-- ARGV[1] session key prefix, ARGV[2] first rank, ARGV[3] how many ranks
-- Brings the sessions at those ranks to this release's record: moves those still cards
-- (a release before hashes) to their hashes, writes anew an item without the members
-- 0.3 added (pinned, archived, tags), and names their channels in the namespace's
-- channels (releases before 0.3 kept none). Returns {sessions moved, ranks read}.
--! include record.lua
local ids = redis.call('ZRANGE', KEYS[1], ARGV[2], tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local moved = 0
local channels = {}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 0 and legacy_move(key) then moved = moved + 1 end
  local s = record_read(key)
  if s then
    channels[s.channel] = true
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
