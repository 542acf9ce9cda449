-- KEYS[1] the namespace's events
-- ARGV[1] the position to go on after ('0-0' from the oldest), ARGV[2] how many events
-- to look at, ARGV[3..] session ids
-- Deletes the events of those sessions (an erasure: events carry titles and messages)
-- among the next events after the position. Returns {the last event looked at ('' when
-- none was left), events deleted}.
local erased = {}
for k = 3, #ARGV do erased[ARGV[k]] = true end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local gone = {}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for f = 1, #fields, 2 do
    if fields[f] == 'id' then
      if erased[fields[f + 1]] then gone[#gone + 1] = entry[1] end
      break
    end
  end
end
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
local last = ''
if #entries > 0 then last = entries[#entries][1] end
return {last, #gone}
