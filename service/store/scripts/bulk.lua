-- KEYS[1] the namespace's index (the call's slot)
-- ARGV[1] action (archive, unarchive, pin, unpin, tag, untag, delete), ARGV[2] the tag
-- ('' but for tag and untag), ARGV[3] '1' for a dry run (nothing written), ARGV[4]
-- session key prefix, ARGV[5..] session ids
-- Each session's change is its own, as PATCH or DELETE makes it, with its event; a
-- session the action would not change is matched, not changed.
-- Returns {matched, changed, the ids of sessions that do not exist}.
--! include record.lua
local action, tag, dry = ARGV[1], ARGV[2], ARGV[3] == '1'
local ns = namespace_key(ARGV[4], '')
local matched, changed, missing = 0, 0, {}

-- Makes the action's change to `s`; whether it changed anything.
local function act(s)
  if action == 'archive' or action == 'unarchive' then
    local want = action == 'archive'
    if s.archived == want then return false end
    s.archived = want
  elseif action == 'pin' or action == 'unpin' then
    local want = action == 'pin'
    if s.pinned == want then return false end
    s.pinned = want
  elseif action == 'tag' then
    for _, t in ipairs(s.tags) do if t == tag then return false end end
    if #s.tags >= ${MAX_TAGS} then return false end
    s.tags[#s.tags + 1] = tag
  elseif action == 'untag' then
    local kept = {}
    for _, t in ipairs(s.tags) do if t ~= tag then kept[#kept + 1] = t end end
    if #kept == #s.tags then return false end
    s.tags = kept
  end
  return true
end

for k = 5, #ARGV do
  local id = ARGV[k]
  local key = ARGV[4] .. id
  local s = record_read(key)
  if not s then
    missing[#missing + 1] = id
  else
    matched = matched + 1
    if action == 'delete' then
      changed = changed + 1
      if not dry then record_delete(ns, key, id, s) end
    else
      local before, was = memberships(ns, s), state_of(s)
      if act(s) then
        changed = changed + 1
        if not dry then
          local score = redis.call('ZSCORE', before[1][1], id) or '0'
          record_changed(ns, key, id, s, before, was, score)
        end
      end
    end
  end
end
return {matched, changed, missing}
