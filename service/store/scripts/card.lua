-- Card helpers shared by every script that reads or rewrites a card.
local function card_parse(card)
  local b = string.find(card, '\1', 2, true)
  local c = string.find(card, '\2', b, true)
  local d = string.find(card, '\3', c, true)
  local e = string.find(card, '\4', d, true)
  return {
    source = string.sub(card, 1, 1),
    title = string.sub(card, 2, b - 1),
    created = string.sub(card, b + 1, c - 1),
    updated = string.sub(card, c + 1, d - 1),
    count = tonumber(string.sub(card, d + 1, e - 1)),
    channel = string.sub(card, e + 1),
  }
end
local function card_render(s)
  return s.source .. s.title .. '\1' .. s.created .. '\2' .. s.updated .. '\3'
    .. string.format('%d', s.count) .. '\4' .. s.channel
end
