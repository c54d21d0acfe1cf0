--- Partial accepts: take the next word or line of a suggestion and tell the server.
---
--- The server hears of it with the Copilot language server's notification
--- (`textDocument/didPartiallyAcceptCompletion`: the item and the accepted length from the
--- item's start, in the client's position units); it then serves the rest of the suggestion by
--- typing-through, without a new generation, and counts it in `codellama.stats`.
local M = {}

--- The beginning of `rest` (the part of a suggestion not yet in the buffer) that accepting a
--- "word" or a "line" takes. A word: leading blanks and line breaks, then a run of word
--- characters or a run of other non-blank characters. A line: up to the end of the line; a
--- rest that starts with a line break takes it and the next line.
---@param rest string
---@param kind "word"|"line"
---@return string
function M.take(rest, kind)
  if kind == "word" then
    local lead = rest:match("^%s*")
    local body = rest:sub(#lead + 1)
    return lead .. (body:match("^[%w_]+") or body:match("^[^%w_%s]+") or "")
  end
  local break_at = rest:find("\n", rest:sub(1, 1) == "\n" and 2 or 1, true)
  return break_at and rest:sub(1, break_at - 1) or rest
end

--- Length of `text` in the client's position encoding ("utf-8", "utf-16", "utf-32").
function M.units(text, encoding)
  if encoding == "utf-8" or not text:find("[\128-\255]") then
    return #text
  end
  local ok, n = pcall(vim.str_utfindex, text, encoding) -- 0.11+
  if ok and type(n) == "number" then
    return n
  end
  local utf32, utf16 = vim.str_utfindex(text) -- 0.10
  return encoding == "utf-16" and utf16 or utf32
end

--- Tell the server that the first `accepted` characters (bytes of `insert_text`, from the
--- item's start) of an item were accepted.
function M.report(client, item, insert_text, accepted)
  local length = M.units(insert_text:sub(1, accepted), client.offset_encoding or "utf-16")
  require("codellama").client_call(client, "notify", "textDocument/didPartiallyAcceptCompletion", {
    item = { insertText = insert_text, command = item.command },
    acceptedLength = length,
  })
end

return M
