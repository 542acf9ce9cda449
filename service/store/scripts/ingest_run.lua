-- The one ingest rule, shared by INGEST (one message) and INGEST_MANY (a batch).
-- ingest_run applies messages[first..last], all of one session, in order: the same
-- outcome as one call per message, but the run reads the record, its score and its seen
-- message ids once, and writes the record, the sorted sets, the messages and the seen
-- ids once. A message is {session id, channel ('' if not sent), message id, time
-- ms (a string), time RFC 3339, stored message, auto title argument (auto_title_arg),
-- user ('' if not sent)}.
-- Appends per message to replies: status (1 stored, 0 message id seen before: nothing
-- changes, -1 unknown session and no channel), the message count after it, and the
-- stored message when it was seen before (else ''). Returns the session (a record, nil
-- if none), its score and its item (nil when nothing was written). Each message stored
-- appends its event (events.lua), with the session as that message left it.
local function ingest_run(key, list, seen, default_title, messages, first, last, replies)
  local id = messages[first][1]
  local ns = namespace_key(key, '')
  local s = record_read(key)
  local was = state_of(s)
  local score, score_text, before
  if s then
    before = memberships(ns, s)
    score = tonumber(redis.call('ZSCORE', before[1][1], id))
  end
  -- Seen ids matter once the session exists: a lone message of a new session needs none.
  local positions = {}
  if s or last > first then
    local message_ids = {}
    for k = first, last do message_ids[#message_ids + 1] = messages[k][3] end
    positions = redis.call('HMGET', seen, unpack(message_ids))
  end
  local pushed, seen_pairs, pending = {}, {}, {}
  -- The item after the latest message stored: the record's once the run is written.
  local item
  for k = first, last do
    local m = messages[k]
    local message_id = m[3]
    local position = positions[k - first + 1]
    if s and (position or pending[message_id]) then
      local stored = pending[message_id] or redis.call('LINDEX', list, position)
      replies[#replies + 1] = 0
      replies[#replies + 1] = s.count
      replies[#replies + 1] = stored
    elseif not s and m[2] == '' then
      replies[#replies + 1] = -1
      replies[#replies + 1] = 0
      replies[#replies + 1] = ''
    else
      local kind = 'session.updated'
      if not s then
        s = {source = 'default', title = default_title, created = m[5], updated = m[5],
             count = 0, channel = m[2], pinned = false, archived = false, tags = {}}
        kind = 'session.created'
      end
      local ts = tonumber(m[4])
      if score == nil or ts > score then
        score, score_text = ts, m[4]
        s.updated = m[5]
      end
      s.count = s.count + 1
      -- A session keeps the first person it is given.
      if not s.user and m[8] ~= '' then s.user = m[8] end
      if s.source == 'default' and m[7] ~= '' then
        local title = message_title(m[7], m[6])
        if title ~= '' then
          s.title = title
          s.source = 'auto'
        end
      end
      item = record_item(s)
      emit(key, kind, id, s.channel, string.format('%d', score), item, m[6])
      pushed[#pushed + 1] = m[6]
      seen_pairs[#seen_pairs + 1] = message_id
      seen_pairs[#seen_pairs + 1] = #pushed
      pending[message_id] = m[6]
      replies[#replies + 1] = 1
      replies[#replies + 1] = s.count
      replies[#replies + 1] = ''
    end
  end
  if #pushed == 0 then return s, score, nil end
  local before_count = redis.call('RPUSH', list, unpack(pushed)) - #pushed
  for n = 2, #seen_pairs, 2 do seen_pairs[n] = before_count + seen_pairs[n] - 1 end
  redis.call('HSET', seen, unpack(seen_pairs))
  reads_after_messages(key, s)
  record_write(key, s, item)
  reindex(ns, id, before or {}, memberships(ns, s), string.format('%d', score),
    score_text ~= nil)
  reads_moved(ns, was, state_of(s))
  return s, score, item
end
