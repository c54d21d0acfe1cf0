--- Neovim 0.12's built-in inline completion, asked by the plugin (issue 27).
---
--- Its own requests are all Automatic, 200 ms after a key, so it holds one item and never asks
--- without a key. The plugin asks the server itself and hands the answer to Neovim's
--- completion state (private to Neovim: `vim.lsp._capability`, guarded; when its shape is not
--- the one known here, cycling falls back to `vim.lsp.inline_completion.select` and a grown
--- suggestion shows at the next key):
---
--- * next/previous with one suggestion shown: an Invoked request. The server answers with the
---   first candidate at once and writes the others; asked again, it answers with all of them.
--- * the suggestion grew (`codellama/suggestionGrown`): asked again at once, Automatic; the
---   server answers with the whole block from its cache.
local M = {}

local INVOKED, AUTOMATIC = 1, 2 -- lsp.InlineCompletionTriggerKind

--- Neovim 0.12's inline completion state for a buffer; nil when its shape is not the one we know.
function M.completor(bufnr)
  local ok, capability = pcall(require, "vim.lsp._capability")
  local class = ok and type(capability.all) == "table" and capability.all.inline_completion
  local completor = class and class.active and class.active[bufnr]
  if completor and type(completor.client_state) == "table" and completor.handler
    and completor.count_items and completor.select then
    return completor
  end
  return nil
end

--- Ask the server (only ours: other servers' items stay) at the cursor with `kind`; when the
--- text has not moved meanwhile, give the answer to Neovim's state, which shows its first item,
--- then call `after(completor)`. False when there is no state to give it to.
function M.ask(bufnr, kind, after)
  local client = require("codellama").get_client(bufnr)
  if not M.completor(bufnr) or not client then
    return false
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = kind }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local cursor = vim.api.nvim_win_get_cursor(0)
  client:request("textDocument/inlineCompletion", params, function(err, result, ctx)
    local now = vim.api.nvim_win_get_cursor(0)
    local completor = M.completor(bufnr)
    if err or not result or not completor or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick
      or now[1] ~= cursor[1] or now[2] ~= cursor[2] or not vim.fn.mode():match("^i") then
      return -- the text moved on since we asked
    end
    local ok = pcall(function()
      completor.client_state[ctx.client_id] = completor.client_state[ctx.client_id] or {}
      completor:handler(nil, result, ctx)
    end)
    if ok and after then
      after(completor)
    end
  end, bufnr)
  return true
end

--- Next (count 1) or previous (count -1) suggestion. With only the one item that typing got,
--- ask for candidates (Invoked): the first answer has the first one (the one shown), so ask
--- again for the others, then show the next of them. With none shown, the first at once.
function M.cycle(bufnr, count)
  local completor = M.completor(bufnr)
  local n = completor and completor:count_items() or -1
  if n > 1 or n < 0 then
    vim.lsp.inline_completion.select({ count = count, bufnr = bufnr })
    return
  end
  local function show_next(c)
    local items = c:count_items()
    if items > 1 then
      c:select(count > 0 and 2 or items, true)
    end
  end
  local asked = M.ask(bufnr, INVOKED, n == 1 and function(c)
    if c:count_items() > 1 then
      show_next(c)
    else
      M.ask(bufnr, INVOKED, show_next) -- the others, written since the first answer
    end
  end or nil)
  if not asked then
    vim.lsp.inline_completion.select({ count = count, bufnr = bufnr })
  end
end

--- The suggestion on screen grew: ask again (Automatic) and show the whole of it. False when
--- Neovim's state is not the one we know (the next key asks).
function M.reask(bufnr)
  return M.ask(bufnr, AUTOMATIC)
end

return M
