-- KEYS[1] index
-- ARGV[1] card key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix, ARGV[4]
-- meta key prefix, ARGV[5] channel key prefix, ARGV[6] operation key prefix, ARGV[7]
-- default title as JSON: the same in every call for a namespace (see ingest_start)
-- ARGV[8] the message's fields, joined by NUL bytes (FIELDS_SEPARATOR), ARGV[9]
-- stored message
-- Returns {status, card, score, stored message, metadata or false}, or {-1} (see
-- _LUA_INGEST). A message stored records the call's operation id, so that the same call
-- sent again (a retry after a lost reply) answers "stored", not "seen before".
--! include fields.lua
--! include card.lua
--! include title.lua
--! include ingest_run.lua
local session_id, channel, message_id, ms, time_text, title, operation =
  unpack(split_fields(ARGV[8]))
local operation_key = ARGV[6] .. operation
local replies = {}
local message = {session_id, channel, message_id, ms, time_text, ARGV[9], title}
local s, score = ingest_run(ARGV[1] .. session_id, ARGV[2] .. session_id,
  ARGV[3] .. session_id, KEYS[1], ARGV[5], ARGV[7], {message}, 1, 1, replies)
local status, stored = replies[1], replies[3]
if status < 0 then return {-1} end
if status == 1 then
  stored = ARGV[9]
  redis.call('SET', operation_key, '1', 'PX', ${OPERATION_TTL_MS})
elseif redis.call('EXISTS', operation_key) == 1 then
  status = 1
end
return {status, card_render(s), score and string.format('%d', score) or false, stored,
  redis.call('GET', ARGV[4] .. session_id)}
