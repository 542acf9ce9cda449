-- A namespace's version (SessionStore.version_of): its latest event's id and how many
-- of its sessions, archived or not, are active as of `cutoff`.
local function namespace_version(version_key, index, archived, cutoff)
  return redis.call('GET', version_key) or false,
    redis.call('ZCOUNT', index, cutoff, '+inf') + redis.call('ZCOUNT', archived, cutoff, '+inf')
end
