--- codellama.nvim: AI code completions from the codellama-lsp language server.
---
---   require("codellama").setup({})               -- `codellama-lsp` from PATH, server defaults
---   require("codellama").setup({ cmd = { "/path/to/venv/bin/codellama-lsp" },
---                                settings = { model = "codellama/CodeLlama-7b-hf" } })
---
--- Neovim >= 0.12 shows the completions with the built-in `vim.lsp.inline_completion`;
--- 0.10 and 0.11 use this plugin's own ghost text (lua/codellama/ghost.lua).
local M = {}

local CLIENT_NAME = "codellama"

---@class codellama.Keymaps
---@field accept string|false       accept the whole suggestion (falls back to the key itself)
---@field accept_word string|false  accept the next word of the suggestion
---@field accept_line string|false  accept the rest of the suggestion's line
---@field dismiss string|false      hide the suggestion
---@field next string|false         next suggestion; with one shown, asks for more candidates
---@field prev string|false         previous suggestion; likewise

---@class codellama.Config
---@field cmd string[]              how to start the server
---@field filetypes string[]|nil   buffers to attach to (default: `settings.languages`, else python)
---@field root_markers string[]     files that mark the project root
---@field settings table            server settings, snake_case (model, temperature, debounce_ms, ...):
---                                 sent as initializationOptions and workspace/didChangeConfiguration
---@field inline "auto"|"native"|"ghost"|false  how suggestions are shown
---@field keymaps codellama.Keymaps
---@field ghost_debounce_ms integer  ghost-text path: wait this long after typing before asking
---@field notify_errors boolean     show server errors with vim.notify
---@field hide_during_menu boolean  no ghost text while a completion menu is open (built-in,
---                                 nvim-cmp, blink.cmp)
---@field api_key (fun(): string|nil)|nil  returns the model server's API key (e.g. from a password
---                                 manager); called when the server starts; wins over api_key_env
---@field api_key_env string|nil    environment variable holding the API key
local defaults = {
  cmd = { "codellama-lsp" },
  filetypes = nil,
  root_markers = { "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", ".git" },
  settings = {},
  inline = "auto",
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<C-l>",
    dismiss = "<C-]>",
    next = "<M-]>",
    prev = "<M-[>",
  },
  ghost_debounce_ms = 75,
  notify_errors = true,
  hide_during_menu = true,
  api_key = nil,
  api_key_env = "CODELLAMA_LSP_API_KEY",
}

---@type codellama.Config
M.config = vim.deepcopy(defaults)

--- The latest `codellama/status` the server sent: { state, message, model, last_latency_ms,
--- generating, slow, ... }.
---@type table|nil
M.status = nil

local augroup = vim.api.nvim_create_augroup("codellama", { clear = true })

--- The filetypes the plugin starts the server for: `filetypes`, else the server's `languages`
--- setting (`*`: every filetype), else python.
function M.filetypes()
  local types = M.config.filetypes or M.config.settings.languages or { "python" }
  return type(types) == "string" and vim.split(types, ",", { trimempty = true }) or types
end

local function wanted(filetype)
  local types = M.filetypes()
  return filetype ~= "" and (vim.tbl_contains(types, "*") or vim.tbl_contains(types, filetype))
end

--- Whether this Neovim has the built-in inline completion (0.12+).
function M.has_native_inline()
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end

--- Which display path is in use: "native", "ghost" or "off".
function M.mode()
  local inline = M.config.inline
  if inline == false then
    return "off"
  elseif inline == "native" or (inline == "auto" and M.has_native_inline()) then
    return "native"
  end
  return "ghost"
end

--- Call a method on an LSP client in both the 0.11+ (`client:m()`) and 0.10 (`client.m()`) styles.
function M.client_call(client, method, ...)
  if vim.fn.has("nvim-0.11") == 1 then
    return client[method](client, ...)
  end
  return client[method](...)
end

---@param bufnr integer|nil
---@return vim.lsp.Client|nil
function M.get_client(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  local clients = get({ name = CLIENT_NAME, bufnr = bufnr })
  return clients[1]
end

--- Run a server command (workspace/executeCommand) synchronously.
---@return any result, string|nil err
function M.execute(command, arguments, timeout_ms)
  local client = M.get_client()
  if not client then
    return nil, "codellama-lsp is not running (open a " .. table.concat(M.filetypes(), "/") .. " file)"
  end
  local resp, err = M.client_call(client, "request_sync", "workspace/executeCommand", {
    command = command,
    arguments = arguments or {},
  }, timeout_ms or 5000, 0)
  if not resp then
    return nil, tostring(err or "timeout")
  end
  if resp.err then
    return nil, resp.err.message or vim.inspect(resp.err)
  end
  return resp.result, nil
end

--- A short text for a statusline: "codellama: ready 12ms"; ", writing…" after it while a
--- suggestion is being written (for more than a moment), ", slow" when suggestions come too
--- late to be used (`:checkhealth codellama` says what would help).
function M.statusline()
  local s = M.status
  if not s then
    return M.get_client() and "codellama: starting" or ""
  end
  local text = "codellama: " .. tostring(s.state)
  local snoozed = require("codellama.controls").snooze_text(s)
  if snoozed then
    text = text .. " " .. snoozed
  elseif s.state == "ready" then
    if type(s.last_latency_ms) == "number" then
      text = text .. string.format(" %dms", math.floor(s.last_latency_ms + 0.5))
    end
    text = text .. require("codellama.activity").statusline_suffix(s)
  end
  return text
end

local function status_changed(status)
  vim.api.nvim_exec_autocmds("User", { pattern = "CodellamaStatus", modeline = false, data = status })
end

--- Take a status from the server (`codellama/status`, or a command's answer).
function M.set_status(result)
  if type(result) ~= "table" then
    return
  end
  local previous = M.status and M.status.state
  M.status = result
  if result.state == "error" and previous ~= "error" and M.config.notify_errors then
    vim.notify("codellama: " .. tostring(result.message or "error"), vim.log.levels.ERROR)
  end
  require("codellama.activity").update(result.state == "ready" and result.generating == true, function()
    status_changed(M.status)
  end)
  status_changed(result)
end

local function on_status(_, result)
  M.set_status(result)
end

local function root_dir(bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  if vim.fs.root then -- 0.10+
    return vim.fs.root(bufnr, M.config.root_markers) or vim.fs.dirname(path) or vim.uv.cwd()
  end
  return vim.fs.dirname(path) or vim.loop.cwd()
end

local function on_attach(client, bufnr)
  local mode = M.mode()
  if mode == "native" then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  elseif mode == "ghost" then
    require("codellama.ghost").attach(client, bufnr, M.config)
  end
  require("codellama.controls").attach(client, bufnr, M.config)
  M.set_keymaps(bufnr, mode)
end

--- The model server's API key from `api_key` (a function) or `api_key_env`, never from a file.
---@return string|nil
function M.api_key(config)
  config = config or M.config
  local key
  if type(config.api_key) == "function" then
    local ok, value = pcall(config.api_key)
    if ok then
      key = value
    elseif config.notify_errors then
      vim.notify("codellama: api_key function failed: " .. tostring(value), vim.log.levels.WARN)
    end
  elseif config.api_key_env then
    key = vim.env[config.api_key_env]
  end
  if type(key) ~= "string" or vim.trim(key) == "" then
    return nil
  end
  return vim.trim(key)
end

--- The settings sent to the server: `settings` plus the API key when there is one.
function M.server_settings(config)
  config = config or M.config
  local settings = vim.deepcopy(config.settings)
  if settings.languages == nil and config.filetypes then
    settings.languages = config.filetypes -- the server completes where the plugin attaches
  end
  local key = M.api_key(config)
  if key then
    settings.api_key = key
  end
  return settings
end

--- The LSP client config (also usable with vim.lsp.config / nvim-lspconfig, see docs/editors.md).
function M.lsp_config(bufnr)
  return {
    name = CLIENT_NAME,
    cmd = M.config.cmd,
    root_dir = bufnr and root_dir(bufnr) or nil,
    init_options = M.server_settings(),
    -- Neovim sends these with workspace/didChangeConfiguration after initializing.
    settings = { codellama = M.server_settings() },
    handlers = {
      ["codellama/status"] = on_status,
      [require("codellama.grow").NOTIFICATION] = require("codellama.grow").handler,
    },
    on_attach = on_attach,
    on_exit = function(code, signal)
      require("codellama.activity").update(false, function() end)
      if M.status then
        M.status = { state = "error", message = string.format("server exited (code %s, signal %s)", code, signal) }
      end
    end,
  }
end

--- Start (or reuse) the server for a buffer.
function M.start(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if vim.fn.executable(M.config.cmd[1]) ~= 1 then
    vim.notify_once(
      "codellama: `" .. M.config.cmd[1] .. "` not found; install codellama-lsp or set `cmd` in setup()",
      vim.log.levels.WARN
    )
    return nil
  end
  return vim.lsp.start(M.lsp_config(bufnr), { bufnr = bufnr })
end

local function map(bufnr, lhs, rhs, desc, opts)
  if not lhs then
    return
  end
  vim.keymap.set("i", lhs, rhs, vim.tbl_extend("force", { buffer = bufnr, desc = desc }, opts or {}))
end

--- Apply an accepted item on the 0.12 path (`vim.lsp.inline_completion.get`'s `on_accept`).
---
--- Neovim applies an item at the range it came with. Keys typed after the request (Neovim
--- asks again only 200 ms after the last key) leave that range behind the cursor, so the typed
--- text would stay in front of the inserted one ("print(" + "print(x)"). The server's ranges
--- start at the cursor it was asked about: when the item's text begins with what was typed
--- since, the range is moved over the typed text. With `kind` ("word" or "line") only the next
--- word or line of the rest is inserted at the cursor (see lua/codellama/partial.lua).
function M.accept_native(bufnr, item, kind)
  local text = item.insert_text
  if type(text) ~= "string" then
    text = text.value or ""
  end
  local win = vim.fn.bufwinid(bufnr)
  local cursor = vim.api.nvim_win_get_cursor(win)
  local row, col = cursor[1] - 1, cursor[2]
  local srow, scol, erow, ecol = row, col, row, col
  if item.range then
    srow, scol = item.range.start.row, item.range.start.col
    erow, ecol = item.range.end_.row, item.range.end_.col
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1]
  local typed = 0
  if row == srow and col > scol and text:sub(1, col - scol) == line:sub(scol + 1, col) then
    ecol = math.min(#line, (erow == srow and math.max(ecol, scol) or scol) + col - scol)
    erow = srow
    typed = col - scol
  end
  local client = item.command and vim.lsp.get_client_by_id(item.client_id)
  local partial = require("codellama.partial")
  local rest = text:sub(typed + 1)
  local part = kind and partial.take(rest, kind) or rest
  if part ~= "" and part ~= rest then
    local parts = vim.split(part, "\n", { plain = true })
    vim.api.nvim_buf_set_text(bufnr, row, col, row, col, parts)
    vim.api.nvim_win_set_cursor(win, { row + #parts, (#parts == 1 and col or 0) + #parts[#parts] })
    if client then
      partial.report(client, item, text, typed + #part)
    end
    return
  end
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, srow, scol, erow, ecol, lines)
  vim.api.nvim_win_set_cursor(win, { srow + #lines, (#lines == 1 and scol or 0) + #lines[#lines] })
  if client then
    client:exec_cmd(item.command, { bufnr = bufnr })
  end
end

--- Next (count 1) or previous (count -1) suggestion on the 0.12 path (lua/codellama/native.lua):
--- with only the one item that typing got, ask the server for candidates.
function M.cycle_native(bufnr, count)
  require("codellama.native").cycle(bufnr, count)
end

--- Insert-mode keys for a buffer.
function M.set_keymaps(bufnr, mode)
  local keys = M.config.keymaps or {}
  local controls = require("codellama.controls")
  if mode == "native" then
    local function accept_key(lhs, kind, desc)
      local previous = lhs and controls.previous_mapping(bufnr, lhs)
      map(bufnr, lhs, function()
        -- Only what is on screen (not an item hidden while a menu is open).
        local accepted = controls.ghost_shown(bufnr, mode) and not controls.menu_visible()
          and vim.lsp.inline_completion.get({
            on_accept = function(item)
              M.accept_native(bufnr, item, kind)
            end,
          })
        if not accepted then
          return controls.fallback(previous, lhs) -- what the key did before
        end
      end, desc, { expr = true, replace_keycodes = false })
    end
    accept_key(keys.accept, nil, "codellama: accept suggestion")
    accept_key(keys.accept_word, "word", "codellama: accept the next word")
    accept_key(keys.accept_line, "line", "codellama: accept the next line")
    map(bufnr, keys.next, function()
      M.cycle_native(bufnr, 1)
    end, "codellama: next suggestion")
    map(bufnr, keys.prev, function()
      M.cycle_native(bufnr, -1)
    end, "codellama: previous suggestion")
    map(bufnr, keys.dismiss, function()
      -- Re-enabling drops the shown item; a new one comes with the next keystroke.
      vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    end, "codellama: dismiss suggestion")
  elseif mode == "ghost" then
    local ghost = require("codellama.ghost")
    local function accept_key(lhs, kind, desc)
      local previous = lhs and controls.previous_mapping(bufnr, lhs)
      map(bufnr, lhs, function()
        if controls.menu_visible() or not ghost.accept(bufnr, { kind = kind }) then
          return controls.fallback(previous, lhs) -- what the key did before
        end
      end, desc, { expr = true, replace_keycodes = false })
    end
    accept_key(keys.accept, nil, "codellama: accept suggestion")
    accept_key(keys.accept_word, "word", "codellama: accept the next word")
    accept_key(keys.accept_line, "line", "codellama: accept the next line")
    map(bufnr, keys.dismiss, function()
      ghost.dismiss(bufnr)
    end, "codellama: dismiss suggestion")
    map(bufnr, keys.next, function()
      ghost.cycle(bufnr, 1)
    end, "codellama: next suggestion")
    map(bufnr, keys.prev, function()
      ghost.cycle(bufnr, -1)
    end, "codellama: previous suggestion")
  end
end

--- Send settings to the running server (merged into the configured ones).
function M.update_settings(settings)
  M.config.settings = vim.tbl_extend("force", M.config.settings, settings)
  local client = M.get_client()
  if client then
    client.settings = { codellama = M.server_settings() }
    M.client_call(client, "notify", "workspace/didChangeConfiguration", { settings = client.settings })
  end
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do -- languages turned on: their open buffers
    if vim.api.nvim_buf_is_loaded(buf) and wanted(vim.bo[buf].filetype) and not M.get_client(buf) then
      M.start(buf)
    end
  end
end

local function percent(share)
  return type(share) == "number" and string.format("%d%%", math.floor(share * 100 + 0.5)) or "-"
end

--- The acceptance figures of `codellama.stats` in a few lines for people.
function M.acceptance_summary(stats)
  local a = type(stats) == "table" and stats.acceptance
  if type(a) ~= "table" then
    return {}
  end
  local lines = {
    string.format(
      "suggestions: %d shown, %d accepted (%d chars), %d partly accepted (%d chars), %d dismissed; acceptance %s",
      a.shown, a.accepted, a.accepted_chars, a.partially_accepted, a.partially_accepted_chars,
      a.dismissed, percent(a.acceptance_rate)
    ),
  }
  for _, when in ipairs({ { "retained_after_30s", "after 30 s" }, { "retained_after_20_edits", "after 20 edits" } }) do
    local r, label = a[when[1]], when[2]
    if type(r) == "table" and r.accepted_chars > 0 then
      table.insert(lines, string.format("accepted text still there %s: %s of %d chars", label,
        percent(r.kept_share), r.accepted_chars))
    end
  end
  return lines
end

--- Format `codellama.stats` for people.
function M.format_stats(stats)
  local lines = {}
  local keys = vim.tbl_keys(stats)
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = stats[k]
    if type(v) == "table" then
      local parts = {}
      local sub = vim.tbl_keys(v)
      table.sort(sub)
      for _, sk in ipairs(sub) do
        table.insert(parts, sk .. "=" .. vim.inspect(v[sk]))
      end
      table.insert(lines, string.format("%-24s %s", k, table.concat(parts, " ")))
    else
      table.insert(lines, string.format("%-24s %s", k, vim.inspect(v)))
    end
  end
  return lines
end

local function create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("CodellamaStats", function()
    local stats, err = M.execute("codellama.stats")
    if not stats then
      vim.notify("codellama: " .. err, vim.log.levels.ERROR)
      return
    end
    local lines = vim.list_extend(M.acceptance_summary(stats), M.format_stats(stats))
    vim.notify(table.concat(lines, "\n"), vim.log.levels.INFO, { title = "codellama stats" })
  end, { desc = "Show codellama-lsp statistics" })
  cmd("CodellamaStatus", function()
    local status, err = M.execute("codellama.status")
    if not status then
      vim.notify("codellama: " .. err, vim.log.levels.ERROR)
      return
    end
    M.status = status
    vim.notify(
      string.format("codellama: %s (model %s) %s", status.state, status.model or "?", status.message or ""),
      vim.log.levels.INFO
    )
  end, { desc = "Show the codellama-lsp model state" })
  cmd("CodellamaToggle", function()
    local enabled = M.config.settings.enabled ~= false
    M.update_settings({ enabled = not enabled })
    if enabled then
      require("codellama.ghost").dismiss_all()
    end
    vim.notify("codellama: completions " .. (enabled and "off" or "on"))
  end, { desc = "Turn codellama completions on/off" })
  cmd("CodellamaSnooze", function(opts)
    require("codellama.controls").snooze_command(opts)
  end, { nargs = "?", desc = "Snooze codellama suggestions: [minutes] (0 resumes), or a menu" })
  cmd("CodellamaRestart", function()
    local client = M.get_client()
    local bufs = {}
    if client then
      bufs = vim.tbl_keys(client.attached_buffers or {})
      M.client_call(client, "stop", true)
    end
    M.status = nil
    vim.defer_fn(function()
      for _, b in ipairs(bufs) do
        if vim.api.nvim_buf_is_valid(b) then
          M.start(b)
        end
      end
    end, 500)
  end, { desc = "Restart codellama-lsp" })
end

---@param opts codellama.Config|nil
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  if opts and opts.keymaps == false then
    M.config.keymaps = {}
  end
  vim.api.nvim_clear_autocmds({ group = augroup })
  vim.api.nvim_create_autocmd("FileType", {
    group = augroup,
    pattern = "*", -- the list is read each time: `update_settings({ languages = … })` counts
    callback = function(args)
      if wanted(args.match) then
        M.start(args.buf)
      end
    end,
  })
  create_commands()
  -- Buffers already open when setup() runs.
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and wanted(vim.bo[buf].filetype) then
      M.start(buf)
    end
  end
end

return M
