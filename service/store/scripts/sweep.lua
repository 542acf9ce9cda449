-- KEYS[1] one half of the list (the index or the archived sessions)
-- ARGV[1] session key prefix, ARGV[2] the cutoff (epoch ms: sessions last active
-- before it go), ARGV[3] how many of the oldest sessions to pass over (those kept by
-- earlier steps), ARGV[4] how many sessions to look at, ARGV[5] '1' for a dry run
-- Deletes, as DELETE does, the sessions looked at that are not pinned (a dry run only
-- names them). Returns {the ids deleted (or that would be), how many were looked at}.
--! include record.lua
local ns = namespace_key(ARGV[1], '')
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', ARGV[3],
  ARGV[4])
local gone = {}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local s = record_read(key)
  if s and not s.pinned then
    gone[#gone + 1] = id
    if ARGV[5] ~= '1' then record_delete(ns, key, id, s) end
  end
end
return {gone, #ids}
