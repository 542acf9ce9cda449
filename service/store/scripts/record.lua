-- The session record, as service/store/record.py defines it: a hash of readable fields
-- (title, title_source, channel, created_at, updated_at, message_count; pinned and
-- archived ('true' when so), tags (comma-joined), user, metadata, read marks and
-- read_to_end when set) and `item`, the session's list item as JSON members (without its id and
-- activity), kept by every write so that a page reads one field per session.
-- A record in Lua: {title, source, channel, created, updated, count, pinned, archived,
-- tags (a list), user (nil for none), reads (the readers who read it to its end; nil
-- or a list)}.
--! include events.lua
local json_short = {['"'] = '\\"', ['\\'] = '\\\\', ['\8'] = '\\b', ['\9'] = '\\t',
  ['\10'] = '\\n', ['\12'] = '\\f', ['\13'] = '\\r'}

local function json_escape(c)
  local byte = string.byte(c)
  if byte == 127 then return c end
  return json_short[c] or string.format('\\u%04x', byte)
end

-- A string as orjson writes it: only quotes, backslashes and control characters escaped.
local function json_string(text)
  return '"' .. string.gsub(text, '[%c"\\]', json_escape) .. '"'
end

local function record_item(s)
  local tags = ''
  if #s.tags > 0 then tags = '"' .. table.concat(s.tags, '","') .. '"' end
  local item = '"title":' .. json_string(s.title) .. ',"created_at":"' .. s.created
    .. '","updated_at":"' .. s.updated .. '","message_count":'
    .. string.format('%d', s.count) .. ',"channel":"' .. s.channel .. '","pinned":'
    .. tostring(s.pinned) .. ',"archived":' .. tostring(s.archived) .. ',"tags":['
    .. tags .. ']'
  if s.user then item = item .. ',"user":' .. json_string(s.user) end
  return item
end

-- Tags as the hash keeps them: joined by commas, which no tag holds.
local function split_tags(text)
  local tags = {}
  if text then
    for tag in string.gmatch(text, '[^,]+') do tags[#tags + 1] = tag end
  end
  return tags
end

-- A session stored by a release before hashes (a card string, its metadata in a key of
-- its own) moves to its hash when a write first meets it.
local legacy_sources = {['\6'] = 'default', ['\7'] = 'auto', ['\14'] = 'user'}

local function legacy_move(key)
  local card_key = string.gsub(key, ':session:', ':card:', 1)
  local card = redis.call('GET', card_key)
  if not card then return false end
  local b = string.find(card, '\1', 2, true)
  local c = string.find(card, '\2', b, true)
  local d = string.find(card, '\3', c, true)
  local e = string.find(card, '\4', d, true)
  local s = {
    source = legacy_sources[string.sub(card, 1, 1)],
    title = cjson.decode(string.sub(card, 2, b - 1)),
    created = string.sub(card, b + 1, c - 1),
    updated = string.sub(card, c + 1, d - 1),
    count = tonumber(string.sub(card, d + 1, e - 1)),
    channel = string.sub(card, e + 1),
    pinned = false, archived = false, tags = {},
  }
  redis.call('HSET', key, 'title', s.title, 'title_source', s.source, 'channel', s.channel,
    'created_at', s.created, 'updated_at', s.updated,
    'message_count', string.format('%d', s.count), 'item', record_item(s))
  if s.count == 0 then
    redis.call('HINCRBY', namespace_key(key, 'empty'), s.channel, 1)
  end
  local meta_key = string.gsub(key, ':session:', ':meta:', 1)
  local metadata = redis.call('GET', meta_key)
  if metadata then redis.call('HSET', key, 'metadata', metadata) end
  redis.call('DEL', card_key, meta_key)
  return true
end

-- The session at `key`, or nil.
local function record_read(key)
  local f = redis.call('HMGET', key, 'title', 'title_source', 'channel', 'created_at',
    'updated_at', 'message_count', 'pinned', 'archived', 'tags', 'user', 'read_to_end')
  if not f[1] then
    if not legacy_move(key) then return nil end
    return record_read(key)
  end
  return {title = f[1], source = f[2], channel = f[3], created = f[4], updated = f[5],
    count = tonumber(f[6]), pinned = f[7] == 'true', archived = f[8] == 'true',
    tags = split_tags(f[9]), user = f[10] or nil, reads = f[11] and cjson.decode(f[11])}
end

-- Writes the session's fields and its item (`item`, when the caller made it already);
-- returns the item. Pinned, archived, tags and user are written when set; record_clear
-- takes away those a change unset.
local function record_write(key, s, item)
  item = item or record_item(s)
  local fields = {'title', s.title, 'title_source', s.source, 'channel', s.channel,
    'created_at', s.created, 'updated_at', s.updated,
    'message_count', string.format('%d', s.count), 'item', item}
  if s.pinned then fields[#fields + 1] = 'pinned'; fields[#fields + 1] = 'true' end
  if s.archived then fields[#fields + 1] = 'archived'; fields[#fields + 1] = 'true' end
  if #s.tags > 0 then
    fields[#fields + 1] = 'tags'
    fields[#fields + 1] = table.concat(s.tags, ',')
  end
  if s.user then fields[#fields + 1] = 'user'; fields[#fields + 1] = s.user end
  if s.reads and #s.reads > 0 then
    fields[#fields + 1] = 'read_to_end'
    fields[#fields + 1] = cjson.encode(s.reads)
  end
  redis.call('HSET', key, unpack(fields))
  return item
end

local function record_clear(key, s)
  local unset = {}
  if not s.pinned then unset[#unset + 1] = 'pinned' end
  if not s.archived then unset[#unset + 1] = 'archived' end
  if #s.tags == 0 then unset[#unset + 1] = 'tags' end
  if not s.reads or #s.reads == 0 then unset[#unset + 1] = 'read_to_end' end
  if #unset > 0 then redis.call('HDEL', key, unpack(unset)) end
end

-- The sorted sets that list a session, each scored by its updated_at (keys.py names
-- them): the index and its channel's, pinned, tag and user sets, all split in two: an
-- archived session is in the archived ones (the list leaves it out unless asked for).
-- Each is {key, registry (the set naming the channel or tag) or nil, name}.
local function memberships(ns, s)
  local part, base = ns, ns .. 'index'
  if s.archived then part, base = ns .. 'archived:', ns .. 'archived' end
  local sets = {{base}, {part .. 'channel:' .. s.channel, ns .. 'channels', s.channel}}
  if s.pinned then sets[#sets + 1] = {part .. 'pinned'} end
  for _, tag in ipairs(s.tags) do
    sets[#sets + 1] = {part .. 'tag:' .. tag, ns .. 'tags', tag}
  end
  if s.user then sets[#sets + 1] = {part .. 'user:' .. s.user} end
  return sets
end

-- Moves a session `id` from the sorted sets of `before` to those of `after` (each a
-- memberships list; {} for none), scoring them `score` (a string of epoch ms), which
-- sets it anew in every set when `moved`, and keeps the channels and tags sets naming
-- those that list sessions. `ns` is the namespace's key prefix.
local function reindex(ns, id, before, after, score, moved)
  local stays = {}
  for _, set in ipairs(before) do stays[set[1]] = false end
  for _, set in ipairs(after) do
    if stays[set[1]] == nil then
      redis.call('ZADD', set[1], score, id)
      if set[2] then redis.call('SADD', set[2], set[3]) end
    elseif moved then
      redis.call('ZADD', set[1], score, id)
    end
    stays[set[1]] = true
  end
  for _, set in ipairs(before) do
    if not stays[set[1]] then
      redis.call('ZREM', set[1], id)
      -- A name leaves its registry when neither half lists a session any more.
      if set[2] then
        local kind = string.sub(set[2], #ns + 1, -2)
        if redis.call('EXISTS', ns .. kind .. ':' .. set[3],
            ns .. 'archived:' .. kind .. ':' .. set[3]) == 0 then
          redis.call('SREM', set[2], set[3])
        end
      end
    end
  end
end

-- Readers (SPEC §7). A reader's read mark is the session's field read:<reader>: the
-- messages that reader has read. Counts answer the sessions (not archived) with unread
-- messages per channel from as many numbers as there are channels: those of the
-- channel, less those without messages (the hash `empty`, per channel), less those the
-- reader has read to the end (the hash read-through:<reader>, per channel). The
-- session's field read_to_end (a JSON array) names the readers whose mark reaches its
-- count, so that a write moves those counts without reading every reader's mark: the
-- work of a message grows with the readers who read that session to its end, not with
-- all readers. A state is {count, archived, channel, reads} of a session, or nil.
local function state_of(s)
  if not s then return nil end
  return {count = s.count, archived = s.archived, channel = s.channel, reads = s.reads or {}}
end

-- The readers whose read-through count holds a session in `state`: those who read it to
-- its end, while it is listed (not archived) and has messages.
local function counted_readers(state)
  if state == nil or state.archived or state.count == 0 then return {} end
  return state.reads
end

local function empty(state)
  return state ~= nil and not state.archived and state.count == 0
end

-- Moves the empty and read-through counts from the session's state `before` to `after`.
local function reads_moved(ns, before, after)
  if empty(before) ~= empty(after) then
    local state = empty(after) and after or before
    redis.call('HINCRBY', ns .. 'empty', state.channel, empty(after) and 1 or -1)
  end
  local was, is = {}, {}
  for _, reader in ipairs(counted_readers(before)) do was[reader] = true end
  for _, reader in ipairs(counted_readers(after)) do is[reader] = true end
  for _, reader in ipairs(counted_readers(before)) do
    if not is[reader] then
      redis.call('HINCRBY', ns .. 'read-through:' .. reader, before.channel, -1)
    end
  end
  for _, reader in ipairs(counted_readers(after)) do
    if not was[reader] then
      redis.call('HINCRBY', ns .. 'read-through:' .. reader, after.channel, 1)
    end
  end
end

-- Once messages were added to `s`: keeps in `s.reads` the readers whose marks still
-- reach its count, and takes the field away when none is left (record_write writes it
-- when some are).
local function reads_after_messages(key, s)
  if not s.reads or #s.reads == 0 then return end
  local fields = {}
  for i, reader in ipairs(s.reads) do fields[i] = 'read:' .. reader end
  local marks = redis.call('HMGET', key, unpack(fields))
  local kept = {}
  for i, reader in ipairs(s.reads) do
    if marks[i] and tonumber(marks[i]) >= s.count then kept[#kept + 1] = reader end
  end
  s.reads = kept
  if #kept == 0 then redis.call('HDEL', key, 'read_to_end') end
end

-- Writes a change already made to `s` (`before`: its memberships, `was`: its state,
-- both from before the change; `item`: its item now, if made already): its record,
-- sorted sets and counts, and appends its event. Returns the item.
local function record_changed(ns, key, id, s, before, was, score, item)
  item = record_write(key, s, item)
  record_clear(key, s)
  reindex(ns, id, before, memberships(ns, s), score, false)
  reads_moved(ns, was, state_of(s))
  emit(key, 'session.updated', id, s.channel, score, item)
  return item
end

-- Deletes session `id` (record `s` at `key`): its record, messages, seen ids, sorted
-- sets and counts, and appends its event.
local function record_delete(ns, key, id, s)
  reindex(ns, id, memberships(ns, s), {}, '0', false)
  reads_moved(ns, state_of(s), nil)
  redis.call('UNLINK', key, ns .. 'messages:' .. id, ns .. 'seen:' .. id)
  emit(key, 'session.deleted', id, s.channel)
end
