-- KEYS[1] index, KEYS[2] the namespace's channels, KEYS[3] its tags (sets), KEYS[4] its
-- archived sessions, KEYS[5] its pinned sessions, KEYS[6] its sessions without messages
-- per channel, KEYS[7] the reader's read-through counts per channel (record.lua)
-- ARGV[1] namespace key prefix, ARGV[2] active cutoff (epoch ms; scores at or above it
-- are active), ARGV[3] hours of activity to count (0 for none), ARGV[4] the end of the
-- last of those hours (epoch ms, exclusive), ARGV[5] '1' to count a reader's unread
-- Returns {total, active, archived, pinned, {channel, total, active, unread, ...},
-- {tag, count, ...}, {channel, counts per hour oldest first, ...}}: the sessions not
-- archived but for `archived`; work in the number of channels (times hours) and tags,
-- never in sessions. unread is -1 without a reader.
local ns, cutoff = ARGV[1], ARGV[2]
local hours, last_end = tonumber(ARGV[3]), tonumber(ARGV[4])
local with_reader = ARGV[5] == '1'
local per_channel, activity, per_tag = {}, {}, {}
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local index = ns .. 'channel:' .. channel
  local total = redis.call('ZCARD', index)
  if total > 0 then
    local unread = -1
    if with_reader then
      unread = total - tonumber(redis.call('HGET', KEYS[6], channel) or '0')
        - tonumber(redis.call('HGET', KEYS[7], channel) or '0')
    end
    per_channel[#per_channel + 1] = channel
    per_channel[#per_channel + 1] = total
    per_channel[#per_channel + 1] = redis.call('ZCOUNT', index, cutoff, '+inf')
    per_channel[#per_channel + 1] = unread
    if hours > 0 then
      local counts = {}
      for hour = 1, hours do
        local stop = last_end - (hours - hour) * 3600000
        counts[hour] = redis.call('ZCOUNT', index, stop - 3600000, '(' .. stop)
      end
      activity[#activity + 1] = channel
      activity[#activity + 1] = counts
    end
  end
end
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local n = redis.call('ZCARD', ns .. 'tag:' .. tag)
  if n > 0 then
    per_tag[#per_tag + 1] = tag
    per_tag[#per_tag + 1] = n
  end
end
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[1], cutoff, '+inf'),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), per_channel, per_tag, activity}
