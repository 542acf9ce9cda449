-- KEYS[1] session
-- ARGV[1] session id, ARGV[2] the change as JSON: any of title (its source becomes
-- 'user'), pinned, archived, tags (replacing them), ARGV[3] the new metadata JSON ('-'
-- to keep it, '' to take it away)
-- Returns {the record's fields and values, score, 1 when anything changed else 0}, or an
-- empty table when unknown. A change moves the session between the sorted sets its
-- fields put it in and appends its event; a change to what it is already is none.
--! include record.lua
local s = record_read(KEYS[1])
if not s then return {} end
local ns = namespace_key(KEYS[1], '')
local before = memberships(ns, s)
local was = state_of(s)
local score = redis.call('ZSCORE', before[1][1], ARGV[1]) or '0'
local old_item, old_source = record_item(s), s.source
local change = cjson.decode(ARGV[2])
-- A title a person sets is theirs even when it reads as before: its source changes.
if change.title ~= nil then s.title, s.source = change.title, 'user' end
if change.pinned ~= nil then s.pinned = change.pinned end
if change.archived ~= nil then s.archived = change.archived end
if change.tags ~= nil then s.tags = change.tags end
local changed = 0
if ARGV[3] ~= '-' and ARGV[3] ~= (redis.call('HGET', KEYS[1], 'metadata') or '') then
  if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], 'metadata')
  else
    redis.call('HSET', KEYS[1], 'metadata', ARGV[3])
  end
  changed = 1
end
local item = record_item(s)
if item ~= old_item or s.source ~= old_source then
  record_changed(ns, KEYS[1], ARGV[1], s, before, was, score, item)
  changed = 1
elseif changed == 1 then
  emit(KEYS[1], 'session.updated', ARGV[1], s.channel, score, item)
end
return {redis.call('HGETALL', KEYS[1]), score, changed}
