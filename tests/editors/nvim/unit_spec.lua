-- Unit tests of the plugin's pure Lua logic, run by tests/editors/test_nvim_unit.py with
-- `nvim --headless --clean -l unit_spec.lua <plugin dir>`. Exits non-zero on the first failure.
vim.opt.rtp:prepend(assert(_G.arg[1], "usage: nvim -l unit_spec.lua PLUGIN_DIR"))

local ghost = require("codellama.ghost")
local codellama = require("codellama")
local passed = 0

local function test(name, fn)
  local ok, err = pcall(fn)
  if not ok then
    io.stderr:write("FAIL " .. name .. ": " .. tostring(err) .. "\n")
    os.exit(1)
  end
  passed = passed + 1
  io.stdout:write("ok " .. name .. "\n")
end

local function eq(actual, expected)
  if not vim.deep_equal(actual, expected) then
    error("expected " .. vim.inspect(expected) .. ", got " .. vim.inspect(actual), 2)
  end
end

local function item(text, line, s, e)
  return { insertText = text, range = { start = { line = line, character = s }, ["end"] = { line = line, character = e } } }
end

test("empty range at the cursor shows the whole text", function()
  local plan = ghost.plan(item("a + b", 1, 11, 11), "    return ", 1, 11, "utf-16")
  eq(plan.lines, { "a + b" })
  eq({ plan.start_col, plan.end_col }, { 11, 11 })
end)

test("multi-line text: first line inline, the rest below", function()
  local plan = ghost.plan(item("x\n    y\nz", 0, 4, 4), "abcd", 0, 4, "utf-8")
  eq(plan.lines, { "x", "    y", "z" })
end)

test("a range that starts before the cursor skips what is typed", function()
  local plan = ghost.plan(item("return a", 0, 4, 7), "    ret", 0, 7, "utf-16")
  eq(plan.lines, { "urn a" })
  eq(plan.text, "return a")
  eq(plan.start_col, 4)
end)

test("text that does not match what is typed is not shown", function()
  eq(ghost.plan(item("print(x)", 0, 4, 7), "    ret", 0, 7, "utf-16"), nil)
end)

test("auto-closed bracket replaced by the item is not shown twice", function()
  local plan = ghost.plan(item("a, b)", 0, 4, 5), "foo()", 0, 4, "utf-16")
  eq(plan.lines, { "a, b" })
  eq(plan.end_col, 5)
end)

test("no range: inserted at the cursor; plain string or StringValue", function()
  eq(ghost.plan({ insertText = "pass" }, "    ", 0, 4, "utf-16").lines, { "pass" })
  eq(ghost.plan({ insertText = { kind = "snippet", value = "pass" } }, "    ", 0, 4, "utf-16").lines, { "pass" })
  eq(ghost.plan({ insertText = "" }, "    ", 0, 4, "utf-16"), nil)
end)

test("a range on another line is ignored", function()
  eq(ghost.plan(item("x", 3, 0, 0), "abc", 0, 3, "utf-16"), nil)
end)

test("utf-16 offsets are turned into byte columns", function()
  -- "é" is 2 bytes in UTF-8 and 1 unit in UTF-16; "😀" is 4 bytes and 2 units.
  eq(ghost.byte_col("é = 1", 1, "utf-16"), 2)
  eq(ghost.byte_col("😀x", 2, "utf-16"), 4)
  eq(ghost.byte_col("😀x", 4, "utf-8"), 4)
  local line = "s = 'é'"
  local plan = ghost.plan(item(" + 'x'", 0, 7, 7), line, 0, #line, "utf-16")
  eq(plan.start_col, #line)
end)

test("stats are formatted one per line, nested values inline", function()
  local lines = codellama.format_stats({ requests = 3, latency_ms = { p50 = 12, p95 = 20 } })
  eq(#lines, 2)
  assert(lines[1]:match("^latency_ms%s+p50=12 p95=20$"), lines[1])
  assert(lines[2]:match("^requests%s+3$"), lines[2])
end)

test("display mode follows the Neovim version and the option", function()
  codellama.config.inline = "auto"
  eq(codellama.mode(), vim.lsp.inline_completion and "native" or "ghost")
  codellama.config.inline = "ghost"
  eq(codellama.mode(), "ghost")
  codellama.config.inline = false
  eq(codellama.mode(), "off")
end)

-- The 0.12 accept with keys typed after the request: Neovim's item still has the range it came
-- with (an empty one at the old cursor, or one over an auto-closed bracket).
local function native_item(text, row, s, e)
  return {
    insert_text = text,
    range = { start = { row = row, col = s }, end_ = { row = row, col = e } },
  }
end

local function accept_in(line, cursor_col, it, kind)
  vim.o.virtualedit = "onemore" -- a cursor after the line's end, as in insert mode
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, true, { line })
  vim.api.nvim_win_set_cursor(0, { 1, cursor_col })
  codellama.accept_native(buf, it, kind)
  local result = { vim.api.nvim_buf_get_lines(buf, 0, -1, true), vim.api.nvim_win_get_cursor(0) }
  vim.api.nvim_buf_delete(buf, { force = true })
  return result
end

test("0.12 accept at the range the item came with", function()
  eq(accept_in("    ", 4, native_item("print(x)", 0, 4, 4)), { { "    print(x)" }, { 1, 12 } })
end)

test("0.12 accept after typing past a stale range does not repeat the typed text", function()
  eq(accept_in("    print(", 10, native_item("print(x)", 0, 4, 4)), { { "    print(x)" }, { 1, 12 } })
end)

test("0.12 accept after typing past a stale range over an auto-closed bracket", function()
  -- Asked at "f(|)": item "a, b)" over ")"; then "a" was typed: "f(a|)".
  eq(accept_in("f(a)", 3, native_item("a, b)", 0, 2, 3)), { { "f(a, b)" }, { 1, 7 } })
end)

test("0.12 accept: typed text that the item does not begin with stays", function()
  eq(accept_in("    pr", 6, native_item("x = 1", 0, 4, 4)), { { "    x = 1pr" }, { 1, 9 } })
end)

test("candidates: the items that fit, numbered in the server's order", function()
  local plans = ghost.plans({ item("x = 1", 0, 4, 4), item("print(x)", 0, 2, 2), item("y = 2", 0, 4, 4) }, "    ", 0, 4, "utf-16")
  eq(#plans, 2)
  eq({ plans[1].text, plans[1].index, plans[2].text, plans[2].index }, { "x = 1", 1, "y = 2", 2 })
end)

test("API key from a function, else from the environment variable, never empty", function()
  vim.env.CODELLAMA_TEST_KEY = " from-env "
  local config = { settings = { model = "demo" }, api_key_env = "CODELLAMA_TEST_KEY" }
  eq(codellama.api_key(config), "from-env")
  eq(codellama.server_settings(config), { model = "demo", api_key = "from-env" })
  config.api_key = function()
    return "from-function"
  end
  eq(codellama.server_settings(config), { model = "demo", api_key = "from-function" })
  eq(config.settings, { model = "demo" }) -- the key is not written into the user's settings
  config.api_key = function()
    return ""
  end
  eq(codellama.server_settings(config), { model = "demo" })
  config.api_key, config.notify_errors = function()
    error("locked")
  end, false
  eq(codellama.api_key(config), nil)
  vim.env.CODELLAMA_TEST_KEY = nil
  eq(codellama.api_key({ settings = {}, api_key_env = "CODELLAMA_TEST_KEY" }), nil)
end)

local partial = require("codellama.partial")

test("partial accept: the next word, with the blanks and line breaks before it", function()
  eq(partial.take("for line in handle:", "word"), "for")
  eq(partial.take(" line in handle:", "word"), " line")
  eq(partial.take("(line, os.sep)", "word"), "(")
  eq(partial.take("\n    total += 1", "word"), "\n    total")
  eq(partial.take("x", "word"), "x")
end)

test("partial accept: the rest of the line, or the next line after a line break", function()
  eq(partial.take("a = 1\nb = 2", "line"), "a = 1")
  eq(partial.take("\nb = 2\nc", "line"), "\nb = 2")
  eq(partial.take("a = 1", "line"), "a = 1")
end)

test("partial accept: lengths in the client's units", function()
  eq(partial.units("abc", "utf-16"), 3)
  eq(partial.units("é😀", "utf-8"), 6)
  eq(partial.units("é😀", "utf-16"), 3)
  eq(partial.units("é😀", "utf-32"), 2)
end)

test("0.12 accept of the next word inserts it at the cursor, after typed text", function()
  eq(accept_in("    ", 4, native_item("for line in x:", 0, 4, 4), "word"), { { "    for" }, { 1, 7 } })
  eq(accept_in("    fo", 6, native_item("for line in x:", 0, 4, 4), "word"), { { "    for" }, { 1, 7 } })
  eq(accept_in("    for", 7, native_item("for line in x:", 0, 4, 4), "word"), { { "    for line" }, { 1, 12 } })
end)

test("0.12 accept of the next line", function()
  eq(accept_in("", 0, native_item("a = 1\nb = 2", 0, 0, 0), "line"), { { "a = 1" }, { 1, 5 } })
  eq(accept_in("a = 1", 5, native_item("a = 1\nb = 2", 0, 0, 0), "line"), { { "a = 1", "b = 2" }, { 2, 5 } })
end)

test(":help codellama lists every key with its default", function()
  local doc = table.concat(vim.fn.readfile(_G.arg[1] .. "/doc/codellama.txt"), "\n")
  for name, lhs in pairs(codellama.config.keymaps) do
    if not doc:find("`" .. name .. "`", 1, true) or not doc:find(lhs, 1, true) then
      error("doc/codellama.txt does not list " .. name .. " (" .. lhs .. ")")
    end
  end
end)

local controls = require("codellama.controls")

test(":CodellamaSnooze's argument", function()
  eq({ controls.snooze_args("5") }, { { { minutes = 5 } }, nil })
  eq({ controls.snooze_args(" 0,5 ") }, { { { minutes = 0.5 } }, nil })
  eq({ controls.snooze_args("0") }, { { { minutes = 0 } }, nil })
  eq(controls.snooze_args("restart")[1].minutes, vim.NIL)
  eq({ controls.snooze_args("") }, { nil, nil }) -- the menu
  local args, err = controls.snooze_args("soon")
  eq(args, nil)
  assert(err:match("minutes"))
end)

test("the statusline says until when a snooze lasts", function()
  local at = os.time({ year = 2030, month = 1, day = 2, hour = 14, min = 5 })
  eq(controls.snooze_text({ state = "snoozed", snoozed_until = at }), "until 14:05")
  eq(controls.snooze_text({ state = "snoozed", snoozed_until = vim.NIL }), "until restart")
  eq(controls.snooze_text({ state = "ready" }), nil)
  codellama.status = { state = "snoozed", snoozed_until = at }
  eq(codellama.statusline(), "codellama: snoozed until 14:05")
  codellama.status = nil
end)

test("an accept key falls back to what the key did before", function()
  local tc = function(k)
    return vim.api.nvim_replace_termcodes(k, true, false, true)
  end
  eq(controls.fallback(nil, "<F13>"), tc("<F13>")) -- no mapping: the key itself
  -- Neovim's own <Tab> (a snippet jump when one is active, else <Tab>).
  eq(controls.fallback(nil, "<Tab>"), tc("<Tab>"))
  local expr = { rhs = 'pumvisible() ? "\\<C-n>" : "\\<Tab>"', expr = 1, noremap = 1 }
  eq(controls.fallback(expr, "<Tab>"), vim.api.nvim_eval('"\\<Tab>"'))
  eq(controls.fallback({ rhs = "<C-t>", noremap = 1 }, "<Tab>"), tc("<C-t>"))
  local called = 0
  eq(controls.fallback({ callback = function() called = called + 1 end }, "<Tab>"), "")
  eq(called, 1)
  eq(controls.fallback({ callback = function() return "<C-n>" end, expr = 1, replace_keycodes = 1 }, "<Tab>"), tc("<C-n>"))
end)

test("a buffer's indentation as FormattingOptions", function()
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].shiftwidth, vim.bo[buf].tabstop, vim.bo[buf].expandtab = 2, 8, true
  eq(controls.indent_options(buf), { tabSize = 2, insertSpaces = true })
  vim.bo[buf].shiftwidth, vim.bo[buf].expandtab = 0, false
  eq(controls.indent_options(buf), { tabSize = 8, insertSpaces = false })
end)

test("filetypes follow the server's languages unless set", function()
  local saved = codellama.config
  codellama.config = vim.tbl_deep_extend("force", vim.deepcopy(saved), { settings = { languages = { "python", "lua" } } })
  eq(codellama.filetypes(), { "python", "lua" })
  codellama.config.filetypes = { "python" }
  eq(codellama.filetypes(), { "python" })
  eq(codellama.server_settings().languages, { "python", "lua" })
  codellama.config.settings.languages = nil
  eq(codellama.server_settings().languages, { "python" })
  codellama.config = saved
  eq(codellama.filetypes(), { "python" })
end)

-- Issue 27: the suggestion grows by itself; what the server is doing, for the statusline and
-- :checkhealth.
local grow = require("codellama.grow")
local activity = require("codellama.activity")

test("grown: still there on that line at or after the place, in the client's units", function()
  local at = { line = 3, character = 8 }
  eq(grow.still_there(at, 3, 8, "        for", "utf-16"), true)
  eq(grow.still_there(at, 3, 10, "        for", "utf-16"), true) -- typed through part of it
  eq(grow.still_there(at, 3, 7, "        for", "utf-16"), false)
  eq(grow.still_there(at, 4, 8, "        for", "utf-16"), false) -- accepted: another line
  eq(grow.still_there(nil, 3, 8, "", "utf-16"), false)
  -- "é" is 2 bytes, 1 UTF-16 unit: the place after it is byte 3.
  eq(grow.still_there({ line = 0, character = 2 }, 0, 3, "éx = ", "utf-16"), true)
  eq(grow.still_there({ line = 0, character = 2 }, 0, 2, "éx = ", "utf-16"), false)
end)

test("the statusline says a suggestion is being written once it lasts, and slow", function()
  codellama.status = { state = "ready", last_latency_ms = 41.6, generating = true, slow = vim.NIL }
  local changes = 0
  activity.update(true, function() changes = changes + 1 end)
  eq(activity.writing(), false) -- not yet: a fast model's suggestion comes sooner
  eq(codellama.statusline(), "codellama: ready 42ms")
  vim.wait(2000, function() return activity.writing() end, 10)
  eq(activity.writing(), true)
  eq(changes, 1)
  eq(codellama.statusline(), "codellama: ready 42ms, writing…")
  activity.update(true, function() changes = changes + 1 end)
  eq(changes, 1)
  activity.update(false, function() changes = changes + 1 end)
  eq(activity.writing(), false)
  eq(changes, 2)
  -- Generating ends within the delay: nothing shows, nothing fires.
  activity.update(true, function() changes = changes + 1 end)
  activity.update(false, function() changes = changes + 1 end)
  vim.wait(activity.WRITING_DELAY_MS * 2, function() return false end, 10)
  eq({ activity.writing(), changes }, { false, 2 })
  codellama.status = { state = "ready", last_latency_ms = 4200, slow = "codellama-lsp: too slow." }
  eq(codellama.statusline(), "codellama: ready 4200ms, slow")
  codellama.status = nil
end)

test(":checkhealth's latency line: ok, or the verdict with what would help", function()
  eq({ activity.health({ state = "ready", slow = vim.NIL }) }, {
    "ok", "latency: no sign that suggestions come too late to use", nil,
  })
  local slow = "codellama-lsp: suggestions take 4.2 s (median of the last 9), too late to be useful "
    .. "while you type. What would help: a smaller model answers faster (x); shorter suggestions "
    .. "(max_new_tokens = 64; now 128)."
  eq({ activity.health({ state = "ready", slow = slow }) }, {
    "warn",
    "latency: codellama-lsp: suggestions take 4.2 s (median of the last 9), too late to be useful while you type.",
    { "a smaller model answers faster (x)", "shorter suggestions (max_new_tokens = 64; now 128)" },
  })
  eq({ activity.health({ slow = "codellama-lsp: slow." }) }, { "warn", "latency: codellama-lsp: slow.", nil })
end)

io.stdout:write(string.format("%d passed, 0 failed\n", passed))
