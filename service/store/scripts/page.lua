-- The page in Lua, for what SORT cannot serve in one round trip: the inactive filter (its
-- first rank is only known inside Redis) and a cursor whose session has moved since the
-- cursor was made. See SessionStore.list_sessions for the pages that need no script.
-- KEYS[1] sorted set to page (index or one channel's), KEYS[2] the namespace's version,
-- KEYS[3] its index, KEYS[4] its archived sessions
-- ARGV[1] the rank the cursor expects its member at, just before the page ('' for none),
-- ARGV[2] cursor member, ARGV[3] cursor score ('' both when paging by offset), ARGV[4]
-- the rest, joined by NUL (FIELDS_SEPARATOR): limit, offset ('' when paging by cursor),
-- active filter ('', '1' active, '0' inactive), active cutoff (epoch ms; scores at or
-- above it are active), session key prefix, and a reader's read mark field (absent for
-- none)
-- Returns -2 when the cursor's member still sits at that rank with its score (the SORT
-- sent along in the same transaction then holds the page), else {total, more, first rank,
-- active count, ids, items, version (version.lua: two values), the items' read marks
-- (false for none) when a read mark field was given}. The check comes first and
-- reads no more than it needs: one rank, whose member and score are compared as the
-- strings Redis answers and the cursor carries (scores are whole milliseconds, which
-- Redis writes in plain digits; a cursor whose score reads otherwise only takes the
-- longer way below); four arguments, not eight (Redis makes a Lua string of each).
--! include fields.lua
--! include rank_after.lua
--! include version.lua
if ARGV[1] ~= '' then
  local at = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[1], 'WITHSCORES')
  if at[1] == ARGV[2] and at[2] == ARGV[3] then return -2 end
end
local limit, offset, active_filter, cutoff, session_prefix, mark_field =
  unpack(split_fields(ARGV[4]))
limit = tonumber(limit)
local n = redis.call('ZCARD', KEYS[1])
local n_active = redis.call('ZCOUNT', KEYS[1], cutoff, '+inf')
local lo, hi = 0, n
if active_filter == '1' then hi = n_active elseif active_filter == '0' then lo = n_active end
local start
if offset ~= '' then
  start = lo + tonumber(offset)
else
  start = rank_after(KEYS[1], ARGV[3], ARGV[2])
  if start < lo then start = lo end
end
local stop = math.min(start + limit, hi) - 1
local latest, all_active = namespace_version(KEYS[2], KEYS[3], KEYS[4], cutoff)
if start > stop then return {hi - lo, 0, start, n_active, {}, {}, latest, all_active, {}} end
local ids = redis.call('ZREVRANGE', KEYS[1], start, stop)
local items, marks = {}, {}
for i, id in ipairs(ids) do
  if mark_field then
    local f = redis.call('HMGET', session_prefix .. id, 'item', mark_field)
    items[i], marks[i] = f[1], f[2]
  else
    items[i] = redis.call('HGET', session_prefix .. id, 'item')
  end
end
local more = 0
if stop + 1 < hi then more = 1 end
return {hi - lo, more, start, n_active, ids, items, latest, all_active, marks}
