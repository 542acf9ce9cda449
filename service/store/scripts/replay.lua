-- KEYS[1] events (a namespace's stream)
-- ARGV[1] the position to replay after (an event id; '0-0' for every event kept),
-- ARGV[2] how many events at most, ARGV[3] how many bytes of their fields at most (one
-- event at least)
-- Returns {reset, newest id ('' when the stream is empty), entries after the position}.
-- reset is 1 when the position is not one this stream can go on from: older than the
-- oldest event kept (events after it may have been trimmed) or newer than its newest
-- (a stream deleted and begun again); then no entries.
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function before(a, b)
  local a_ms, a_seq = parse(a)
  local b_ms, b_seq = parse(b)
  return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
end

local after = ARGV[1]
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not newest then
  if after == '0-0' then return {0, ''} end
  return {1, ''}
end
newest = newest[1]
if after ~= '0-0' then
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1]
  if before(after, oldest) or before(newest, after) then return {1, newest} end
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. after, '+', 'COUNT', ARGV[2])
local size, most = 0, tonumber(ARGV[3])
for k, entry in ipairs(entries) do
  for _, value in ipairs(entry[2]) do size = size + #value end
  if size > most and k > 1 then
    for cut = #entries, k, -1 do entries[cut] = nil end
    break
  end
end
return {0, newest, entries}
