-- The one command engine of every program (database, migrator, rickdb, postgres-init,
-- postgres-cleanup, db-ops, db-tool): parsing, dispatch, help, "did you mean", and the
-- mapping of errors to exit codes. Completions (dbtool.complete) and man pages
-- (dbtool.manpage) are generated from the same specs.
--
-- A spec is a command or a group.
--
--   command = { name = "deploy", summary = "one line", usage = "database deploy [options]",
--     options = {
--       { "-c", "--cleanup", help = "..." },                             -- flag
--       { "-u", "--url", arg = "URL", help = "..." },                    -- value
--       { "-v", "--set", arg = "NAME=VALUE", multi = true },             -- repeated value
--       { "--color", arg = "WHEN", choices = { "auto", "always", "never" } },
--       { "--wait", optional = "SECONDS" },     -- flag, or a value after '=': true | "30"
--     },
--     positionals = { { "backup", optional = true, help = "..." } },   -- opts.backup
--     rest = "ARGS",             -- further positionals go to opts.args (else: exit 9)
--     help = [[text after the options]],
--     messages = { unknown = "%s argument %s does not exist", ... },   -- the original's words
--     raw = true,                -- run() receives the argument array unparsed
--     pass_unknown = true,       -- unknown options go to opts.unknown instead of failing
--     run = function(ctx, opts) return 0 end }
--
--   group = { name = "migrator", summary = "...", usage = "...",
--     commands = "dbtool.migrator.cmd.",   -- module prefix: <prefix><name>, '-' → '_'
--              | { name = "module.name" | spec, ... },
--     options = { ... , anywhere = true },  -- group options (anywhere: also after the command)
--     aliases = { fetch = "status" }, project_key = "migrator ",   -- db-tool.lua commands
--     interspersed = true,      -- the command's own options may come before its name
--     command_anywhere = true,  -- the command is the first word that names one
--     leading = "database",     -- rickdb: an optional word before the command
--     environment = { { "VAR", "meaning" } }, exit_codes = { { 0, "ok" } }, files = {...},
--     hooks: no_command(state), unknown_command(word, state), setup(state), context(ctx),
--            before_run(ctx, opts, entry), report(e, ns) → exit code, command_help(spec, path),
--            around_run(ctx, opts, entry, run) → exit code (run() runs the command once:
--            rickdb --all runs it per database) }
--
-- Commands are found as `database` always found them: a command of the project file
-- (`${DATABASE_DIR}/db-tool.lua`, key "<project_key><name>"), else the module
-- <prefix><name> through the module search (project `lua/` → DB_TOOL_LUA_PATH → built-in;
-- `dbtool.builtin.<...>` is the built-in one, for wrapping).
local errors = require "dbtool.errors"

local M = {}

--- The namespace of the command running now ("db deploy", "migrator"): error reports use it.
M.namespace = "db-tool"

-- ---------------------------------------------------------------- names and suggestions

--- Edit distance with adjacent transpositions (optimal string alignment).
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local v = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        v = math.min(v, prev2[j - 2] + 1)
      end
      cur[j] = v
    end
    prev2, prev = prev, cur
  end
  return prev[lb]
end

--- The candidates closest to `word` (a typo or an unambiguous start), best first; {} when
--- none is close enough.
function M.suggest(word, candidates)
  local lw = word:lower()
  local limit = #lw <= 3 and 1 or 2
  local best, out = math.huge, {}
  local seen = {}
  for _, c in ipairs(candidates) do
    if not seen[c] then
      seen[c] = true
      local d = M.distance(lw, c:lower())
      if #lw >= 2 and c:lower():sub(1, #lw) == lw then d = math.min(d, 1) end
      local stripped = lw:gsub("^%-+", "")
      if #stripped >= 2 and c:lower():gsub("^%-+", ""):sub(1, #stripped) == stripped then
        d = math.min(d, 1)
      end
      if d <= limit and d < #c then
        if d < best then best, out = d, { c } elseif d == best then out[#out + 1] = c end
      end
    end
  end
  table.sort(out)
  while #out > 3 do table.remove(out) end
  return out
end

local function did_you_mean(word, candidates)
  local s = M.suggest(word, candidates)
  if #s == 0 then return nil end
  local q = {}
  for i, c in ipairs(s) do q[i] = "'" .. c .. "'" end
  return "did you mean " .. table.concat(q, " or ") .. "?"
end
M.did_you_mean = did_you_mean

local function join_hints(...)
  local out = {}
  for i = 1, select("#", ...) do
    local h = select(i, ...)
    if h then out[#out + 1] = h end
  end
  if #out == 0 then return nil end
  return table.concat(out, "\n")
end

-- ---------------------------------------------------------------- options

local function key_of(opt)
  if opt.key then return opt.key end
  for _, n in ipairs(opt) do
    if n:sub(1, 2) == "--" then return (n:sub(3):gsub("-", "_")) end
  end
  return (opt[1]:gsub("^%-+", ""):gsub("-", "_"))
end

--- flag → option of a list of options (cached on the list).
local function index_of(options)
  if options._index then return options._index end
  local idx = {}
  for _, opt in ipairs(options) do
    opt.key = key_of(opt)
    for _, n in ipairs(opt) do idx[n] = opt end
  end
  rawset(options, "_index", idx)
  return idx
end

local function flags_of(options, out)
  out = out or {}
  for _, opt in ipairs(options or {}) do
    if not opt.hidden then
      for _, n in ipairs(opt) do out[#out + 1] = n end
    end
  end
  return out
end

-- The message `which` of the spec (or of a group above it), %s-formatted with the values.
local function message(chain, which, default, ...)
  for _, s in ipairs(chain) do
    local m = s.messages and s.messages[which]
    if type(m) == "function" then return m(...) end
    if m then return string.format(m, ...) end
  end
  return string.format(default, ...)
end

-- The exit code of a usage error: 9 (unknown), 3 (missing), unless a program keeps its own.
local function usage_code(chain, default)
  for _, s in ipairs(chain) do
    if s.usage_exit then return s.usage_exit end
  end
  return default
end

local function help_hint(chain, path)
  for _, s in ipairs(chain) do
    if s.help_hint ~= nil then return s.help_hint or nil end
  end
  return "see '" .. path .. " --help'"
end

local function check_choice(opt, value, chain, path, name)
  if not opt.choices then return end
  for _, c in ipairs(opt.choices) do if c == value then return end end
  errors.raise(usage_code(chain, errors.NOT_FOUND),
    string.format("%s: invalid value '%s' for %s (one of: %s)", name, value, opt[#opt],
      table.concat(opt.choices, ", ")),
    { hint = join_hints(did_you_mean(value, opt.choices), help_hint(chain, path)) })
end

--- "--opt=value" → "--opt", "value"; anything else → itself, nil.
local function split_flag(a)
  local eq = a:find("=", 3, true)
  if a:sub(1, 2) == "--" and eq then return a:sub(1, eq - 1), a:sub(eq + 1) end
  return a, nil
end

local function missing_value(chain, path, name, flag, opt)
  errors.raise(usage_code(chain, errors.MISSING),
    message(chain, "missing", "%s: %s requires a value (%s)", name, flag, opt.arg),
    { hint = help_hint(chain, path) })
end

local function store(target, opt, value)
  if opt.list then
    local l = target[opt.list] or {}
    target[opt.list] = l
    l[#l + 1] = { opt[1], value }
  elseif opt.multi then
    local t = target[opt.key]
    if type(t) ~= "table" then t = {}; target[opt.key] = t end
    t[#t + 1] = value
  else
    target[opt.key] = value
  end
  if opt.on then opt.on(value, target) end
end

--- Parse `argv` (from index `first`, default 1) for the command `spec`. Returns the options
--- table: keys from the long option names ('-' → '_'), positionals by name, further ones in
--- opts.args, unknown options (pass_unknown) in opts.unknown, -h/--help as opts.help.
--- `o` (optional): {globals = options of the groups above (accepted here too), into = where
--- their values go, chain = specs for messages, path = "database deploy", name = the name in
--- messages ("secrets load"), siblings = function returning flag → another command having it}.
function M.parse(spec, argv, first, o)
  o = o or {}
  local chain = o.chain or { spec }
  local name = o.name or spec.prog or spec.name or "db-tool"
  local path = o.path or spec.prog or spec.name or "db-tool"
  local idx = index_of(spec.options or {})
  local gidx = o.globals and index_of(o.globals) or {}
  local into = o.into or {}
  local opts = { args = {}, unknown = {} }
  for _, opt in ipairs(spec.options or {}) do
    if opt.multi then opts[opt.key] = {} end
    if opt.default ~= nil then opts[opt.key] = opt.default end
  end
  local i = first or 1
  -- -h/--help anywhere before `--` (or the first positional when options stop there) wins
  if not spec.no_help then
    for j = i, #argv do
      local a = argv[j]
      if a == "--" or (spec.stop_at_positional and a:sub(1, 1) ~= "-") then break end
      if a == "-h" or a == "--help" then
        opts.help = true
        return opts
      end
    end
  end
  local function lookup(flag)
    local opt = idx[flag]
    if opt then return opt, opts end
    opt = gidx[flag]
    if opt then return opt, into end
  end
  local function unknown(a)
    if spec.pass_unknown then
      opts.unknown[#opts.unknown + 1] = a
      return
    end
    local flag = split_flag(a)
    local other = o.siblings and o.siblings()[flag]
    local hint
    if other then
      errors.raise(usage_code(chain, errors.NOT_FOUND),
        message(chain, "scope", message(chain, "unknown", "%s: unknown option '%s'", name, flag), name, flag),
        { hint = join_hints(flag .. " is an option of '" .. other .. "'", help_hint(chain, path)) })
    end
    local cands = flags_of(spec.options)
    if o.globals then flags_of(o.globals, cands) end
    if not spec.no_help then cands[#cands + 1] = "--help" end
    hint = did_you_mean(flag, cands)
    errors.raise(usage_code(chain, errors.NOT_FOUND),
      message(chain, "unknown", "%s: unknown option '%s'", name, a),
      { hint = join_hints(hint, help_hint(chain, path)) })
  end
  local function missing(flag, opt) missing_value(chain, path, name, flag, opt) end
  local positional = {}
  local only_positionals = false
  while i <= #argv do
    local a = argv[i]
    if not only_positionals and a == "--" then
      only_positionals = true
    elseif not only_positionals and a:sub(1, 1) == "-" and a ~= "-" then
      local flag, value = split_flag(a)
      local opt, target = lookup(flag)
      if opt then
        if opt.arg then
          if value == nil then
            i = i + 1
            value = argv[i]
            if value == nil then missing(flag, opt) end
          end
          check_choice(opt, value, chain, path, name)
          store(target, opt, value)
        else
          if value ~= nil and not opt.optional then
            errors.raise(usage_code(chain, errors.NOT_FOUND),
              message(chain, "novalue", "%s: option %s takes no value", name, flag),
              { hint = help_hint(chain, path) })
          end
          -- optional = "METAVAR": a flag that may carry a value after '=' (--wait[=SECONDS])
          store(target, opt, value == nil and true or value)
        end
      elseif a:sub(2, 2) ~= "-" and #a > 2 then
        -- bundled short options: -PH, -cPH; a value option takes the rest (-uURL) or the next
        local steps, k = {}, 2
        while k <= #a do
          local f = "-" .. a:sub(k, k)
          local bopt, btarget = lookup(f)
          if not bopt then steps = nil; break end
          if bopt.arg then
            local v = a:sub(k + 1)
            steps[#steps + 1] = { bopt, btarget, v ~= "" and v or nil, f }
            break
          end
          steps[#steps + 1] = { bopt, btarget, true, f }
          k = k + 1
        end
        if not steps then
          unknown(a)
        else
          for _, s in ipairs(steps) do
            local v = s[3]
            if v == nil then
              i = i + 1
              v = argv[i]
              if v == nil then missing(s[4], s[1]) end
            end
            if s[1].arg then check_choice(s[1], v, chain, path, name) end
            store(s[2], s[1], v)
          end
        end
      else
        unknown(a)
      end
    else
      if spec.stop_at_positional then
        opts.rest_index = i
        for j = i, #argv do opts.args[#opts.args + 1] = argv[j] end
        break
      end
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if spec.stop_at_positional then return opts end
  local named = spec.positionals or {}
  for j, p in ipairs(named) do
    local v = positional[j]
    if v == nil and not p.optional then
      errors.raise(usage_code(chain, errors.MISSING),
        message(chain, "missing_positional", "%s: missing argument %s", name, p.arg or string.upper(p[1])),
        { hint = help_hint(chain, path) })
    end
    if v ~= nil and p.choices then check_choice(p, v, chain, path, name) end
    opts[p.key or p[1]] = v
  end
  for j = #named + 1, #positional do
    if not spec.rest then
      errors.raise(usage_code(chain, errors.NOT_FOUND),
        message(chain, "unexpected", "%s: unexpected argument '%s'", name, positional[j]),
        { hint = help_hint(chain, path) })
    end
    opts.args[#opts.args + 1] = positional[j]
  end
  opts.positional = positional
  return opts
end

-- ---------------------------------------------------------------- help

local function option_rows(options, rows, width)
  for _, opt in ipairs(options or {}) do
    if not opt.hidden then
      local names = table.concat(opt, ", ")
      if opt.arg then names = names .. " " .. opt.arg end
      if opt.optional then names = names .. "[=" .. opt.optional .. "]" end
      local text = opt.help or ""
      if opt.choices and not text:find(opt.choices[1], 1, true) then
        text = text .. (text ~= "" and " " or "") .. "(" .. table.concat(opt.choices, "|") .. ")"
      end
      rows[#rows + 1] = { names, text }
      if #names > width then width = #names end
    end
  end
  return rows, width
end

M.COLUMNS = 92

--- `text` cut into lines of at most `width` columns at spaces.
function M.wrap(text, width)
  local lines, line = {}, ""
  for word in text:gmatch("%S+") do
    if line == "" then
      line = word
    elseif #line + 1 + #word > width then
      lines[#lines + 1] = line
      line = word
    else
      line = line .. " " .. word
    end
  end
  if line ~= "" or #lines == 0 then lines[#lines + 1] = line end
  return lines
end

local function add_rows(add, rows, width, indent)
  local pad = indent .. string.rep(" ", width + 2)
  local avail = math.max(30, M.COLUMNS - #pad)
  for _, r in ipairs(rows) do
    local text = M.wrap(r[2], avail)
    if r[2] == "" then
      add(indent .. r[1])
    elseif #r[1] > width then
      add(indent .. r[1])
      for _, l in ipairs(text) do add(pad .. l) end
    else
      add(string.format("%s%-" .. width .. "s  %s", indent, r[1], text[1]))
      for k = 2, #text do add(pad .. text[k]) end
    end
  end
end

--- Environment / exit-code / files sections of a spec as help text.
function M.sections(spec)
  local ui = require "dbtool.ui"
  local out = {}
  local function add(s) out[#out + 1] = s end
  if spec.environment and #spec.environment > 0 then
    add("")
    add(ui.style("bold", "Environment:"))
    local width = 0
    for _, e in ipairs(spec.environment) do if #e[1] > width and #e[1] <= 18 then width = #e[1] end end
    add_rows(add, spec.environment, width, "  ")
  end
  if spec.exit_codes and #spec.exit_codes > 0 then
    add("")
    add(ui.style("bold", "Exit codes:"))
    local rows = {}
    for _, c in ipairs(spec.exit_codes) do rows[#rows + 1] = { tostring(c[1]), c[2] } end
    add_rows(add, rows, 3, "  ")
  end
  return out
end

--- Help text of a command: usage, summary, options, then spec.help.
function M.help(spec, o)
  o = o or {}
  local ui = require "dbtool.ui"
  local out = {}
  local function add(s) out[#out + 1] = s end
  local usage = spec.usage and spec.usage:gsub("{path}", ((o.path or spec.name):gsub("%%", "%%%%")))
  add(ui.style("bold", "Usage: ") .. (usage or o.path or spec.name))
  if spec.summary then
    add("")
    add(spec.summary)
  end
  local rows, width = option_rows(spec.options, {}, 10)
  if #rows > 0 or not spec.no_help then
    rows[#rows + 1] = { "-h, --help", "show this help" }
    add("")
    add(ui.style("bold", "Options:"))
    add_rows(add, rows, math.min(width, 28), "  ")
  end
  if o.globals then
    local grows, gwidth = option_rows(o.globals, {}, 10)
    if #grows > 0 then
      add("")
      add(ui.style("bold", (o.globals_title or "Options of " .. (o.parent or "the program")) .. ":"))
      add_rows(add, grows, math.min(gwidth, 28), "  ")
    end
  end
  if spec.help and spec.help ~= "" then
    add("")
    add((spec.help:gsub("%s+$", "")))
  end
  for _, l in ipairs(M.sections(spec)) do add(l) end
  return table.concat(out, "\n") .. "\n"
end

-- ---------------------------------------------------------------- groups

function M.is_group(spec)
  return type(spec) == "table" and spec.commands ~= nil and spec.run == nil
end

local function module_of(group, name)
  if type(group.commands) ~= "string" then return nil end
  if name:find("[^%w_-]") or name:sub(1, 1) == "-" then return nil end
  return group.commands .. name:gsub("%-", "_")
end

-- Entries of project directories (`lua/` of the project and DB_TOOL_LUA_PATH) under the
-- module prefix: names of .lua files and of directories holding init.lua.
local function project_module_names(prefix)
  local loader = require "dbtool.loader"
  local names = {}
  local sub = prefix:gsub("%.$", ""):gsub("%.", "/")
  for _, p in ipairs(loader.paths) do
    local dir = p.path:match("^([^;?]*)/%?%.lua")
    local probe = dir and io.open(dir .. "/" .. sub)  -- (luaposix only when there is one)
    if probe then probe:close() end
    if probe then
      local ok, dirent = pcall(require, "posix.dirent")
      local okf, files = false, nil
      if ok then okf, files = pcall(dirent.dir, dir .. "/" .. sub) end
      if okf and files then
        for _, f in ipairs(files) do
          local leaf = f:match("^(.+)%.lua$")
          if not leaf and f ~= "." and f ~= ".." then
            local init = io.open(dir .. "/" .. sub .. "/" .. f .. "/init.lua")
            if init then init:close(); leaf = f end
          end
          if leaf and not leaf:find("%.") then names[#names + 1] = prefix .. leaf end
        end
      end
    end
  end
  return names
end

--- The project's commands for this group: {name = spec} from db-tool.lua.
local function project_commands(group, proj)
  local out = {}
  if not (proj and proj.commands) then return out end
  local key = group.project_key
  if key == nil then return out end
  for k, cmd in pairs(proj.commands) do
    if type(k) == "string" and k:sub(1, #key) == key then
      local rest = k:sub(#key + 1)
      if rest ~= "" and not rest:find(" ", 1, true) then out[rest] = cmd end
    end
  end
  return out
end

local function warn(msg, ...)
  require("dbtool.log").ns(M.namespace):warn(msg, ...)
end

--- Every command of a group: {name = {module =, summary =, origin =}}. Modules that fail to
--- load are skipped with a warning (the project's) or left out (the built-ins').
function M.commands(group, proj)
  local loader = require "dbtool.loader"
  local cmds = {}
  local function add(modname)
    local ok, mod = pcall(require, modname)
    if not ok and loader.origin[modname] ~= "builtin"
        and not tostring(errors.is(mod) and mod.msg or mod)
          :find("module '" .. modname .. "' not found", 1, true) then
      local e = errors.wrap(mod)
      warn("%s%s", e.where and (e.where .. ": ") or "", e.msg)
    end
    -- (a group's own init.lua is the group, not one of its commands)
    if ok and type(mod) == "table" and not M.same_group(mod, group) and (mod.run or M.is_group(mod)) then
      local name = mod.name or modname:match("([^.]+)$"):gsub("_", "-")
      if not mod.hidden then
        cmds[name] = { module = mod, summary = mod.summary, origin = loader.origin[modname] }
      end
    end
  end
  if type(group.commands) == "string" then
    for _, modname in ipairs(loader.builtin_modules(group.commands)) do add(modname) end
    for _, modname in ipairs(project_module_names(group.commands)) do add(modname) end
  else
    for name, c in pairs(group.commands) do
      local mod = c
      if type(c) == "string" then
        local ok, m = pcall(require, c)
        mod = ok and m or nil
      end
      if mod then cmds[name] = { module = mod, summary = mod.summary, origin = "builtin" } end
    end
  end
  for name, mod in pairs(project_commands(group, proj)) do
    local base = cmds[name]
    cmds[name] = { module = mod, origin = proj.file,
      summary = mod.summary or (base and base.summary) or "(project command)" }
  end
  return cmds
end

--- The commands of a group in the order of its help (group.order first, then by name):
--- names, and the table of M.commands.
function M.sorted(group, proj)
  local cmds = M.commands(group, proj)
  local names = {}
  for name in pairs(cmds) do names[#names + 1] = name end
  table.sort(names, function(a, b)
    local oa, ob = group.order and group.order[a], group.order and group.order[b]
    if oa and ob then return oa < ob end
    if oa or ob then return oa ~= nil end
    return a < b
  end)
  return names, cmds
end

--- Names of a group's commands (sorted), its aliases included.
function M.names(group, proj)
  local names = {}
  for name in pairs(M.commands(group, proj)) do names[#names + 1] = name end
  for alias in pairs(group.aliases or {}) do names[#names + 1] = alias end
  table.sort(names)
  return names
end

--- Is `mod` the group `group` itself (its init.lua, loaded under another name)?
function M.same_group(mod, group)
  return mod == group or (type(mod) == "table" and M.is_group(mod) and type(group.commands) == "string"
    and mod.commands == group.commands)
end

local function not_found_error(e, modname)
  return e.bug and tostring(e.msg):find("module '" .. modname .. "' not found", 1, true)
end

--- The command `word` of `group`: {module =, origin =, name =} or nil when there is none.
--- A broken module raises (exit 1 at file:line).
function M.lookup(group, word, proj)
  local loader = require "dbtool.loader"
  word = (group.aliases and group.aliases[word]) or word
  local pc = project_commands(group, proj)[word]
  if pc then
    local modname = module_of(group, word)
    if pc.options == nil and pc.raw == nil and pc.commands == nil and modname then
      local builtin = "dbtool.builtin." .. modname:gsub("^dbtool%.", "")
      if loader.has_builtin(modname) then
        local base = require(builtin)
        for _, k in ipairs { "options", "positionals", "rest", "raw", "usage", "help", "summary", "messages",
          "pass_unknown", "complete" } do
          if pc[k] == nil then pc[k] = base[k] end
        end
      end
    end
    return { module = pc, origin = proj.file, name = word }
  end
  if type(group.commands) == "table" then
    local c = group.commands[word]
    if c == nil then return nil end
    if type(c) == "string" then c = require(c) end
    return { module = c, origin = "builtin", name = word }
  end
  local modname = module_of(group, word)
  if not modname then return nil end
  local ok, mod = errors.try(require, modname)
  if not ok then
    if not_found_error(mod, modname) then return nil end
    error(mod, 0)
  end
  if M.same_group(mod, group) then return nil end
  if type(mod) ~= "table" or (type(mod.run) ~= "function" and not M.is_group(mod)) then
    errors.raise(errors.GENERIC,
      "module " .. modname .. " is not a command (it must return a table with run)",
      { where = loader.origin[modname], hint = "see HACKING.md, \"Command modules\"" })
  end
  return { module = mod, origin = loader.origin[modname], name = mod.name or word }
end

-- ---------------------------------------------------------------- running

--- Exit code of a command's return value: nil/true → 0, false → 1, an integer as is.
function M.exit_code(res)
  if res == nil or res == true then return 0 end
  if res == false then return 1 end
  if math.type(res) == "integer" then return res end
  errors.raise(errors.BUG, "command returned a " .. type(res) .. " (expected an exit code)")
end

--- Run the command `entry` with `opts` in `ctx`. Project code runs sandboxed in its failures
--- (dbtool.project.run_command: errors and odd return values are the project's, exit 1
--- naming the file, not db-tool bugs).
function M.execute(entry, ctx, opts)
  local cmd = entry.module
  if entry.origin == "builtin" then return cmd.run(ctx, opts) end
  return require("dbtool.project").run_command(cmd.run, ctx, opts, entry.origin)
end

-- options every program has (after its own in the help): version, colour, pager
M.STANDARD = {
  { "-V", "--version", help = "print the version", anywhere = true, key = "version" },
  { "--color", arg = "WHEN", choices = { "auto", "always", "never" }, anywhere = true,
    help = "colour: auto (on a terminal; NO_COLOR, FORCE_COLOR, TERM=dumb), always, never",
    on = function(v) require("dbtool.ui").set_color(v) end },
  { "--no-pager", anywhere = true, help = "never page long output (also DB_TOOL_PAGER=cat)",
    on = function() require("dbtool.ui").set_pager(false) end },
}

--- The version line every program prints for -V/--version: one line for all of them, naming
--- the migrator version we are compatible with (the original's `migrator -V` said
--- "migrator version 0.0.1", which scripts grep for).
function M.version_line()
  local core = require "dbtool.core"
  return "db-tool " .. core.version .. " (" .. _VERSION .. "; migrator version "
    .. require("dbtool.migrate").VERSION .. ")"
end

--- The options in effect in `group`: its own, the standard ones (at the top level), and
--- the `anywhere` ones of the groups above (`inherited`).
function M.group_options(group, inherited)
  local list = {}
  for _, o in ipairs(group.options or {}) do list[#list + 1] = o end
  local seen = index_of(list)
  local function add(o)
    for _, n in ipairs(o) do if seen[n] then return end end
    list[#list + 1] = o
    o.key = key_of(o)
    for _, n in ipairs(o) do seen[n] = o end
  end
  if not inherited and not group.no_standard then
    for _, o in ipairs(M.STANDARD) do add(o) end
  end
  for _, o in ipairs(inherited or {}) do add(o) end
  return list
end

local group_options = M.group_options

--- The options of a list that are accepted after a subcommand too.
function M.anywhere_of(options)
  local out = {}
  for _, o in ipairs(options) do if o.anywhere then out[#out + 1] = o end end
  return out
end
local anywhere_of = M.anywhere_of

-- flag → name of the first command of `group` that has it (for "an option of 'list'").
local function sibling_flags(group, proj, except)
  local out = {}
  for name, c in pairs(M.commands(group, proj)) do
    if name ~= except and not M.is_group(c.module) then
      for _, o in ipairs(c.module.options or {}) do
        for _, n in ipairs(o) do
          if not out[n] or name < out[n] then out[n] = name end
        end
      end
    end
  end
  return out
end

local function path_of(state, name)
  return state.path .. " " .. name
end

--- The name of command `name` of `state`'s group below the program: "deploy", "secrets load".
function M.relative(state, name)
  local root = state.root.prog or state.root.name
  local p = path_of(state, name)
  if p:sub(1, #root + 1) == root .. " " then return p:sub(#root + 2) end
  return name
end

local function the_project(state)
  if state.project_loaded then return state.project end
  state.project_loaded = true
  local project = require "dbtool.project"
  if not state.for_help then
    state.project = project.load()
    return state.project
  end
  local ok, p = pcall(project.load)
  if ok then
    state.project = p
  else
    local e = errors.wrap(p)
    warn("ignoring the project file: %s%s", e.where and (e.where .. ": ") or "", e.msg)
  end
  return state.project
end

--- Help of a group: usage, summary, its commands, options, help text, environment, exit codes.
function M.group_help(group, state)
  local ui = require "dbtool.ui"
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(ui.style("bold", "Usage: ") .. (group.usage or (state.path .. " <command> [options]")))
  if group.summary then
    add("")
    add(group.description or group.summary)
  end
  local names, cmds = M.sorted(group, the_project(state))
  if #names > 0 then
    add("")
    add(ui.style("bold", (group.commands_title or "Subcommands") .. ":"))
    local rows, width = {}, 0
    for _, name in ipairs(names) do
      local label = name
      local c = cmds[name].module
      if c.synopsis then label = name .. " " .. c.synopsis end
      rows[#rows + 1] = { label, cmds[name].summary or "" }
      if #label > width and #label <= 30 then width = #label end
    end
    add_rows(add, rows, math.max(width, 16), "  ")
  end
  local rows, width = option_rows(state.options, {}, 10)
  rows[#rows + 1] = { "-h, --help", "show this help; `" .. state.path .. " <command> --help` for one" }
  add("")
  add(ui.style("bold", (group.options_title or "Options") .. ":"))
  add_rows(add, rows, math.min(width, 24), "  ")
  if group.help and group.help ~= "" then
    add("")
    add((group.help:gsub("%s+$", "")))
  end
  for _, l in ipairs(M.sections(group)) do add(l) end
  return table.concat(out, "\n") .. "\n"
end

local function print_help(text, page)
  if page then
    require("dbtool.ui").page(text)
  else
    io.stdout:write(text)
  end
end

local function show_command_help(group, entry, state)
  local spec = entry.module
  local path = path_of(state, entry.name)
  if M.is_group(spec) then
    local sub = { path = path, options = group_options(spec, anywhere_of(state.options)), for_help = true,
      project = state.project, project_loaded = state.project_loaded }
    io.stdout:write(spec.render_help and spec.render_help(sub) or M.group_help(spec, sub))
  elseif group.command_help then
    io.stdout:write(group.command_help(spec, path, state))
  else
    local globals = {}
    for _, o in ipairs(state.options) do if o.anywhere and not o.hidden then globals[#globals + 1] = o end end
    io.stdout:write(M.help(spec, { path = path, globals = #globals > 0 and globals or nil,
      parent = state.path }))
  end
  return 0
end

local function unknown_command(group, word, state)
  if group.unknown_command then group.unknown_command(word, state) end
  local names = M.names(group, the_project(state))
  local chain = state.chain
  errors.raise(usage_code(chain, errors.NOT_FOUND),
    message(chain, "unknown_command", "%s: unknown subcommand '%s'", state.name, word),
    { hint = join_hints(did_you_mean(word, names), group.list_hint
      or ("see '" .. state.path .. " --help' for the list")) })
end

local function is_help_word(group, a)
  for _, w in ipairs(group.help_words or {}) do if w == a then return true end end
  return false
end

-- Find the command word, handling the group's own options, help and version on the way.
-- Returns the entry and the arguments left for it, or an exit code.
local function route(group, argv, state)
  local gidx = index_of(state.options)
  local pending, cmdword, i = {}, nil, 1
  local union -- flag → option of any command (interspersed groups), built when needed
  local function any_command_option(flag)
    if not union then
      union = {}
      for _, c in pairs(M.commands(group, the_project(state))) do
        for _, o in ipairs(c.module.options or {}) do
          for _, n in ipairs(o) do union[n] = union[n] or o end
        end
      end
    end
    return union[flag]
  end
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      if cmdword == nil and group.command_anywhere then
        for j = i, #argv do pending[#pending + 1] = argv[j] end
        i = #argv + 1
        break
      end
      i = i + 1
      if cmdword == nil then cmdword = argv[i]; i = i + 1 end
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" and not is_help_word(group, a) then
      local flag, value = split_flag(a)
      if flag == "-h" or flag == "--help" then return nil, { table.unpack(argv, i + 1) }, "help" end
      local opt = gidx[flag]
      if opt then
        if opt.arg then
          if value == nil then
            i = i + 1
            value = argv[i]
            if value == nil then missing_value(state.chain, state.path, state.path, flag, opt) end
          end
          check_choice(opt, value, state.chain, state.path, state.path)
          store(state.globals, opt, value)
        else
          if value ~= nil then
            errors.raise(usage_code(state.chain, errors.NOT_FOUND),
              message(state.chain, "novalue", "%s: option %s takes no value", state.path, flag),
              { hint = help_hint(state.chain, state.path) })
          end
          store(state.globals, opt, true)
        end
        if state.globals.version then return nil, nil, "version" end
      elseif group.interspersed then
        pending[#pending + 1] = a
        local copt = value == nil and any_command_option(flag)
        if copt and copt.arg and argv[i + 1] ~= nil then
          i = i + 1
          pending[#pending + 1] = argv[i]
        end
      else
        local cands = flags_of(state.options)
        errors.raise(usage_code(state.chain, errors.NOT_FOUND),
          message(state.chain, "unknown_global", "%s: unknown option '%s'", state.path, a),
          { hint = join_hints(did_you_mean(flag, cands), group.option_hint
            or ("options of a subcommand go after it; see '" .. state.path .. " --help'")) })
      end
    else
      if is_help_word(group, a) then return nil, { table.unpack(argv, i + 1) }, "help" end
      if group.command_anywhere and not M.lookup(group, a, the_project(state)) then
        pending[#pending + 1] = a
      elseif group.leading and state.leading == nil and not M.lookup(group, a, the_project(state)) then
        local more, j = false, i + 1
        while j <= #argv do
          local b = argv[j]
          if b:sub(1, 1) ~= "-" then more = true; break end
          local bopt = gidx[b] or any_command_option(b)
          if bopt and bopt.arg then j = j + 1 end
          j = j + 1
        end
        if not more then cmdword = a; i = i + 1; break end
        state.leading = a
        state.globals[group.leading] = a
      else
        cmdword = a
        i = i + 1
        break
      end
    end
    i = i + 1
  end
  local rest = {}
  for _, a in ipairs(pending) do rest[#rest + 1] = a end
  for j = i, #argv do rest[#rest + 1] = argv[j] end
  if cmdword == nil then
    if group.command_anywhere then
      for _, a in ipairs(pending) do
        if a:sub(1, 1) ~= "-" then
          if a == "--" then break end
          unknown_command(group, a, state)
        end
      end
    end
    return nil, rest, "none"
  end
  local entry = M.lookup(group, cmdword, the_project(state))
  if not entry then unknown_command(group, cmdword, state) end
  return entry, rest
end

local function apply_setup(group, state)
  if group.setup then group.setup(state.globals, state) end
end

--- Parse `argv` for `group` without running anything. Returns a plan:
---   {action = "version" | "help" | "none" | "run", state =, entry =, opts =, rest =, topic =}
--- ("help": the group's help, or the command `topic`'s; "none": no command was given;
--- "run": entry.module with opts). The state holds the group, path and global options.
function M.prepare(group, argv, parent)
  local state = {
    group = group,
    name = group.name,
    path = parent and path_of(parent, group.name) or (group.prog or group.name),
    root = parent and parent.root or group,
    globals = parent and parent.globals or {},
    chain = { group, table.unpack(parent and parent.chain or {}) },
    project = parent and parent.project, project_loaded = parent and parent.project_loaded,
    parent = parent,
  }
  state.options = group_options(group, parent and anywhere_of(parent.options) or nil)
  if not parent then
    -- `-h`/`--help` after the subcommand is that subcommand's: no project file needed
    for _, a in ipairs(argv) do
      if a == "--" then break end
      if a == "-h" or a == "--help" then state.for_help = true end
    end
  else
    state.for_help = parent.for_help
  end
  M.namespace = M.namespace_of(state.root, state.path, state)
  local entry, rest, action = route(group, argv, state)
  apply_setup(group, state)
  if action then
    if action == "help" then state.for_help = true end
    local topic
    if action == "help" then
      for _, a in ipairs(rest) do
        if a:sub(1, 1) ~= "-" then topic = a; break end
      end
    end
    return { action = action, state = state, rest = rest, topic = topic }
  end
  local spec = entry.module
  local cpath = path_of(state, entry.name)
  M.namespace = M.namespace_of(state.root, cpath, state)
  if M.is_group(spec) then return M.prepare(spec, rest, state) end
  local opts
  local chain = { spec, table.unpack(state.chain) }
  if spec.raw then
    -- the program's `anywhere` options are still its own (database -u in `database migrator`)
    opts = {}
    local aidx = index_of(anywhere_of(state.options))
    local k = 1
    while k <= #rest do
      local a = rest[k]
      if a == "--" then
        for j = k, #rest do opts[#opts + 1] = rest[j] end
        break
      end
      local flag, value = split_flag(a)
      local opt = aidx[flag]
      if opt and opt.key ~= "version" then
        if opt.arg and value == nil then
          k = k + 1
          value = rest[k]
          if value == nil then missing_value(state.chain, state.path, state.path, flag, opt) end
        end
        store(state.globals, opt, opt.arg and value or true)
      else
        opts[#opts + 1] = a
      end
      k = k + 1
    end
  else
    if group.ambiguous then
      -- a second command word (not an option's value) makes the line ambiguous (migrator)
      local idx, gidx = index_of(spec.options or {}), index_of(anywhere_of(state.options))
      local k = 1
      while k <= #rest do
        local a = rest[k]
        if a == "--" then break end
        if a:sub(1, 1) == "-" then
          local o = idx[a] or gidx[a]
          if o and o.arg then k = k + 1 end
        else
          local other = M.lookup(group, a, state.project)
          if other and other.module ~= spec then
            errors.raise(errors.AMBIGUOUS, string.format(group.ambiguous, entry.name, a))
          end
        end
        k = k + 1
      end
    end
    opts = M.parse(spec, rest, 1, { globals = anywhere_of(state.options), into = state.globals, chain = chain,
      path = cpath, name = M.relative(state, entry.name),
      siblings = function() return sibling_flags(group, state.project, entry.name) end })
    if state.globals.version then return { action = "version", state = state } end
    if opts.help then return { action = "help", state = state, entry = entry, topic = entry.name } end
  end
  apply_setup(group, state)
  return { action = "run", state = state, entry = entry, opts = opts, path = cpath }
end

--- Dispatch `argv` in `group`: help, version, or the command. Returns the command's exit
--- code; errors are raised (M.main reports them). `parent`: the state of the group above.
function M.dispatch(group, argv, parent)
  local plan = M.prepare(group, argv, parent)
  local state = plan.state
  group = state.group
  if plan.action == "version" then
    io.stdout:write(M.version_line(), "\n")
    return 0
  elseif plan.action == "help" then
    local e = plan.entry or (plan.topic and M.lookup(group, plan.topic, the_project(state)))
    if e then return show_command_help(group, e, state) end
    print_help(group.render_help and group.render_help(state) or M.group_help(group, state), true)
    return 0
  elseif plan.action == "none" then
    if group.no_command then return group.no_command(state, plan.rest) end
    print_help(group.render_help and group.render_help(state) or M.group_help(group, state), true)
    return 0
  end
  local entry, opts = plan.entry, plan.opts
  local ctx = M.context(state, entry, plan.path)
  local root = state.root
  if root.before_run then root.before_run(ctx, opts, entry) end
  if group ~= root and group.before_run then group.before_run(ctx, opts, entry) end
  if group.around_run then
    return group.around_run(ctx, opts, entry, function() return M.exit_code(M.execute(entry, ctx, opts)) end)
  end
  return M.exit_code(M.execute(entry, ctx, opts))
end

--- A program that is one command (postgres-init, postgres-cleanup): parse, help, version,
--- run. Returns the exit code; errors are raised.
function M.single(spec, argv)
  local path = spec.prog or spec.name
  local globals = {}
  local options = group_options({ options = {} })
  M.namespace = M.namespace_of(spec, path)
  local opts = M.parse(spec, argv, 1, { globals = options, into = globals, chain = { spec }, path = path,
    name = path })
  if globals.version then
    io.stdout:write(M.version_line(), "\n")
    return 0
  end
  if opts.help then
    io.stdout:write(M.help(spec, { path = path, globals = options, globals_title = "Common options" }))
    return 0
  end
  local entry = { module = spec, origin = "builtin", name = path }
  local ctx = M.context({ root = spec, globals = globals }, entry, path)
  return M.exit_code(M.execute(entry, ctx, opts))
end

--- The log namespace of `path` ("database deploy") in program `root`.
function M.namespace_of(root, path, state)
  local ns = root.namespace
  if type(ns) == "function" then return ns(path, state) end
  if type(ns) == "string" then return ns end
  return path
end

--- The context a command receives.
function M.context(state, entry, path)
  local log = require "dbtool.log"
  local ns = M.namespace_of(state.root, path, state)
  M.namespace = ns
  local ctx = {
    prog = state.root.name,
    name = entry.name,
    path = path,
    log = log.ns(ns),
    globals = state.globals,
    project = state.project,
    origin = entry.origin,
    spec = entry.module,
  }
  local g = state.root
  if g.context then g.context(ctx, state) end
  return ctx
end

--- Run the program `group` with `argv`: returns the exit code. Errors are reported here,
--- once, by the program's reporter (its original's wording and codes).
function M.main(group, argv)
  local run = M.is_group(group) and M.dispatch or M.single
  local ok, res = errors.try(run, group, argv)
  io.stdout:flush()
  if ok then return res end
  if group.report then return group.report(res, M.namespace) end
  return require("dbtool.cli").report(res, M.namespace)
end

--- Call the command `name` of `group` as a function (the Lua API): `argv` is parsed as on
--- the command line, `named` options are set over it, `globals` as the program's options.
function M.call(group, name, argv, named, globals)
  local saved = M.namespace
  return errors.finally(function() M.namespace = saved end, M.call_in, group, name, argv, named, globals)
end

function M.call_in(group, name, argv, named, globals)
  local state = { group = group, name = group.name, path = group.prog or group.name, root = group,
    globals = globals or {}, chain = { group } }
  state.options = group_options(group)
  local entry = M.lookup(group, name, the_project(state))
  if not entry then unknown_command(group, name, state) end
  local spec = entry.module
  local cpath = path_of(state, entry.name)
  local opts
  if M.is_group(spec) then
    -- dbtool.commands.secrets{"list", FILE}: the rest of the words go to the group
    if named and next(named) then
      errors.raise(errors.NOT_FOUND, cpath .. " takes its arguments as an array only",
        { hint = "e.g. {\"list\", \"FILE\"}" })
    end
    return M.dispatch(spec, argv, state)
  elseif spec.raw then
    if named and next(named) then
      errors.raise(errors.NOT_FOUND, cpath .. " takes its arguments as an array only")
    end
    opts = argv
  else
    opts = M.parse(spec, argv, 1, { chain = { spec, group }, path = cpath,
      name = M.relative(state, entry.name) })
    if opts.help then
      io.stdout:write(M.help(spec, { path = cpath }))
      return 0
    end
    local known = {}
    for _, o in ipairs(spec.options or {}) do known[o.key] = o end
    for _, p in ipairs(spec.positionals or {}) do known[p.key or p[1]] = p end
    for k, v in pairs(named or {}) do
      if not known[k] then
        errors.raise(errors.NOT_FOUND, cpath .. ": unknown option '" .. tostring(k) .. "'",
          { hint = "see '" .. cpath .. " --help'" })
      end
      opts[k] = v
    end
  end
  local ctx = M.context(state, entry, cpath)
  if group.before_run then group.before_run(ctx, opts, entry) end
  return M.exit_code(M.execute(entry, ctx, opts))
end

return M
