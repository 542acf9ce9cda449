-- KEYS[1] index
-- ARGV[1] session key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix,
-- ARGV[4] default title, ARGV[5] the messages as one JSON array of messages
-- (see ingest_run.lua), ARGV[6] the call's operation key
-- Returns per message: status, message count, and the stored message when it was seen
-- before (else ''). One call writes many messages, and they travel as one argument.
-- Consecutive messages of one session go to ingest_run as one run. The operation key
-- keeps, per message, the session's message count just after this call stored it (0 if
-- it did not), so that the same call sent again answers exactly as the first did.
--! include record.lua
--! include title.lua
--! include ingest_run.lua
local replies = {}
local messages = cjson.decode(ARGV[5])
local first = 1
for k = 1, #messages do
  local id = messages[first][1]
  if k == #messages or messages[k + 1][1] ~= id then
    ingest_run(ARGV[1] .. id, ARGV[2] .. id, ARGV[3] .. id, ARGV[4], messages, first, k,
      replies)
    first = k + 1
  end
end
local counts, any_stored = {}, false
for k = 1, #messages do
  local stored_here = replies[3 * k - 2] == 1
  counts[k] = stored_here and replies[3 * k - 1] or 0
  any_stored = any_stored or stored_here
end
if any_stored then
  redis.call('SET', ARGV[6], cjson.encode(counts), 'PX', ${OPERATION_TTL_MS})
else
  local earlier = redis.call('GET', ARGV[6])
  if earlier then
    for k, count in ipairs(cjson.decode(earlier)) do
      if count > 0 then
        replies[3 * k - 2] = 1
        replies[3 * k - 1] = count
        replies[3 * k] = ''
      end
    end
  end
end
return replies
