-- A page of the list under filters no one sorted set holds (SessionStore._scan_page):
-- several filters at once, pinned=false, unread=true, archived=any, or a reader's
-- unread counts. Each half of the list asked for (not archived, archived, or both)
-- walks its driver, the smallest of its filters' sorted sets (or the whole half), from
-- the cursor on, in the list's order; each session met is checked against the other
-- filters there. Both halves are merged in the list's order. The walk stops at `limit`
-- matches or after `bound` sessions met, whichever comes first: a short page then has a
-- next cursor that goes on from the last session met.
-- KEYS[1] the namespace's version, KEYS[2] its index, KEYS[3] its archived sessions
-- ARGV[1] the query as JSON: halves [{sets: the filters' sorted sets in this half,
-- base: the half's whole set, unpinned: its pinned set when pinned=false}], reader (the
-- read mark's field, or absent), unread (true: only sessions with unread messages),
-- active (absent, true or false), cutoff (epoch ms), after ([score, member], or
-- absent), limit, bound, session_prefix
-- Returns {total, 1 when total is exact else 0, next score and member ('' both when the
-- walk reached the end), per match: id, score, item, read mark or '', then the
-- version (version.lua: two values)}.
--! include rank_after.lua
--! include version.lua
local q = cjson.decode(ARGV[1])
local CHUNK = 50
local active, cutoff = q.active, tonumber(q.cutoff)

local function count(set)
  if active == true then return redis.call('ZCOUNT', set, cutoff, '+inf') end
  if active == false then return redis.call('ZCOUNT', set, '-inf', '(' .. cutoff) end
  return redis.call('ZCARD', set)
end

local total, exact = 0, q.unread ~= true
local halves = {}
for _, given in ipairs(q.halves) do
  local half = {driver = given.base, checks = {}, unpinned = given.unpinned, buffer = {},
    at = 1}
  if #given.sets > 0 then
    local smallest
    for _, set in ipairs(given.sets) do
      local n = redis.call('ZCARD', set)
      if not smallest or n < smallest then smallest, half.driver = n, set end
    end
    for _, set in ipairs(given.sets) do
      if set ~= half.driver then half.checks[#half.checks + 1] = set end
    end
  end
  local n = count(half.driver)
  if #half.checks > 0 then exact = false end
  if half.unpinned then
    if half.driver == given.base then n = n - count(half.unpinned) else exact = false end
  end
  total = total + n
  local rank = 0
  if q.after then rank = rank_after(half.driver, q.after[1], q.after[2]) end
  if active == false then
    rank = math.max(rank, redis.call('ZCOUNT', half.driver, cutoff, '+inf'))
  end
  half.rank = rank
  halves[#halves + 1] = half
end

-- The half's next session {member, score}, or nil when it has no more.
local function head(half)
  if half.at > #half.buffer then
    if half.done then return nil end
    local got = redis.call('ZREVRANGE', half.driver, half.rank, half.rank + CHUNK - 1,
      'WITHSCORES')
    half.rank = half.rank + CHUNK
    half.buffer, half.at = {}, 1
    for k = 1, #got, 2 do half.buffer[#half.buffer + 1] = {got[k], got[k + 1]} end
    if #half.buffer < CHUNK then half.done = true end
    if #half.buffer == 0 then return nil end
  end
  local entry = half.buffer[half.at]
  if active == true and tonumber(entry[2]) < cutoff then
    half.done, half.buffer = true, {}
    return nil
  end
  return entry
end

local function first_of(a, b)
  local sa, sb = tonumber(a[2]), tonumber(b[2])
  return sa > sb or (sa == sb and bytes_after(a[1], b[1]))
end

local function next_entry()
  local best, best_half
  for _, half in ipairs(halves) do
    local entry = head(half)
    if entry and (not best or first_of(entry, best)) then best, best_half = entry, half end
  end
  if best then best_half.at = best_half.at + 1 end
  return best, best_half
end

local limit, bound, prefix = tonumber(q.limit), tonumber(q.bound), q.session_prefix
local matches, found, met = {}, 0, 0
local last
while found < limit and met < bound do
  local entry, half = next_entry()
  if not entry then last = nil break end
  met, last = met + 1, entry
  local id = entry[1]
  local fits = true
  for _, set in ipairs(half.checks) do
    if not redis.call('ZSCORE', set, id) then fits = false break end
  end
  if fits and half.unpinned and redis.call('ZSCORE', half.unpinned, id) then fits = false end
  if fits then
    local f = redis.call('HMGET', prefix .. id, 'item', 'message_count', q.reader or 'item')
    local mark = q.reader and f[3] or ''
    if q.unread and tonumber(f[2]) <= tonumber(mark ~= '' and mark or '0') then fits = false end
    if fits and f[1] then
      matches[#matches + 1] = id
      matches[#matches + 1] = entry[2]
      matches[#matches + 1] = f[1]
      matches[#matches + 1] = mark or ''
      found = found + 1
    end
  end
end
-- Whether anything is left after the last session met: without, the page is the last.
local more = last ~= nil
if more then
  more = false
  for _, half in ipairs(halves) do
    if head(half) then more = true end
  end
end
local reply = {total, exact and 1 or 0, more and last[2] or '', more and last[1] or '', matches}
local latest, all_active = namespace_version(KEYS[1], KEYS[2], KEYS[3], cutoff)
reply[6], reply[7] = latest, all_active
return reply
