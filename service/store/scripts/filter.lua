-- A page of the list under filters no one sorted set holds (SessionStore._scan_page):
-- several filters at once, pinned=false, unread=true, archived=any, or a reader's
-- unread counts. Each half of the list asked for (not archived, archived, or both)
-- walks its driver, the smallest of its filters' sorted sets (or the whole half), from
-- the cursor on, in the list's order, a chunk at a time; each chunk's sessions are
-- checked against the other filters there. Both halves are merged in the list's order.
-- The walk stops at `limit` matches or after `bound` sessions met, whichever comes
-- first: a short page then has a next cursor that goes on from the last session met.
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
-- Sessions' scores are read only where they are needed: turning a score into a string
-- costs more than finding it, and one half's walk goes by rank alone. Two halves are
-- merged by score, so they read every score.
local merging = #q.halves > 1

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
  -- The walk's ranks: the active sessions are the highest ranks, the others the rest.
  local rank, last_rank = 0, redis.call('ZCARD', half.driver) - 1
  if active ~= nil then
    local n_active = redis.call('ZCOUNT', half.driver, cutoff, '+inf')
    if active then last_rank = n_active - 1 else rank = n_active end
  end
  if q.after then rank = math.max(rank, rank_after(half.driver, q.after[1], q.after[2])) end
  half.rank, half.last_rank = rank, last_rank
  halves[#halves + 1] = half
end

-- Whether each member of `members` fits the half's other filters, read for a whole
-- chunk at once: one ZMSCORE per filter set rather than a ZSCORE per session.
local function fitting(half, members)
  local fits = {}
  for k = 1, #members do fits[k] = true end
  for _, set in ipairs(half.checks) do
    local scores = redis.call('ZMSCORE', set, unpack(members))
    for k = 1, #members do fits[k] = fits[k] and scores[k] ~= false end
  end
  if half.unpinned then
    local scores = redis.call('ZMSCORE', half.unpinned, unpack(members))
    for k = 1, #members do fits[k] = fits[k] and scores[k] == false end
  end
  return fits
end

-- The half's next session {member, score (nil unless merging), whether it fits the
-- other filters, its half}, or nil when the half has no more.
local function head(half)
  if half.at > #half.buffer then
    local stop = math.min(half.rank + CHUNK, half.last_rank + 1) - 1
    if half.rank > stop then return nil end
    local got
    if merging then
      got = redis.call('ZREVRANGE', half.driver, half.rank, stop, 'WITHSCORES')
    else
      got = redis.call('ZREVRANGE', half.driver, half.rank, stop)
    end
    half.rank = stop + 1
    local step = merging and 2 or 1
    local members = {}
    for k = 1, #got, step do members[#members + 1] = got[k] end
    half.buffer, half.at = {}, 1
    if #members == 0 then return nil end
    local fits = fitting(half, members)
    for k = 1, #members do
      half.buffer[k] = {members[k], merging and got[2 * k] or nil, fits[k], half}
    end
  end
  return half.buffer[half.at]
end

local function first_of(a, b)
  local sa, sb = tonumber(a[2]), tonumber(b[2])
  return sa > sb or (sa == sb and bytes_after(a[1], b[1]))
end

local function next_entry()
  local best
  for _, half in ipairs(halves) do
    local entry = head(half)
    if entry and (not best or first_of(entry, best)) then best = entry end
  end
  if best then best[4].at = best[4].at + 1 end
  return best
end

local limit, bound, prefix = tonumber(q.limit), tonumber(q.bound), q.session_prefix
local fields = {'item'}
if q.reader then fields = {'item', 'message_count', q.reader} end
local matched, found, met = {}, 0, 0
local last
while found < limit and met < bound do
  local entry = next_entry()
  if not entry then last = nil break end
  met, last = met + 1, entry
  if entry[3] then
    local f = redis.call('HMGET', prefix .. entry[1], unpack(fields))
    local mark = q.reader and f[3] or ''
    if f[1] and not (q.unread and tonumber(f[2]) <= tonumber(mark ~= '' and mark or '0')) then
      matched[#matched + 1] = {entry, f[1], mark or ''}
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
-- One half's scores, of the matches and of the last session met, read at once.
if not merging and (#matched > 0 or more) then
  local members = {}
  for k, match in ipairs(matched) do members[k] = match[1][1] end
  if more then members[#members + 1] = last[1] end
  local scores = redis.call('ZMSCORE', halves[1].driver, unpack(members))
  for k, match in ipairs(matched) do match[1][2] = scores[k] end
  if more then last[2] = scores[#scores] end
end
local matches = {}
for _, match in ipairs(matched) do
  matches[#matches + 1] = match[1][1]
  matches[#matches + 1] = match[1][2]
  matches[#matches + 1] = match[2]
  matches[#matches + 1] = match[3]
end
local reply = {total, exact and 1 or 0, more and last[2] or '', more and last[1] or '', matches}
local latest, all_active = namespace_version(KEYS[1], KEYS[2], KEYS[3], cutoff)
reply[6], reply[7] = latest, all_active
return reply
