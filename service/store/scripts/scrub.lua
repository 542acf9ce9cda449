-- KEYS[1] the namespace's events
-- ARGV[1] the position to go on after ('0-0' from the oldest), ARGV[2] how many events
-- to look at, ARGV[3..] session ids
-- Deletes the events of those sessions that carry their content (an erasure: created
-- and updated events hold titles and messages) among the next events after the
-- position; their session.deleted events stay, so a reader behind learns they went.
-- Returns {the last event looked at ('' when none was left), events deleted}.
local erased = {}
for k = 3, #ARGV do erased[ARGV[k]] = true end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local gone = {}
for _, entry in ipairs(entries) do
  local fields, kind, id = entry[2], nil, nil
  for f = 1, #fields, 2 do
    if fields[f] == 'type' then kind = fields[f + 1] end
    if fields[f] == 'id' then id = fields[f + 1] end
  end
  if erased[id] and kind ~= 'session.deleted' then gone[#gone + 1] = entry[1] end
end
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
local last = ''
if #entries > 0 then last = entries[#entries][1] end
return {last, #gone}
