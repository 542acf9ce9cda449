-- Fields joined by NUL bytes (FIELDS_SEPARATOR) travel as one argument: Redis makes a
-- Lua string of every argument of every call, and hiredis formats each one.
local function split_fields(text)
  local fields, start = {}, 1
  while true do
    local stop = string.find(text, '\0', start, true)
    fields[#fields + 1] = string.sub(text, start, (stop or 0) - 1)
    if not stop then return fields end
    start = stop + 1
  end
end
