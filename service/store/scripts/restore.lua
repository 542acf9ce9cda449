-- KEYS[1] index
-- ARGV[1] session key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix,
-- ARGV[4] its organisation as JSON {pinned, archived, tags, user (or none)}
-- ARGV[5..12] the session as restored: id, title, title source, channel, created_at and
-- updated_at (RFC 3339), updated_at in epoch ms, metadata JSON ('' for none)
-- ARGV[13], ARGV[14] the latest time of this call's messages, in epoch ms and RFC 3339
-- ('' when it has none)
-- ARGV[15..] its messages, two arguments each: message id and stored message
-- (record.stored_message), in arrival order
-- Creates the session with these fields when it does not exist, then appends the
-- messages whose ids it has not seen, keeping the list and the seen hash as ingest does.
-- A session that exists keeps its title, channel, created_at, metadata and
-- organisation; its
-- updated_at (and score) becomes the latest of its own, the given one and the appended
-- messages' times (a session's updated_at is never before a message it stores, so the
-- latest time of the call's messages stands for the latest of those appended). Nothing
-- is written when nothing changes, so a second run is a no-op. A call that writes
-- appends one event (without a message: an import appends many at once).
-- Returns {1 if this call created the session else 0, messages appended, messages seen
-- before}.
--! include record.lua
local id = ARGV[5]
local key, list, seen = ARGV[1] .. id, ARGV[2] .. id, ARGV[3] .. id
local given_ms = tonumber(ARGV[11])
local ns = namespace_key(key, '')
local s = record_read(key)
local was = state_of(s)
local created, write = 0, false
local score, score_text, before
if s then
  before = memberships(ns, s)
  score = tonumber(redis.call('ZSCORE', before[1][1], id))
  if score == nil or given_ms > score then
    score, score_text, s.updated, write = given_ms, ARGV[11], ARGV[10], true
  end
else
  local given = cjson.decode(ARGV[4])
  s = {title = ARGV[6], source = ARGV[7], channel = ARGV[8], created = ARGV[9],
       updated = ARGV[10], count = 0, pinned = given.pinned, archived = given.archived,
       tags = given.tags}
  if given.user ~= cjson.null then s.user = given.user end
  score, score_text, created, write = given_ms, ARGV[11], 1, true
end
local n = (#ARGV - 14) / 2
local positions = {}
if n > 0 then
  local message_ids = {}
  for k = 1, n do message_ids[k] = ARGV[13 + 2 * k] end
  positions = redis.call('HMGET', seen, unpack(message_ids))
end
local pushed, seen_pairs, pending, seen_before = {}, {}, {}, 0
for k = 1, n do
  local message_id = ARGV[13 + 2 * k]
  if positions[k] or pending[message_id] then
    seen_before = seen_before + 1
  else
    pending[message_id] = true
    pushed[#pushed + 1] = ARGV[14 + 2 * k]
    seen_pairs[#seen_pairs + 1] = message_id
    seen_pairs[#seen_pairs + 1] = #pushed
  end
end
if #pushed > 0 then
  local latest = tonumber(ARGV[13])
  if latest > score then
    score, score_text, s.updated = latest, ARGV[13], ARGV[14]
  end
  local before = redis.call('RPUSH', list, unpack(pushed)) - #pushed
  for m = 2, #seen_pairs, 2 do seen_pairs[m] = before + seen_pairs[m] - 1 end
  redis.call('HSET', seen, unpack(seen_pairs))
  s.count = s.count + #pushed
  write = true
end
if write then
  reads_after_messages(key, s)
  local item = record_write(key, s)
  if created == 1 and ARGV[12] ~= '' then redis.call('HSET', key, 'metadata', ARGV[12]) end
  reindex(ns, id, before or {}, memberships(ns, s), string.format('%d', score),
    score_text ~= nil)
  reads_moved(ns, was, state_of(s))
  emit(key, created == 1 and 'session.created' or 'session.updated', id, s.channel,
    string.format('%d', score), item)
end
return {created, #pushed, seen_before}
