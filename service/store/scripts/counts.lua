-- KEYS[1] index, KEYS[2] the namespace's channels (a set)
-- ARGV[1] channel key prefix, ARGV[2] active cutoff (epoch ms; scores at or above it
-- are active), ARGV[3] hours of activity to count (0 for none), ARGV[4] the end of the
-- last of those hours (epoch ms, exclusive)
-- Returns {total, active, {channel, total, active, ...}, {channel, counts per hour
-- oldest first, ...}}: work in the number of channels (and hours), never in sessions.
local cutoff = ARGV[2]
local hours, last_end = tonumber(ARGV[3]), tonumber(ARGV[4])
local per_channel, activity = {}, {}
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local index = ARGV[1] .. channel
  local total = redis.call('ZCARD', index)
  if total > 0 then
    per_channel[#per_channel + 1] = channel
    per_channel[#per_channel + 1] = total
    per_channel[#per_channel + 1] = redis.call('ZCOUNT', index, cutoff, '+inf')
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
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[1], cutoff, '+inf'),
  per_channel, activity}
