-- The namespace's change feed (SPEC §6) and its version. A write script appends the
-- event of its change itself, so the feed holds every change once, in commit order,
-- and nothing else; the version key holds the latest event's id, the ETag of every
-- read of the namespace. A stream entry reads as it is in redis-cli: type
-- (session.created, session.updated, session.deleted), id and channel of the session,
-- then for created and updated its score (updated_at, epoch ms) and item (its list
-- item's JSON members), and message (the stored message) when one was added.

-- The namespace's key `name`, from the key (or key prefix) of any of its sessions: the
-- namespace's hash tag ends at its first '}'.
local function namespace_key(session_key, name)
  return string.sub(session_key, 1, string.find(session_key, '}', 1, true) + 1) .. name
end

local function emit(session_key, kind, id, channel, score, item, message)
  local entry = {'type', kind, 'id', id, 'channel', channel}
  if item then
    entry[7], entry[8], entry[9], entry[10] = 'score', score, 'item', item
    if message then entry[11], entry[12] = 'message', message end
  end
  local event_id = redis.call('XADD', namespace_key(session_key, 'events'), 'MAXLEN', '~',
    '${EVENTS_RETENTION}', '*', unpack(entry))
  redis.call('SET', namespace_key(session_key, 'version'), event_id)
end
