--- The user's say over when suggestions appear, in Neovim (issue 30):
---
--- * `:CodellamaSnooze [minutes]`: no suggestions for a while (the server's `codellama.snooze`;
---   no argument: a menu of 5 min / 30 min / until restart / resume);
--- * the completion menu: while it is open (the built-in `pumvisible()`, nvim-cmp, blink.cmp)
---   no ghost text is shown (`hide_during_menu`);
--- * <Tab> accepts only a suggestion that is on screen; otherwise it does what it did before
---   (the mapping it had: indent, a snippet jump, the menu's next item);
--- * the buffer's indentation ('shiftwidth', 'expandtab', 'tabstop') goes to the server
---   (`codellama/didChangeEditorOptions`), which indents suggestions in the buffer's style.
---
--- The other rules (languages, excluded files, comments and strings) are server settings.
local M = {}

local SNOOZE_COMMAND = "codellama.snooze"
local EDITOR_OPTIONS = "codellama/didChangeEditorOptions"
local NATIVE_NAMESPACE = "nvim.lsp.inline_completion"

local function termcode(keys)
  return vim.api.nvim_replace_termcodes(keys, true, false, true)
end

-- Snooze ------------------------------------------------------------------------------------

--- The `codellama.snooze` argument for `:CodellamaSnooze`'s argument ("" → nil: ask).
---@return table|nil args, string|nil err
function M.snooze_args(text)
  text = vim.trim(text or "")
  if text == "" then
    return nil, nil
  end
  if text == "restart" or text == "forever" then
    return { { minutes = vim.NIL } }, nil
  end
  local minutes = tonumber((text:gsub(",", ".")))
  if not minutes or minutes < 0 then
    return nil, "minutes must be a number (0 resumes), or `restart`"
  end
  return { { minutes = minutes } }, nil
end

--- The choices `:CodellamaSnooze` offers without an argument.
M.snooze_choices = {
  { label = "Snooze for 5 minutes", args = { { minutes = 5 } } },
  { label = "Snooze for 30 minutes", args = { { minutes = 30 } } },
  { label = "Snooze until Neovim restarts", args = { { minutes = vim.NIL } } },
  { label = "Resume suggestions", args = { { minutes = 0 } } },
}

--- "until 14:05" for the server's `snoozed_until` (seconds since the epoch; nil: until restart).
function M.snooze_text(status)
  if type(status) ~= "table" or status.state ~= "snoozed" then
    return nil
  end
  if type(status.snoozed_until) == "number" then
    return "until " .. os.date("%H:%M", math.floor(status.snoozed_until))
  end
  return "until restart"
end

--- Hide what is on screen now (a new snooze, or the menu opening).
local function hide_all(codellama)
  require("codellama.ghost").dismiss_all()
  if codellama.mode() == "native" then
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.lsp.inline_completion.is_enabled({ bufnr = buf }) then
        vim.lsp.inline_completion.enable(false, { bufnr = buf })
        vim.lsp.inline_completion.enable(true, { bufnr = buf })
      end
    end
  end
end

--- Snooze the current buffer's server with `args` (see `snooze_args`).
function M.snooze(args)
  local codellama = require("codellama")
  local status, err = codellama.execute(SNOOZE_COMMAND, args)
  if not status then
    vim.notify("codellama: " .. tostring(err), vim.log.levels.ERROR)
    return
  end
  if type(status) == "table" then
    codellama.set_status(status)
  end
  if status.state == "snoozed" then
    hide_all(codellama)
    vim.notify("codellama: suggestions snoozed " .. M.snooze_text(status))
  else
    vim.notify("codellama: suggestions on")
  end
end

function M.snooze_command(opts)
  local args, err = M.snooze_args(opts.args)
  if err then
    vim.notify("codellama: :CodellamaSnooze " .. err, vim.log.levels.ERROR)
  elseif args then
    M.snooze(args)
  else
    vim.ui.select(M.snooze_choices, {
      prompt = "codellama",
      format_item = function(choice)
        return choice.label
      end,
    }, function(choice)
      if choice then
        M.snooze(choice.args)
      end
    end)
  end
end

-- The completion menu ----------------------------------------------------------------------

--- Whether a completion menu is open: the built-in popup menu, nvim-cmp's or blink.cmp's.
function M.menu_visible()
  if vim.fn.pumvisible() == 1 then
    return true
  end
  local cmp = package.loaded["cmp"]
  if type(cmp) == "table" and type(cmp.visible) == "function" then
    local ok, visible = pcall(cmp.visible)
    if ok and visible then
      return true
    end
  end
  local blink = package.loaded["blink.cmp"]
  if type(blink) == "table" then
    for _, name in ipairs({ "is_menu_visible", "is_visible" }) do
      if type(blink[name]) == "function" then
        local ok, visible = pcall(blink[name])
        if ok and visible then
          return true
        end
      end
    end
  end
  return false
end

--- Whether a suggestion is drawn in `bufnr` now (0.12: Neovim's own extmarks; the plugin's
--- ghost text otherwise).
function M.ghost_shown(bufnr, mode)
  if mode ~= "native" then
    return require("codellama.ghost").visible(bufnr)
  end
  local ns = vim.api.nvim_get_namespaces()[NATIVE_NAMESPACE]
  return ns ~= nil and #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { limit = 1 }) > 0
end

local hidden_for_menu = {} ---@type table<integer, boolean>

local function menu_opened(bufnr, mode)
  if mode == "native" then
    if not hidden_for_menu[bufnr] and vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }) then
      hidden_for_menu[bufnr] = true
      vim.lsp.inline_completion.enable(false, { bufnr = bufnr }) -- hides it, asks nothing
    end
  else
    require("codellama.ghost").dismiss(bufnr)
  end
end

local function menu_closed(bufnr, mode)
  if mode == "native" then
    if hidden_for_menu[bufnr] then
      hidden_for_menu[bufnr] = nil
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr }) -- asks again at the next key
    end
  else
    require("codellama.ghost").refresh(bufnr)
  end
end

--- nvim-cmp's menu events, once it is loaded (it may load after this plugin).
local cmp_hooked = false
local function hook_cmp()
  local cmp = package.loaded["cmp"]
  if cmp_hooked or type(cmp) ~= "table" or type(cmp.event) ~= "table" then
    return
  end
  cmp_hooked = true
  local function each(handler)
    return function()
      local bufnr = vim.api.nvim_get_current_buf()
      local codellama = require("codellama")
      if codellama.get_client(bufnr) and codellama.config.hide_during_menu ~= false then
        handler(bufnr, codellama.mode())
      end
    end
  end
  pcall(cmp.event.on, cmp.event, "menu_opened", each(menu_opened))
  pcall(cmp.event.on, cmp.event, "menu_closed", each(menu_closed))
end

-- <Tab> and the other accept keys -----------------------------------------------------------

--- The insert-mode mapping `lhs` had in `bufnr` before the plugin mapped it (buffer-local
--- ones only: a global one is looked up when the key is pressed, see `fallback`).
function M.previous_mapping(bufnr, lhs)
  local found
  vim.api.nvim_buf_call(bufnr, function()
    found = vim.fn.maparg(lhs, "i", false, true)
  end)
  if type(found) ~= "table" or vim.tbl_isempty(found) or found.buffer ~= 1 then
    return nil
  end
  if type(found.desc) == "string" and found.desc:match("^codellama") then
    return nil
  end
  return found
end

--- The global insert-mode mapping of `lhs`, if any.
local function global_mapping(lhs)
  local want = termcode(lhs)
  for _, m in ipairs(vim.api.nvim_get_keymap("i")) do
    if termcode(m.lhs) == want then
      return m
    end
  end
  return nil
end

--- The keys to return from an accept key's `<expr>` mapping when there is nothing to accept:
--- what the mapping it replaced (`previous`, or the global one) does, else the key itself.
function M.fallback(previous, lhs)
  local m = previous or global_mapping(lhs)
  if not m then
    return termcode(lhs)
  end
  if m.callback then
    local result = m.callback()
    if m.expr ~= 1 or type(result) ~= "string" then
      return ""
    end
    return m.replace_keycodes == 1 and termcode(result) or result
  end
  local rhs = m.rhs or ""
  if m.expr == 1 then
    rhs = vim.api.nvim_eval(rhs)
  else
    rhs = termcode(rhs)
  end
  if m.noremap ~= 1 then
    vim.api.nvim_feedkeys(rhs, "im", false) -- the mapping wanted its keys mapped again
    return ""
  end
  return rhs
end

-- The buffer's indentation --------------------------------------------------------------------

--- LSP `FormattingOptions` of a buffer, as `vim.lsp.util.make_formatting_params` makes them.
function M.indent_options(bufnr)
  local sw, ts = vim.bo[bufnr].shiftwidth, vim.bo[bufnr].tabstop
  return { tabSize = sw > 0 and sw or ts, insertSpaces = vim.bo[bufnr].expandtab }
end

function M.send_indent(client, bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, options = M.indent_options(bufnr) }
  require("codellama").client_call(client, "notify", EDITOR_OPTIONS, params)
end

--- For a buffer the server attached to: its indentation now and on change, the menu.
function M.attach(client, bufnr, config)
  local mode = require("codellama").mode()
  local group = vim.api.nvim_create_augroup("codellama_controls_" .. bufnr, { clear = true })
  M.send_indent(client, bufnr)
  vim.api.nvim_create_autocmd("OptionSet", {
    group = group,
    pattern = { "shiftwidth", "expandtab", "tabstop" },
    callback = function()
      if vim.api.nvim_get_current_buf() == bufnr then
        M.send_indent(client, bufnr)
      end
    end,
  })
  if config.hide_during_menu ~= false then
    vim.api.nvim_create_autocmd("CompleteChanged", {
      group = group,
      buffer = bufnr,
      callback = function()
        menu_opened(bufnr, mode)
      end,
    })
    vim.api.nvim_create_autocmd("CompleteDone", {
      group = group,
      buffer = bufnr,
      callback = function()
        vim.schedule(function()
          if not M.menu_visible() then
            menu_closed(bufnr, mode)
          end
        end)
      end,
    })
    vim.api.nvim_create_autocmd("User", {
      group = group,
      pattern = { "BlinkCmpMenuOpen", "BlinkCmpMenuClose" },
      callback = function(args)
        if vim.api.nvim_get_current_buf() == bufnr then
          (args.match == "BlinkCmpMenuOpen" and menu_opened or menu_closed)(bufnr, mode)
        end
      end,
    })
    vim.api.nvim_create_autocmd("InsertEnter", { group = group, buffer = bufnr, callback = hook_cmp })
    hook_cmp()
  end
  vim.api.nvim_create_autocmd("LspDetach", {
    group = group,
    buffer = bufnr,
    callback = function(args)
      if args.data and args.data.client_id == client.id then
        hidden_for_menu[bufnr] = nil
        vim.api.nvim_del_augroup_by_id(group)
      end
    end,
  })
end

return M
