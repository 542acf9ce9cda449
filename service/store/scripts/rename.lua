-- KEYS[1] card, KEYS[2] index, KEYS[3] meta
-- ARGV[1] session id, ARGV[2] title as JSON
-- Returns {card, score, metadata or false}, or an empty table when unknown.
--! include card.lua
local card = redis.call('GET', KEYS[1])
if not card then return {} end
local s = card_parse(card)
s.title = ARGV[2]
s.source = '\14'
card = card_render(s)
redis.call('SET', KEYS[1], card)
return {card, redis.call('ZSCORE', KEYS[2], ARGV[1]), redis.call('GET', KEYS[3])}
