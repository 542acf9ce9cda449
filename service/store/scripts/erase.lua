-- KEYS[1] the person's sessions not archived, KEYS[2] those archived (record.lua's
-- user sets)
-- ARGV[1] session key prefix, ARGV[2] how many sessions at most
-- Deletes up to that many of the person's sessions, as DELETE does, each with its
-- event. Returns their ids; fewer than asked means none is left.
--! include record.lua
local ns = namespace_key(ARGV[1], '')
local most = tonumber(ARGV[2])
local deleted = {}
for _, set in ipairs(KEYS) do
  if #deleted < most then
    for _, id in ipairs(redis.call('ZRANGE', set, 0, most - #deleted - 1)) do
      local key = ARGV[1] .. id
      local s = record_read(key)
      if s then
        record_delete(ns, key, id, s)
      else
        -- An entry without its session (drift check reports) goes, so the loop ends.
        redis.call('ZREM', set, id)
      end
      deleted[#deleted + 1] = id
    end
  end
end
return deleted
