-- Fuzzer of the migration-directory scanners (dbtool.migrate layouts `dirs` and `flat`) and
-- of what the engine does with their result before touching a database. Each input is a
-- random directory tree: names with 13–15 digits, empty, long (to NAME_MAX), not UTF-8, with
-- spaces, newlines or `%`; entries that are directories, files, FIFOs, links (dangling, to
-- /dev/zero, to a directory, looping); scripts as up.sql/down.sql or up/entrypoint.sql,
-- themselves FIFOs or links. Properties, for both layouts:
--   * discover() returns a list (never raises), the same list twice, each record named as
--     the layout says (14 digits and '-' / '*.sql'), without '/', at dir/name, no duplicates;
--   * the engine's discover sorts it by the policy's comparator; plan() of `up all`, `down 1`
--     and `to <a name>` returns a plan or a structured error; prepare() of a plan (what
--     `migrate` does before the first statement) returns or raises a structured error that
--     is not a bug — in bounded time: a FIFO or a device is never opened.
--
--   require("migdir_fuzz").run{iterations = N | seconds = S, seed = n, log = fn, crash_dir = dir}
--     → {iterations =, entries =, prepared =, refused =}; raises on a violation, describing
--       the tree (written to crash_dir/migdir-crash-<n> when crash_dir is given).
-- Used by spec/unit/migdir_fuzz_spec.lua (a bounded quick run) and spec/fuzz/migration_dir.lua.
local core = require "dbtool.core"
local errors = require "dbtool.errors"
local migrate = require "dbtool.migrate"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

local M = {}

local SUFFIXES = { "", "a", "init", "add users", "caf\195\169", "caf\233\255", "x\ny", "%s%d",
  "-", "..", ".", "up.sql", "trailing ", " lead", "\0x", "\127", "\240\159\146\169" }

local function rand_name(rng, flat)
  local kind = rng(10)
  local name
  if kind <= 6 then
    local digits = ({ 13, 14, 14, 14, 15 })[rng(5)]
    local d = {}
    for i = 1, digits do d[i] = tostring(rng(0, 9)) end
    name = table.concat(d) .. (rng(4) > 1 and "-" or "_") .. SUFFIXES[rng(#SUFFIXES)]
  elseif kind <= 8 then
    name = SUFFIXES[rng(#SUFFIXES)] .. string.rep("n", rng(0, 3))
  else -- long, up to NAME_MAX once the suffix is added
    name = "20240101000000-" .. string.rep("l", rng(50, 230))
  end
  if flat and rng(3) > 1 then name = name .. (rng(4) > 1 and ".sql" or ".SQL") end
  name = name:gsub("%z", ""):gsub("/", "")
  if name == "" or name == "." or name == ".." or #name > 250 then name = "x" .. rng(1e6) end
  return name
end

local function write(path, text)
  if stat.lstat(path) then return end -- taken already (by a FIFO, maybe: never opened)
  local f = io.open(path, "wb")
  if f then f:write(text); f:close() end
end

-- Make `path` one kind of script (or leave it absent).
local function script(rng, path, tree)
  local k = rng(9)
  if k <= 4 then
    write(path, (rng(3) == 1 and "-- db-tool: no-transaction\n" or "") .. "SELECT 1;\n")
    tree[#tree + 1] = "file " .. path
  elseif k == 5 then
    write(path, "")
    tree[#tree + 1] = "empty " .. path
  elseif k == 6 then
    stat.mkfifo(path, 384)
    tree[#tree + 1] = "fifo " .. path
  elseif k == 7 then
    unistd.link("/dev/zero", path, true)
    tree[#tree + 1] = "link to /dev/zero " .. path
  elseif k == 8 then
    unistd.link(path .. ".missing", path, true)
    tree[#tree + 1] = "dangling link " .. path
  end
end

--- Build a random tree in the empty directory `dir`; returns a description (lines).
function M.build(rng, dir, flat)
  local tree = {}
  for _ = 1, rng(0, 12) do
    local name = rand_name(rng, flat)
    local path = dir .. "/" .. name
    local k = rng(10)
    if k <= 6 then
      if stat.mkdir(path, 448) == 0 then
        tree[#tree + 1] = "dir " .. path
        if rng(3) > 1 then
          script(rng, path .. "/up.sql", tree)
          script(rng, path .. "/down.sql", tree)
        else
          stat.mkdir(path .. "/up", 448)
          stat.mkdir(path .. "/down", 448)
          script(rng, path .. "/up/entrypoint.sql", tree)
          script(rng, path .. "/down/entrypoint.sql", tree)
        end
      end
    elseif k == 7 then
      script(rng, path, tree)
    elseif k == 8 then
      unistd.link(dir, path, true) -- a link to the directory itself: a loop
      tree[#tree + 1] = "loop link " .. path
    elseif k == 9 then
      stat.mkfifo(path, 384)
      tree[#tree + 1] = "fifo " .. path
    else
      write(path, "SELECT 1;\n")
      tree[#tree + 1] = "file " .. path
    end
  end
  return tree
end

local function check_error(e)
  if not errors.is(e) then return "not a structured error: " .. tostring(e) end
  if e.bug or e.exit == errors.BUG then return "reported as a db-tool bug: " .. e.msg end
  if e.msg == "" then return "empty message" end
end

local function same(a, b)
  if #a ~= #b then return false end
  local names = {}
  for _, m in ipairs(a) do names[m.name] = m.path end
  for _, m in ipairs(b) do if names[m.name] ~= m.path then return false end end
  return true
end

--- Check one tree in `dir` with layout `name`; returns a problem or nil, and counts.
function M.check(dir, layout_name)
  local layout = migrate.layouts[layout_name] and require(migrate.layouts[layout_name])
  local ok, list = pcall(layout.discover, dir)
  if not ok then return "discover raised: " .. tostring(list) end
  if type(list) ~= "table" then return "discover returned a " .. type(list) end
  local ok2, again = pcall(layout.discover, dir)
  if not ok2 or not same(list, again) then return "discover is not repeatable" end
  local seen = {}
  for _, m in ipairs(list) do
    if type(m.name) ~= "string" or m.name:find("/", 1, true) then return "bad name " .. tostring(m.name) end
    if layout.valid_name and not layout.valid_name(m.name) then return "invalid name listed: " .. m.name end
    if m.path ~= dir .. "/" .. m.name then return "path is not dir/name: " .. tostring(m.path) end
    if seen[m.name] then return "listed twice: " .. m.name end
    seen[m.name] = true
  end
  local engine = migrate.new { layout = layout_name, dir = dir, log = { debug = function() end,
    info = function() end, notice = function() end, warn = function() end } }
  local ok3, fs = pcall(engine.discover, engine)
  if not ok3 then return "engine discover raised: " .. tostring(fs) end
  local less = require("dbtool.migrate.policy").comparator()
  for i = 2, #fs do
    if less(fs[i].name, fs[i - 1].name) then
      return "not sorted: " .. fs[i - 1].name .. " / " .. fs[i].name
    end
  end
  local counts = { prepared = 0, refused = 0 }
  local applied = {}
  for i = 1, #fs // 2 do applied[i] = { name = fs[i].name } end
  local targets = { { kind = "up", n = "all" }, { kind = "down", n = 1 } }
  if #fs > 0 then targets[#targets + 1] = { kind = "to", name = fs[#fs].name } end
  for _, target in ipairs(targets) do
    local okp, plan = pcall(migrate.plan, fs, applied, target)
    if not okp then
      local problem = check_error(plan)
      if problem then return "plan: " .. problem end
    else
      local okr, e = pcall(engine.prepare, engine, plan)
      if okr then
        counts.prepared = counts.prepared + 1
      else
        local problem = check_error(e)
        if problem then return "prepare: " .. problem end
        counts.refused = counts.refused + 1
      end
    end
  end
  return nil, #list, counts
end

local function fail(tree, what, crash_dir, n)
  local text = table.concat(tree, "\n")
  local path
  if crash_dir then
    path = crash_dir .. "/migdir-crash-" .. n
    write(path, text .. "\n")
  end
  error(string.format("migration dir fuzz: %s\ntree:\n%s%s", what, text,
    path and ("\nsaved to " .. path) or ""), 0)
end

function M.run(opts)
  local seed = opts.seed or os.time()
  math.randomseed(seed)
  local rng = math.random
  -- many small trees: on a tmpfs (/dev/shm) when there is one, a disk's metadata is slow
  local tmp = unistd.access("/dev/shm", "w") and "/dev/shm" or (os.getenv("TMPDIR") or "/tmp")
  local base = assert(require("posix.stdlib").mkdtemp(tmp .. "/db-tool-migfuzz-XXXXXX"))
  local stats = { iterations = 0, entries = 0, prepared = 0, refused = 0, seed = seed }
  local deadline = opts.seconds and (core.now() + opts.seconds)
  local ok, err = pcall(function()
    local n = 0
    while true do
      n = n + 1
      if opts.iterations and n > opts.iterations then break end
      if deadline and core.now() > deadline then break end
      local layout = n % 2 == 0 and "flat" or "dirs"
      local dir = base .. "/" .. n
      assert(stat.mkdir(dir, 448) == 0)
      -- a hang (a FIFO opened, /dev/zero read) ends the process by SIGALRM: it cannot pass
      unistd.alarm(60)
      local tree = M.build(rng, dir, layout == "flat")
      local problem, entries, counts = M.check(dir, layout)
      unistd.alarm(0)
      if problem then fail(tree, layout .. ": " .. problem, opts.crash_dir, n) end
      require("dbtool.core.fs").rmtree(dir)
      stats.iterations = n
      stats.entries = stats.entries + entries
      stats.prepared = stats.prepared + counts.prepared
      stats.refused = stats.refused + counts.refused
      if opts.log and n % 500 == 0 then opts.log(stats, n) end
    end
  end)
  require("dbtool.core.fs").rmtree(base)
  if not ok then error(err, 0) end
  return stats
end

return M
