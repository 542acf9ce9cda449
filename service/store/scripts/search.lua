-- KEYS[1] index
-- ARGV[1] folded query, ARGV[2] most hits, ARGV[3] most sessions to scan, ARGV[4] most
-- messages to scan, ARGV[5] most bytes of stored messages to read, ARGV[6] messages key
-- prefix, ARGV[7] session key prefix, ARGV[8] '1' when the query reads the same inside a
-- JSON string (no quote, backslash or control character), so a stored message that does
-- not hold it can be passed over undecoded, ARGV[9] score and ARGV[10] member of the
-- session to go on from ('' both: from the most recent), ARGV[11] how many of that
-- session's newest messages were scanned already (0: go on after that session), ARGV[12]
-- '1' when the query holds characters beyond ASCII
-- Walks sessions from the most recent, each session's messages from the newest, and
-- stops at the first bound reached, in a session if need be. Returns {1 when every
-- session was scanned else 0, score, member and scanned messages of where to go on,
-- then per hit: id, score, item, matching stored message or ''}.
--! include rank_after.lua
${FOLD_TABLE}
-- An ASCII query can only match ASCII letters, whose case string.lower folds: the
-- table walk over two-byte characters is for queries beyond ASCII.
local wide = ARGV[12] == '1'
local function fold(text)
  if not wide then return string.lower(text) end
  return (string.gsub(string.lower(text), '[\195-\211][\128-\191]', FOLD))
end
local query, want = ARGV[1], tonumber(ARGV[2])
local max_sessions, max_messages, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local SLICE = 20
local rank, skip = 0, 0
if ARGV[10] ~= '' then
  local at = redis.call('ZREVRANK', KEYS[1], ARGV[10])
  skip = tonumber(ARGV[11])
  if skip > 0 and at and tonumber(redis.call('ZSCORE', KEYS[1], ARGV[10])) == tonumber(ARGV[9]) then
    rank = at
  else
    skip = 0
    rank = rank_after(KEYS[1], ARGV[9], ARGV[10])
  end
end
local sessions, messages, bytes, found = 0, 0, 0, 0
local function spent()
  return found >= want or sessions >= max_sessions or messages >= max_messages
    or bytes >= max_bytes
end
local hits = {0, '', '', 0}
while not spent() do
  local ranked = redis.call('ZREVRANGE', KEYS[1], rank, rank + 19, 'WITHSCORES')
  if #ranked == 0 then
    hits[1] = 1
    break
  end
  for i = 1, #ranked, 2 do
    if spent() then break end
    local id, score = ranked[i], ranked[i + 1]
    local title, item = unpack(redis.call('HMGET', ARGV[7] .. id, 'title', 'item'))
    local read_here, done, match = skip, title == false, nil
    skip = 0
    sessions = sessions + 1
    -- Newest first, a slice at a time, so that large messages cannot overrun the bounds.
    while not done and not match and messages < max_messages and bytes < max_bytes do
      local take = math.min(SLICE, max_messages - messages)
      local slice = redis.call('LRANGE', ARGV[6] .. id, -(read_here + take), -(read_here + 1))
      done = #slice < take
      for j = #slice, 1, -1 do
        local stored = slice[j]
        messages, bytes, read_here = messages + 1, bytes + #stored, read_here + 1
        if ARGV[8] ~= '1' or string.find(fold(stored), query, 1, true) then
          if string.find(fold(cjson.decode(stored)[3]), query, 1, true) then
            match = stored
            break
          end
        end
        if bytes >= max_bytes then
          done = done and j == 1
          break
        end
      end
    end
    local title_hit = false
    if title and done and not match then
      title_hit = string.find(fold(title), query, 1, true) ~= nil
    end
    if match or title_hit then
      found = found + 1
      hits[#hits + 1] = id
      hits[#hits + 1] = score
      hits[#hits + 1] = item
      hits[#hits + 1] = match or ''
    end
    hits[2], hits[3], hits[4] = score, id, (done or match) and 0 or read_here
    if not (done or match) then break end
    rank = rank + 1
  end
end
return hits
