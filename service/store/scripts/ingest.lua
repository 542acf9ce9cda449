-- KEYS[1] index
-- ARGV[1] session key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix,
-- ARGV[4] operation key prefix, ARGV[5] default title: the same in every call for a
-- namespace (see ingest_start)
-- ARGV[6] the message's fields, joined by NUL bytes (FIELDS_SEPARATOR), ARGV[7]
-- stored message
-- Returns {status, item, score, stored message, metadata or false, title source}, or
-- {-1} (see ingest_run.lua). A message stored records the call's operation id, so that the same call
-- sent again (a retry after a lost reply) answers "stored", not "seen before".
--! include fields.lua
--! include record.lua
--! include title.lua
--! include ingest_run.lua
local session_id, channel, message_id, ms, time_text, title, user, operation =
  unpack(split_fields(ARGV[6]))
local operation_key = ARGV[4] .. operation
local key = ARGV[1] .. session_id
local replies = {}
local message = {session_id, channel, message_id, ms, time_text, ARGV[7], title, user}
local s, score, item = ingest_run(key, ARGV[2] .. session_id, ARGV[3] .. session_id,
  ARGV[5], {message}, 1, 1, replies)
local status, stored = replies[1], replies[3]
if status < 0 then return {-1} end
if status == 1 then
  stored = ARGV[7]
  redis.call('SET', operation_key, '1', 'PX', ${OPERATION_TTL_MS})
elseif redis.call('EXISTS', operation_key) == 1 then
  status = 1
end
return {status, item or record_item(s), score and string.format('%d', score) or false,
  stored, redis.call('HGET', key, 'metadata'), s.source}
