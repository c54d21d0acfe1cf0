--- What the server is doing that the user should see (issue 27), from `codellama/status`:
---
--- * `generating`: a suggestion is being written. The statusline says so once it has lasted
---   `WRITING_DELAY_MS` (a fast model's suggestion comes sooner, and a statusline that changed
---   for each would only flicker); the `User CodellamaStatus` autocmd fires when that flips.
--- * `slow`: recent suggestions came too late to be used; the server's message says why and what
---   would help on this machine (the statusline says "slow", `:checkhealth codellama` the rest).
local M = {}

M.WRITING_DELAY_MS = 250

local timer = nil ---@type uv.uv_timer_t|nil
local shown = false

local function stop_timer()
  if timer then
    timer:stop()
    if not timer:is_closing() then
      timer:close()
    end
    timer = nil
  end
end

--- Whether the statusline says a suggestion is being written.
function M.writing()
  return shown
end

--- Take the server's `generating`; `changed()` is called when `writing()` flips.
function M.update(generating, changed)
  if not generating then
    stop_timer()
    if shown then
      shown = false
      changed()
    end
  elseif not shown and not timer then
    timer = (vim.uv or vim.loop).new_timer()
    timer:start(M.WRITING_DELAY_MS, 0, vim.schedule_wrap(function()
      stop_timer()
      shown = true
      changed()
    end))
  end
end

--- The server's `slow` message when it has one (JSON null arrives as vim.NIL).
function M.slow(status)
  local slow = type(status) == "table" and status.slow or nil
  return type(slow) == "string" and slow ~= "" and slow or nil
end

--- What the statusline adds after "codellama: ready 42ms".
function M.statusline_suffix(status)
  if shown then
    return ", writing…"
  elseif M.slow(status) then
    return ", slow"
  end
  return ""
end

--- The latency line of :checkhealth: ("ok", text) or ("warn", verdict, what would help).
---@return string level, string text, string[]|nil advice
function M.health(status)
  local slow = M.slow(status)
  if not slow then
    return "ok", "latency: no sign that suggestions come too late to use", nil
  end
  local verdict, helps = slow:match("^(.-)%s*What would help: (.*)$")
  if not verdict then
    return "warn", "latency: " .. slow, nil
  end
  return "warn", "latency: " .. verdict, M.split_outside_brackets((helps:gsub("%.$", "")), "; ")
end

--- `text` split at each `sep` that is not inside brackets ("a (x; y); b" → "a (x; y)", "b").
function M.split_outside_brackets(text, sep)
  local parts, depth, start, i = {}, 0, 1, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "(" or c == "[" then
      depth = depth + 1
    elseif (c == ")" or c == "]") and depth > 0 then
      depth = depth - 1
    elseif depth == 0 and text:sub(i, i + #sep - 1) == sep then
      table.insert(parts, text:sub(start, i - 1))
      start = i + #sep
      i = start - 1
    end
    i = i + 1
  end
  table.insert(parts, text:sub(start))
  return vim.tbl_filter(function(part)
    return part ~= ""
  end, parts)
end

return M
