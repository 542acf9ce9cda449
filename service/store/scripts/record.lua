-- The session record, as service/store/record.py defines it: a hash of readable fields
-- (title, title_source, channel, created_at, updated_at, message_count, and metadata
-- when set) and `item`, the session's list item as JSON members (without its id and
-- activity), kept by every write so that a page reads one field per session.
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
  return '"title":' .. json_string(s.title) .. ',"created_at":"' .. s.created
    .. '","updated_at":"' .. s.updated .. '","message_count":'
    .. string.format('%d', s.count) .. ',"channel":"' .. s.channel .. '"'
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
  }
  redis.call('HSET', key, 'title', s.title, 'title_source', s.source, 'channel', s.channel,
    'created_at', s.created, 'updated_at', s.updated,
    'message_count', string.format('%d', s.count), 'item', record_item(s))
  local meta_key = string.gsub(key, ':session:', ':meta:', 1)
  local metadata = redis.call('GET', meta_key)
  if metadata then redis.call('HSET', key, 'metadata', metadata) end
  redis.call('DEL', card_key, meta_key)
  return true
end

-- The session at `key`, or nil: {title, source, channel, created, updated, count}.
local function record_read(key)
  local f = redis.call('HMGET', key, 'title', 'title_source', 'channel', 'created_at',
    'updated_at', 'message_count')
  if not f[1] then
    if not legacy_move(key) then return nil end
    return record_read(key)
  end
  return {title = f[1], source = f[2], channel = f[3], created = f[4], updated = f[5],
    count = tonumber(f[6])}
end

-- Writes the session's fields and its item; returns the item.
local function record_write(key, s)
  local item = record_item(s)
  redis.call('HSET', key, 'title', s.title, 'title_source', s.source, 'channel', s.channel,
    'created_at', s.created, 'updated_at', s.updated,
    'message_count', string.format('%d', s.count), 'item', item)
  return item
end
