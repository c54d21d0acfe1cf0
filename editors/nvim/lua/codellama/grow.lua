--- The ghost text grows by itself (issue 27).
---
--- With `early_first_line`, the server answers a multi-line suggestion as soon as its first line
--- is complete, writes on, and sends `codellama/suggestionGrown` `{textDocument, position}` (where
--- it was asked) when the whole block is ready. If the cursor is still in that buffer, on that
--- line at or after that place (the user may have typed part of it), in insert mode, with a
--- suggestion on screen and no completion menu open, the plugin asks again at once: the server
--- answers with the whole block (its cache, or typing-through), with no new generation. After
--- an accept of the first line the cursor is on another line: the rest comes by typing-through
--- at the next request. When the user typed something else, the server sends nothing.
local M = {}

M.NOTIFICATION = "codellama/suggestionGrown"

--- Whether the cursor (0-based `row`, byte `col`, `line` its text) is where the suggestion
--- grown at LSP `position` (in `encoding`) was asked for, or further on that line.
function M.still_there(position, row, col, line, encoding)
  if type(position) ~= "table" or position.line ~= row or type(position.character) ~= "number" then
    return false
  end
  return col >= require("codellama.ghost").byte_col(line, position.character, encoding)
end

--- The notification's handler.
function M.handler(_, params, ctx)
  local uri = type(params) == "table" and type(params.textDocument) == "table" and params.textDocument.uri
  local client = ctx and vim.lsp.get_client_by_id(ctx.client_id)
  local bufnr = vim.api.nvim_get_current_buf()
  if type(uri) ~= "string" or not client or vim.uri_from_bufnr(bufnr) ~= uri
    or not vim.fn.mode():match("^i") then
    return
  end
  local pos = vim.api.nvim_win_get_cursor(0)
  local row, col = pos[1] - 1, pos[2]
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  if not M.still_there(params.position, row, col, line, client.offset_encoding or "utf-16") then
    return
  end
  local codellama = require("codellama")
  local controls = require("codellama.controls")
  local mode = codellama.mode()
  if controls.menu_visible() then
    return
  end
  if mode == "native" then
    if controls.ghost_shown(bufnr, mode) then
      require("codellama.native").reask(bufnr)
    end
  elseif mode == "ghost" then
    require("codellama.ghost").reask(bufnr)
  end
end

return M
