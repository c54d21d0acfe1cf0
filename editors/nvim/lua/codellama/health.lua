--- :checkhealth codellama
local M = {}

local health = vim.health

function M.check()
  local codellama = require("codellama")
  local config = codellama.config

  health.start("codellama: Neovim")
  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") ~= 1 then
    health.error("Neovim " .. version .. " is too old: 0.10 or newer is needed")
  elseif codellama.has_native_inline() then
    health.ok("Neovim " .. version .. ": built-in inline completion (vim.lsp.inline_completion)")
  else
    health.ok("Neovim " .. version .. ": the plugin's own ghost text (0.12 adds vim.lsp.inline_completion)")
  end
  health.info("display: " .. codellama.mode() .. ", filetypes: " .. table.concat(codellama.filetypes(), ", "))

  health.start("codellama: server")
  local exe = config.cmd[1]
  local path = vim.fn.exepath(exe)
  if path == "" then
    health.error("server command `" .. exe .. "` not found", {
      "pip install codellama-lsp (in a venv), then put its bin/ on PATH",
      'or: require("codellama").setup({ cmd = { "/path/to/venv/bin/codellama-lsp" } })',
    })
  else
    health.ok("command: " .. table.concat(config.cmd, " ") .. " (" .. path .. ")")
    local ok, result = pcall(function()
      return vim.system({ path, "--version" }, { text = true }):wait(15000)
    end)
    if ok and result and result.code == 0 then
      health.ok("version: " .. vim.trim(result.stdout ~= "" and result.stdout or result.stderr))
    else
      health.warn("`" .. exe .. " --version` failed: " .. vim.trim((result and result.stderr) or tostring(result)))
    end
  end
  if next(config.settings) then
    health.info("settings: " .. vim.inspect(config.settings, { newline = " ", indent = "" }))
  else
    health.info("settings: the server's defaults")
  end

  health.start("codellama: model")
  local client = codellama.get_client()
  if not client then
    health.info("no server running (it starts when a " .. table.concat(codellama.filetypes(), "/") .. " buffer opens)")
    return
  end
  local status, err = codellama.execute("codellama.status", {}, 5000)
  if not status then
    health.error("the server did not answer codellama.status: " .. tostring(err))
    return
  end
  local line = string.format("model %s: %s", tostring(status.model), tostring(status.state))
  if status.message and status.message ~= vim.NIL and status.message ~= "" then
    line = line .. " (" .. tostring(status.message) .. ")"
  end
  if status.state == "ready" then
    if type(status.last_latency_ms) == "number" then
      line = line .. string.format(", last completion %d ms", math.floor(status.last_latency_ms + 0.5))
    end
    health.ok(line)
    local level, latency, advice = require("codellama.activity").health(status)
    if level == "ok" then
      health.ok(latency)
    else
      health.warn(latency, advice)
    end
    local stats = codellama.execute("codellama.stats", {}, 5000)
    for _, summary in ipairs(codellama.acceptance_summary(stats)) do
      health.info(summary)
    end
  elseif status.state == "loading" then
    health.info(line)
  elseif status.state == "disabled" then
    health.warn(line, { ":CodellamaToggle turns completions back on" })
  elseif status.state == "snoozed" then
    local snoozed = require("codellama.controls").snooze_text(status)
    health.warn(line .. ", " .. tostring(snoozed), { ":CodellamaSnooze 0 turns suggestions back on" })
  else
    health.error(line, {
      "see :LspLog",
      "`" .. config.cmd[1] .. " check --model " .. tostring(status.model) .. "` in a shell says what is missing",
    })
  end
end

return M
