-- KEYS[1] index
-- ARGV[1] session key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix,
-- ARGV[4] channel key prefix, ARGV[5] operation key prefix, ARGV[6] default title: the
-- same in every call for a namespace (see ingest_start)
-- ARGV[7] the message's fields, joined by NUL bytes (FIELDS_SEPARATOR), ARGV[8]
-- stored message
-- Returns {status, item, score, stored message, metadata or false, title source}, or
-- {-1} (see ingest_run.lua). A message stored records the call's operation id, so that the same call
-- sent again (a retry after a lost reply) answers "stored", not "seen before".
--! include fields.lua
--! include record.lua
--! include title.lua
--! include ingest_run.lua
local session_id, channel, message_id, ms, time_text, title, operation =
  unpack(split_fields(ARGV[7]))
local operation_key = ARGV[5] .. operation
local key = ARGV[1] .. session_id
local replies = {}
local message = {session_id, channel, message_id, ms, time_text, ARGV[8], title}
local s, score, item = ingest_run(key, ARGV[2] .. session_id, ARGV[3] .. session_id,
  KEYS[1], ARGV[4], ARGV[6], {message}, 1, 1, replies)
local status, stored = replies[1], replies[3]
if status < 0 then return {-1} end
if status == 1 then
  stored = ARGV[8]
  redis.call('SET', operation_key, '1', 'PX', ${OPERATION_TTL_MS})
elseif redis.call('EXISTS', operation_key) == 1 then
  status = 1
end
return {status, item or record_item(s), score and string.format('%d', score) or false,
  stored, redis.call('HGET', key, 'metadata'), s.source}
