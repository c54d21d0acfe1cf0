-- Config for the headless Neovim end-to-end tests (tests/editors/test_nvim.py).
-- Loads the plugin from editors/nvim exactly as a user's config would, with the real server.
local env = vim.env
vim.opt.rtp:prepend(env.CODELLAMA_PLUGIN_DIR)
vim.o.swapfile = false
vim.o.shada = ""
-- Deterministic typing: no automatic indentation from Neovim itself.
vim.api.nvim_create_autocmd("FileType", {
  pattern = "python",
  callback = function()
    vim.bo.autoindent = false
    vim.bo.smartindent = false
    vim.bo.indentexpr = ""
  end,
})

local log = vim.lsp.log and vim.lsp.log.set_level and vim.lsp.log or nil
if log then
  log.set_level(env.CODELLAMA_LSP_LOG_LEVEL or "warn")
else
  vim.lsp.set_log_level(env.CODELLAMA_LSP_LOG_LEVEL or "warn")
end

require("codellama").setup({
  cmd = { env.CODELLAMA_SERVER_CMD },
  settings = vim.json.decode(env.CODELLAMA_SETTINGS_JSON or "{}"),
})

-- Helpers the test reads over RPC (`luaeval("T.state()")`); each returns a JSON string.
T = {}

--- Virtual text that is on screen in the current buffer, as the user would read it: the inline
--- part, then the virtual lines below it.
local function ghost_text()
  local marks = vim.api.nvim_buf_get_extmarks(0, -1, 0, -1, { details = true })
  local parts = {}
  for _, m in ipairs(marks) do
    local d = m[4]
    local inline = {}
    for _, chunk in ipairs(d.virt_text or {}) do
      table.insert(inline, chunk[1])
    end
    local text = table.concat(inline)
    for _, vl in ipairs(d.virt_lines or {}) do
      local l = {}
      for _, chunk in ipairs(vl) do
        table.insert(l, chunk[1])
      end
      text = text .. "\n" .. table.concat(l)
    end
    if text ~= "" then
      table.insert(parts, text)
    end
  end
  return table.concat(parts, "\n")
end

--- The cursor's line as drawn: the buffer line with the first line of ghost text put where the
--- extmark says (inline: pushed in; overlay: drawn over the characters there).
local function drawn_line()
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  local line = vim.api.nvim_buf_get_lines(0, row, row + 1, false)[1] or ""
  local marks = vim.api.nvim_buf_get_extmarks(0, -1, { row, 0 }, { row, -1 }, { details = true })
  for _, m in ipairs(marks) do
    local col, d = m[3], m[4]
    local parts = {}
    for _, chunk in ipairs(d.virt_text or {}) do
      table.insert(parts, chunk[1])
    end
    local text = table.concat(parts)
    if text ~= "" then
      local covered = d.virt_text_pos == "overlay" and #text or 0
      line = line:sub(1, col) .. text .. line:sub(col + 1 + covered)
    end
  end
  return line
end

function T.state()
  local codellama = require("codellama")
  local pos = vim.api.nvim_win_get_cursor(0)
  return vim.json.encode({
    mode = vim.api.nvim_get_mode().mode,
    display = codellama.mode(),
    status = codellama.status or vim.NIL,
    attached = codellama.get_client(0) ~= nil,
    lines = vim.api.nvim_buf_get_lines(0, 0, -1, false),
    cursor = { pos[1], pos[2] },
    ghost = ghost_text(),
    drawn_line = drawn_line(),
  })
end

function T.stats()
  local stats, err = require("codellama").execute("codellama.stats", {}, 5000)
  return vim.json.encode(stats or { error = err })
end

--- A user's <Tab> for the completion menu, set after the plugin's: the next item while the
--- menu is open, else a plain <Tab>.
function T.map_tab_to_menu()
  vim.keymap.set("i", "<Tab>", function()
    return vim.fn.pumvisible() == 1 and "<C-n>" or "<Tab>"
  end, { expr = true, desc = "test: menu or tab" })
  return vim.json.encode(true)
end

function T.set_settings(json)
  require("codellama").update_settings(vim.json.decode(json))
  return vim.json.encode(true)
end
