-- One argument parser for every command. A command declares its options:
--
--   { name = "deploy", usage = "database deploy [options]", summary = "...",
--     options = {
--       { "-c", "--cleanup", help = "stop the cluster afterwards" },           -- flag
--       { "-u", "--url", arg = "URL", help = "connection URL" },                -- value
--       { "-v", "--set", arg = "NAME=VALUE", multi = true, help = "..." },      -- repeated
--     },
--     positionals = { { "backup", optional = true, help = "..." } } | nil,
--     rest = "ARGS" (collect remaining positionals into opts.args),
--     messages = { unknown = "%s: unknown option '%s'", ... } }
--
-- parse(spec, argv) returns the options table (keys from the long name, '-' → '_';
-- positionals by name, extra ones in opts.args). -h/--help sets opts.help and stops.
-- Unknown options and unexpected arguments raise exit 9, a missing value exit 3.
local errors = require "dbtool.errors"

local M = {}

local function key_of(opt)
  if opt.key then return opt.key end
  for _, n in ipairs(opt) do
    if n:sub(1, 2) == "--" then return (n:sub(3):gsub("-", "_")) end
  end
  return (opt[1]:gsub("^%-+", ""):gsub("-", "_"))
end

local function index(spec)
  if spec._index then return spec._index end
  local idx = {}
  for _, opt in ipairs(spec.options or {}) do
    opt.key = key_of(opt)
    for _, n in ipairs(opt) do idx[n] = opt end
  end
  spec._index = idx
  return idx
end

local function msg(spec, which, default, ...)
  local m = spec.messages and spec.messages[which] or default
  return string.format(m, ...)
end

local function hint(spec)
  return "see '" .. (spec.prog or spec.name or "db-tool") .. " --help'"
end

--- Parse argv (array, from index 1) according to spec.
function M.parse(spec, argv, first)
  local idx = index(spec)
  local opts = { args = {} }
  for _, opt in ipairs(spec.options or {}) do
    if opt.multi then opts[opt.key] = {} end
    if opt.default ~= nil then opts[opt.key] = opt.default end
  end
  local name = spec.name or "db-tool"
  local positional = {}
  local i = first or 1
  -- -h/--help anywhere before `--` wins over everything else on the line
  if not spec.no_help then
    for j = i, #argv do
      if argv[j] == "--" then break end
      if argv[j] == "-h" or argv[j] == "--help" then
        opts.help = true
        return opts
      end
    end
  end
  local only_positionals = false
  while i <= #argv do
    local a = argv[i]
    if not only_positionals and a == "--" then
      only_positionals = true
    elseif not only_positionals and a:sub(1, 1) == "-" and a ~= "-" then
      local flag, value = a, nil
      local eq = a:find("=", 3, true)
      if a:sub(1, 2) == "--" and eq then flag, value = a:sub(1, eq - 1), a:sub(eq + 1) end
      local opt = idx[flag]
      if not opt then
        errors.raise(errors.NOT_FOUND, msg(spec, "unknown", "%s: unknown option '%s'", name, a),
          { hint = hint(spec) })
      end
      if opt.arg then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then
            errors.raise(errors.MISSING, msg(spec, "missing", "%s: %s requires a value (%s)",
              name, flag, opt.arg), { hint = hint(spec) })
          end
        end
        if opt.multi then
          local t = opts[opt.key]
          t[#t + 1] = value
        else
          opts[opt.key] = value
        end
      else
        if value ~= nil then
          errors.raise(errors.NOT_FOUND, msg(spec, "unknown", "%s: option %s takes no value", name, flag),
            { hint = hint(spec) })
        end
        if opt.multi then
          opts[opt.key][#opts[opt.key] + 1] = true
        else
          opts[opt.key] = true
        end
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  local named = spec.positionals or {}
  for j, p in ipairs(named) do
    local v = positional[j]
    if v == nil and not p.optional then
      errors.raise(errors.MISSING, msg(spec, "missing_positional", "%s: missing argument %s", name,
        p.arg or string.upper(p[1])), { hint = hint(spec) })
    end
    opts[p.key or p[1]] = v
  end
  for j = #named + 1, #positional do
    if not spec.rest then
      errors.raise(errors.NOT_FOUND, msg(spec, "unexpected", "%s: unexpected argument '%s'", name,
        positional[j]), { hint = hint(spec) })
    end
    opts.args[#opts.args + 1] = positional[j]
  end
  return opts
end

--- Help text generated from the spec (usage, summary, options, then spec.help).
function M.help(spec)
  local ui = require "dbtool.ui"
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(ui.style("bold", "Usage: ") .. (spec.usage or spec.name))
  if spec.summary then
    add("")
    add(spec.summary)
  end
  local opts = spec.options or {}
  if #opts > 0 then
    add("")
    add(ui.style("bold", "Options:"))
    local rows, width = {}, 0
    for _, opt in ipairs(opts) do
      local names = table.concat(opt, ", ")
      if opt.arg then names = names .. " " .. opt.arg end
      rows[#rows + 1] = { names, opt.help or "" }
      if #names > width then width = #names end
    end
    rows[#rows + 1] = { "-h, --help", "show this help" }
    if width < 10 then width = 10 end
    for _, r in ipairs(rows) do
      add(string.format("  %-" .. width .. "s  %s", r[1], r[2]))
    end
  end
  if spec.help and spec.help ~= "" then
    add("")
    add((spec.help:gsub("%s+$", "")))
  end
  return table.concat(out, "\n") .. "\n"
end

return M
