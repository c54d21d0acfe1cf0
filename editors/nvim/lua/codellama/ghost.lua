--- Ghost text for Neovim 0.10 / 0.11, which have no vim.lsp.inline_completion.
---
--- While typing in insert mode it asks the server for `textDocument/inlineCompletion` (debounced,
--- cancelling the request in flight when typing goes on), shows the first item as virtual text at
--- the cursor (first line inline, the rest as virtual lines), clears it when the cursor moves or
--- insert mode ends, and applies it on accept (then runs the item's command, so the server hears
--- of the accept). Next/previous cycle through the items; with one item (typing asks with
--- triggerKind Automatic, which gets one) they ask again as Invoked: the server answers with the
--- first candidate at once and writes the others, so with one on screen they ask twice. When
--- the server says the suggestion on screen grew (lua/codellama/grow.lua), it asks again at once.
local M = {}

local ns = vim.api.nvim_create_namespace("codellama_ghost")
vim.api.nvim_set_hl(0, "CodellamaSuggestion", { link = "Comment", default = true })
vim.api.nvim_set_hl(0, "CodellamaSuggestionCount", { link = "NonText", default = true })

local AUTOMATIC, INVOKED = 2, 1 -- lsp.InlineCompletionTriggerKind

---@class codellama.GhostState
---@field client_id integer
---@field encoding string
---@field timer uv.uv_timer_t|nil
---@field request_id integer|nil
---@field seq integer
---@field suggestion table|nil  { row, col, tick, text, lines, start_col, end_col, command, index }
---@field candidates table[]     the plans of the last answer's items (suggestion is one of them)

---@type table<integer, codellama.GhostState>
local buffers = {}

local function uv()
  return vim.uv or vim.loop
end

local function call(client, method, ...)
  return require("codellama").client_call(client, method, ...)
end

--- Byte column of an LSP character offset in `line` (works on 0.10 and 0.11 signatures).
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false) -- 0.11+
  if not ok then
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16") -- 0.10
  end
  return ok and col or #line
end

--- What to show for an item, given the line and the cursor (0-based row, byte column).
--- Returns nil when the item does not fit the text before the cursor.
---@return table|nil { text, lines, start_col, end_col }
function M.plan(item, line, row, col, encoding)
  local text = item.insertText
  if type(text) == "table" then
    text = text.value
  end
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local start_col, end_col = col, col
  if item.range then
    local s, e = item.range.start, item.range["end"]
    if s.line ~= row or e.line ~= row then
      return nil
    end
    start_col = M.byte_col(line, s.character, encoding)
    end_col = M.byte_col(line, e.character, encoding)
  end
  if start_col > col or end_col < col then
    return nil
  end
  local typed = line:sub(start_col + 1, col)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  local rest = text:sub(#typed + 1)
  if rest == "" then
    return nil
  end
  local lines = vim.split(rest, "\n", { plain = true })
  -- A single-line item that also replaces text after the cursor (auto-closed brackets): that
  -- text is already on screen, so do not show it twice.
  local tail = line:sub(col + 1, end_col)
  if #lines == 1 and tail ~= "" and vim.endswith(lines[1], tail) then
    lines[1] = lines[1]:sub(1, #lines[1] - #tail)
  end
  return { text = text, lines = lines, start_col = start_col, end_col = end_col }
end

local function clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
  local state = buffers[bufnr]
  if state then
    state.suggestion = nil
    state.candidates = {}
  end
end

local function cancel(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  state.seq = state.seq + 1
  if state.timer then
    state.timer:stop()
  end
  if state.request_id then
    local client = vim.lsp.get_client_by_id(state.client_id)
    if client then
      call(client, "cancel_request", state.request_id)
    end
    state.request_id = nil
  end
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function show(bufnr, plan, row, col)
  local candidates = buffers[bufnr].candidates or {}
  clear(bufnr)
  buffers[bufnr].candidates = candidates
  local chunks = {}
  for _, text in ipairs(plan.lines) do
    table.insert(chunks, { { text, "CodellamaSuggestion" } })
  end
  if #candidates > 1 then -- which one of how many, after the text (as Neovim 0.12 shows it)
    table.insert(chunks[#chunks], { string.format(" (%d/%d)", plan.index, #candidates), "CodellamaSuggestionCount" })
  end
  local virt_lines = { unpack(chunks, 2) }
  vim.api.nvim_buf_set_extmark(bufnr, ns, row, col, {
    virt_text = chunks[1],
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
  })
  plan.row, plan.col, plan.tick = row, col, vim.api.nvim_buf_get_changedtick(bufnr)
  buffers[bufnr].suggestion = plan
end

--- The plans of the items that fit the line (in the server's order), each with its index.
function M.plans(items, line, row, col, encoding)
  local plans = {}
  for _, item in ipairs(items) do
    local plan = M.plan(item, line, row, col, encoding)
    if plan then
      plan.command = item.command
      plan.index = #plans + 1
      table.insert(plans, plan)
    end
  end
  return plans
end

--- Ask for suggestions at the cursor; show the `pick`-th that fits (default 1, negative from the
--- end). With `again`, an answer with only one (the first candidate, on screen already) is asked
--- for once more: the server then has the others.
local function request(bufnr, kind, pick, again)
  local state = buffers[bufnr]
  local client = state and vim.lsp.get_client_by_id(state.client_id)
  if not client or vim.api.nvim_get_current_buf() ~= bufnr or not vim.fn.mode():match("^i") then
    return
  end
  if require("codellama").config.settings.enabled == false or require("codellama.controls").menu_visible() then
    return -- off, or a completion menu is open (its closing asks again)
  end
  local row, col = cursor()
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local params = vim.lsp.util.make_position_params(0, state.encoding)
  params.context = { triggerKind = kind or AUTOMATIC }
  state.seq = state.seq + 1
  local seq = state.seq
  local ok, id = call(client, "request", "textDocument/inlineCompletion", params, function(err, result)
    if state.seq ~= seq then
      return -- superseded or cancelled
    end
    state.request_id = nil
    if err or not result or not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    local now_row, now_col = cursor()
    if vim.api.nvim_get_current_buf() ~= bufnr or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick
      or now_row ~= row or now_col ~= col or not vim.fn.mode():match("^i")
      or require("codellama.controls").menu_visible() then
      return -- the text moved on since we asked, or a completion menu opened
    end
    local items = result.items or result
    local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
    local plans = M.plans(items, line, row, col, state.encoding)
    if again and #plans == 1 then
      request(bufnr, kind, pick)
      return
    end
    if #plans > 0 then
      state.candidates = plans
      show(bufnr, plans[(((pick or 1) - 1) % #plans) + 1], row, col)
    end
  end, bufnr)
  if ok then
    state.request_id = id
  end
end

local function schedule(bufnr, delay)
  local state = buffers[bufnr]
  if not state then
    return
  end
  cancel(bufnr)
  if not state.timer then
    state.timer = uv().new_timer()
  end
  state.timer:start(delay, 0, vim.schedule_wrap(function()
    request(bufnr)
  end))
end

--- Show the next (step 1) or previous (step -1) candidate. With one or none on screen, ask the
--- server for candidates (Invoked) and show the next (or last) of them.
function M.cycle(bufnr, step)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state then
    return
  end
  local s = state.suggestion
  local row, col = cursor()
  local here = s and s.row == row and s.col == col and s.tick == vim.api.nvim_buf_get_changedtick(bufnr)
  if here and #state.candidates > 1 then
    local n = #state.candidates
    show(bufnr, state.candidates[((s.index - 1 + step) % n) + 1], row, col)
    return
  end
  cancel(bufnr)
  request(bufnr, INVOKED, here and (step > 0 and 2 or 0) or 1, here)
end

--- The server's suggestion grew: ask again at once, and show the whole of it. Only where a
--- suggestion is on screen or on its way (not after a dismiss). Whether it asked.
function M.reask(bufnr)
  local state = buffers[bufnr]
  if not state or not (state.suggestion or state.request_id or (state.timer and state.timer:is_active())) then
    return false
  end
  cancel(bufnr)
  request(bufnr)
  return true
end

--- Whether a suggestion is on screen at the cursor.
function M.visible(bufnr)
  local state = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return state ~= nil and state.suggestion ~= nil
end

--- The suggestion on screen (for tests and statuslines): { text, lines, ... } or nil.
function M.current(bufnr)
  local state = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return state and state.suggestion
end

--- Accept the suggestion on screen, or its next word or line. Returns false when there is
--- none (so a key can fall back).
---@param opts? { kind?: "word"|"line" }  kind: accept only the next word / line of it
function M.accept(bufnr, opts)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local state = buffers[bufnr]
  local s = state and state.suggestion
  if not s then
    return false
  end
  local row, col = cursor()
  if row ~= s.row or col ~= s.col or vim.api.nvim_buf_get_changedtick(bufnr) ~= s.tick then
    clear(bufnr)
    return false
  end
  local partial = require("codellama.partial")
  local typed = col - s.start_col
  local rest = s.text:sub(typed + 1)
  local part = opts and opts.kind and partial.take(rest, opts.kind) or rest
  if part == "" then
    part = rest
  end
  -- Deferred: buffer edits are not allowed while an <expr> mapping runs.
  vim.schedule(function()
    cancel(bufnr)
    clear(bufnr)
    local new_lines, start_col, end_col
    if part ~= rest then
      new_lines, start_col, end_col = vim.split(part, "\n", { plain = true }), col, col
    else
      new_lines, start_col, end_col = vim.split(s.text, "\n", { plain = true }), s.start_col, s.end_col
    end
    vim.api.nvim_buf_set_text(bufnr, row, start_col, row, end_col, new_lines)
    local last = new_lines[#new_lines]
    local cursor_col = (#new_lines == 1 and start_col or 0) + #last
    vim.api.nvim_win_set_cursor(0, { row + #new_lines, cursor_col })
    local client = vim.lsp.get_client_by_id(state.client_id)
    if not (client and s.command) then
      return
    end
    if part ~= rest then
      partial.report(client, s, s.text, typed + #part)
    else
      call(client, "request", "workspace/executeCommand", {
        command = s.command.command,
        arguments = s.command.arguments,
      }, function() end, bufnr)
    end
  end)
  return true
end

--- Ask again at the cursor (a completion menu closed).
function M.refresh(bufnr)
  if buffers[bufnr] and vim.fn.mode():match("^i") then
    clear(bufnr)
    schedule(bufnr, require("codellama").config.ghost_debounce_ms or 75)
  end
end

function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  cancel(bufnr)
  clear(bufnr)
end

function M.dismiss_all()
  for bufnr in pairs(buffers) do
    M.dismiss(bufnr)
  end
end

function M.attach(client, bufnr, config)
  if buffers[bufnr] then
    return
  end
  buffers[bufnr] = {
    client_id = client.id,
    encoding = client.offset_encoding or "utf-16",
    seq = 0,
    candidates = {},
  }
  local group = vim.api.nvim_create_augroup("codellama_ghost_" .. bufnr, { clear = true })
  local delay = config.ghost_debounce_ms or 75
  vim.api.nvim_create_autocmd({ "InsertEnter", "TextChangedI" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      clear(bufnr)
      schedule(bufnr, delay)
    end,
  })
  vim.api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = buffers[bufnr] and buffers[bufnr].suggestion
      local row, col = cursor()
      local tick = vim.api.nvim_buf_get_changedtick(bufnr)
      if s and s.row == row and s.col == col and s.tick == tick then
        return -- still where it was shown
      end
      local state = buffers[bufnr]
      if state and state.request_id == nil and state.timer and state.timer:is_active() then
        return -- typing: TextChangedI already scheduled a request
      end
      clear(bufnr)
      schedule(bufnr, delay)
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.dismiss(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd("LspDetach", {
    group = group,
    buffer = bufnr,
    callback = function(args)
      if args.data and args.data.client_id == client.id then
        M.dismiss(bufnr)
        local state = buffers[bufnr]
        if state and state.timer then
          state.timer:close()
        end
        buffers[bufnr] = nil
        vim.api.nvim_del_augroup_by_id(group)
      end
    end,
  })
end

return M
