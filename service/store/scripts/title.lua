-- The auto title of ASCII content, in the script: as models.auto_title words and cuts it
-- (the first 40 words; Python's ASCII whitespace includes bytes 28 to 31; cut at a word
-- to at most AUTO_TITLE_LENGTH characters, with an ellipsis).
local auto_title_length = ${AUTO_TITLE_LENGTH}
local derive_title = '${DERIVE_TITLE}'
local function ascii_title(content)
  local words = {}
  for word in string.gmatch(content, '[^%s\28-\31]+') do
    words[#words + 1] = word
    if #words == 40 then break end
  end
  if #words == 0 then return '' end
  local title = table.concat(words, ' ')
  if #title > auto_title_length then
    -- Plain searches from each end: a pattern anchored at the end, or a greedy one
    -- backing off to the last space, is tried from every position of a word.
    local cut = string.sub(title, 1, auto_title_length - 1)
    local space = string.find(cut, ' ', 1, true)
    while space do
      local next_space = string.find(cut, ' ', space + 1, true)
      if not next_space then break end
      space = next_space
    end
    if space then cut = string.sub(cut, 1, space - 1) end
    local last = #cut
    while last > 0 and string.find(' ,.;:-', string.sub(cut, last, last), 1, true) do
      last = last - 1
    end
    title = string.sub(cut, 1, last) .. '\226\128\166'
  end
  return title
end

-- The title a message gives a session that has none ('' for none): sent as JSON, or
-- worked out here from the stored message [id, role, content, ...].
local function message_title(title, stored)
  if title == derive_title then return ascii_title(cjson.decode(stored)[3]) end
  return cjson.decode(title)
end
