-- Replays a typing trace inside headless Neovim, for benchmarks/peer_llama_vim.py.
--
-- The keys are fed with nvim_input from Neovim's own event loop at the trace's delays, so they
-- reach the plugin under test exactly as typed keys do (CursorMovedI, TextChangedI, the
-- completion plugins' own timers), and every time is read from one clock (vim.uv.hrtime).
--
-- Environment:
--   BENCH_PLUGIN     "llama.vim" or "codellama"
--   BENCH_PLUGIN_DIR the plugin's folder (benchmarks/peers/llama.vim or editors/nvim)
--   BENCH_ENDPOINT   llama.vim: its endpoint_fim (…/infill)
--   BENCH_SERVER_CMD, BENCH_SETTINGS_JSON  codellama: the server command and its settings
--   BENCH_STEPS      a JSON file: {"steps": [{kind, text, delay_s, line, think_s}…]}
--   BENCH_OUT        where the results go (JSON), written when the trace is done
--   BENCH_MAX_WAIT   seconds a user waits at a pause for the ghost text
local env = vim.env
vim.o.swapfile = false
vim.o.shada = ""
vim.o.autoindent = false
vim.o.smartindent = false
vim.o.indentexpr = ""
vim.api.nvim_create_autocmd("FileType", {
  callback = function()
    vim.bo.autoindent = false
    vim.bo.smartindent = false
    vim.bo.indentexpr = ""
  end,
})
vim.opt.rtp:prepend(env.BENCH_PLUGIN_DIR)

if env.BENCH_PLUGIN == "llama.vim" then
  vim.g.llama_config = { endpoint_fim = env.BENCH_ENDPOINT, show_info = 0 }
  vim.cmd("runtime plugin/llama.vim")
else
  require("codellama").setup({
    cmd = { env.BENCH_SERVER_CMD },
    settings = vim.json.decode(env.BENCH_SETTINGS_JSON or "{}"),
  })
end

local hrtime = vim.uv and vim.uv.hrtime or vim.loop.hrtime
local function now()
  return hrtime() / 1e9
end

--- The ghost text on screen at the cursor, as a signature (its text and where it is), or nil.
--- Counted: virtual text of an extmark on the cursor's line at the cursor's column (llama.vim
--- and Neovim 0.12 both put it there), and virtual lines below the cursor's line. A suggestion
--- left on screen at an older column (Neovim 0.12 keeps the previous item until it asks again)
--- is stale and not counted.
local function ghost_signature()
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local marks = vim.api.nvim_buf_get_extmarks(0, -1, { row - 1, 0 }, { row - 1, -1 }, {
    details = true,
  })
  local parts = {}
  for _, m in ipairs(marks) do
    local d = m[4]
    if m[3] == col then
      for _, chunk in ipairs(d.virt_text or {}) do
        table.insert(parts, chunk[1])
      end
    end
    for _, line in ipairs(d.virt_lines or {}) do
      for _, chunk in ipairs(line) do
        table.insert(parts, "\n" .. chunk[1])
      end
    end
  end
  local text = table.concat(parts)
  if text:match("^%s*$") then
    return nil
  end
  return row .. ":" .. col .. ":" .. text
end

local state = {
  last_edit = now(),
  ghost = nil, -- the signature on screen
  ghost_since = nil, -- since when it has been there, unchanged
  keys = 0,
  pauses = {},
  lines_added = 0,
}
vim.api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
  callback = function()
    state.last_edit = now()
  end,
})
-- Watch the screen every 10 ms: when did the ghost text appear?
local watch = (vim.uv or vim.loop).new_timer()
watch:start(
  10,
  10,
  vim.schedule_wrap(function()
    local ghost = ghost_signature()
    if ghost ~= state.ghost then
      state.ghost, state.ghost_since = ghost, ghost and now() or nil
    end
  end)
)

local function key_of(ch)
  if ch == "\n" then
    return "<CR>"
  elseif ch == "<" then
    return "<lt>"
  end
  return ch
end

local function ready()
  if env.BENCH_PLUGIN == "llama.vim" then
    return true
  end
  local status = require("codellama").status
  return status ~= nil and status.state == "ready"
end

--- CPU seconds of a process from /proc: its own, and with the children it has reaped.
local function cpu(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then
    return 0, 0
  end
  local rest = f:read("*a"):match("%) (.*)$")
  f:close()
  local fields = vim.split(rest, " ", { trimempty = true })
  local tick = tonumber(env.BENCH_CLK_TCK or "100")
  local own = (tonumber(fields[12]) + tonumber(fields[13])) / tick
  return own, own + (tonumber(fields[14]) + tonumber(fields[15])) / tick
end

local function finish()
  watch:stop()
  local out = { keys = state.keys, pauses = state.pauses, plugin = env.BENCH_PLUGIN }
  local _, editor = cpu(vim.fn.getpid())
  out.editor_cpu_s = editor
  out.server_cpu_s = 0
  if env.BENCH_PLUGIN == "codellama" then
    for _, child in ipairs(vim.api.nvim_get_proc_children(vim.fn.getpid())) do
      local own = cpu(child)
      out.server_cpu_s = out.server_cpu_s + own
    end
  end
  if env.BENCH_PLUGIN == "codellama" then
    out.stats = require("codellama").execute("codellama.stats", {}, 10000)
  end
  local f = assert(io.open(env.BENCH_OUT, "w"))
  f:write(vim.json.encode(out))
  f:close()
  vim.cmd("qa!")
end

local steps = vim.json.decode(table.concat(vim.fn.readfile(env.BENCH_STEPS), "\n")).steps
local max_wait = tonumber(env.BENCH_MAX_WAIT or "3")
local run

--- A pause: wait for the ghost text (at most max_wait after the last edit), then think.
local function pause(step, i)
  local started = now()
  local function poll()
    local shown = state.ghost_since ~= nil
    if shown or now() - state.last_edit >= max_wait then
      local latency = shown and math.max(0, state.ghost_since - state.last_edit) or vim.NIL
      table.insert(state.pauses, {
        latency_s = latency,
        waited_s = now() - started,
        after_jump = state.jumped,
      })
      state.jumped = false
      vim.defer_fn(function()
        run(i + 1)
      end, math.floor(step.think_s * 1000))
      return
    end
    vim.defer_fn(poll, 5)
  end
  poll()
end

run = function(i)
  local step = steps[i]
  if step == nil then
    vim.api.nvim_input("<Esc>")
    vim.defer_fn(finish, 1000)
    return
  end
  if step.kind == "pause" then
    return pause(step, i)
  end
  local keys, delay = "", step.delay_s
  if step.kind == "jump" then
    keys = "<Esc>" .. (step.line + 1 + state.lines_added) .. "GA"
    delay = step.think_s
    state.jumped = true
  elseif step.kind == "type" then
    keys = key_of(step.text)
    state.keys = state.keys + 1
    if step.text == "\n" then
      state.lines_added = state.lines_added + 1
    end
  elseif step.kind == "backspace" then
    keys = "<BS>"
    state.keys = state.keys + 1
  end
  vim.defer_fn(function()
    vim.api.nvim_input(keys)
    run(i + 1)
  end, math.floor(delay * 1000))
end

--- Start once the plugin is ready (our server loaded; llama.vim has nothing to load).
local function start()
  if not ready() then
    vim.defer_fn(start, 100)
    return
  end
  vim.defer_fn(function()
    run(1)
  end, 500)
end
vim.api.nvim_create_autocmd("VimEnter", { callback = start })
