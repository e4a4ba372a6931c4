-- Tiny benchmark helpers (run by build/db-tool): time commands, medians, ratios.
local core = require "dbtool.core"
local proc = require "dbtool.core.proc"

local M = {}

M.top = os.getenv("DB_TOOL_TOP") or core.getcwd()
M.bin = os.getenv("DB_TOOL_BIN") or (M.top .. "/build/db-tool")
M.build = M.bin:match("^(.*)/[^/]*$")

--- Run argv once (output discarded unless opts.stdout); returns seconds, exit code.
function M.time(argv, opts)
  opts = opts or {}
  local t0 = core.now()
  local p = assert(proc.spawn { argv = argv, env = opts.env, cwd = opts.cwd,
    stdin = opts.stdin or "null", stdout = opts.stdout or "null", stderr = opts.stderr or "null" })
  local _, code = p:wait()
  return core.now() - t0, code
end

--- Let the previous run's writes reach the disk (sync) and the machine settle, so that a
--- run does not pay for the write-back of the one before (untimed; used on both sides).
function M.settle()
  local p = proc.spawn { argv = { "sync" }, stdin = "null", stdout = "null", stderr = "null" }
  if p then p:wait() end
  core.sleep(0.2)
end

function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- Time fn() `n` times (after `warm` warm-up runs); returns the median in seconds.
function M.sample(n, fn, warm)
  for _ = 1, warm or 1 do fn() end
  local xs = {}
  for i = 1, n do xs[i] = fn() end
  return M.median(xs), xs
end

function M.ms(s)
  return string.format("%.2f ms", s * 1000)
end

--- Print a result line: name, ours, baseline, ratio, goal.
function M.report(name, ours, base, goal)
  io.stdout:write(string.format("%-40s ours %10s  baseline %10s  ratio %.2fx%s\n", name, M.ms(ours),
    M.ms(base), ours / base, goal and ("  (goal " .. goal .. ")") or ""))
end

-- ---------------------------------------------------------------- interleaved rounds, tables
-- Every measure against peers uses these: cases run interleaved (each round runs every
-- case once, in an order rotated from round to round, so that load on the machine and
-- caches hit all cases alike), then one table: median, range, ratio to the floor and
-- ours ÷ each case, plus the goals and the load average before and after.
--
--   local cases = {
--     { name = "migrator status", kind = "ours", run = function() return b.time{...} end },
--     { name = "dbmate status", kind = "peer", run = ..., setup = function() ... end },
--     { name = "psql listing the names", kind = "floor", run = ... },
--   }
--   b.rounds(cases, { rounds = 5 })
--   b.table("status, 10,000 applied migrations", cases, { goals = { { "dbmate status", 0.8 } } })
--
-- `run` returns seconds (b.time's first result); `setup`, when given, runs untimed right
-- before each `run`. A case with `missing = "why"` is listed as not measured.

--- The load average as "1.23 0.98 0.50" (1, 5 and 15 minutes).
function M.load()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local s = f:read("l") or ""
  f:close()
  return s:match("^(%S+ %S+ %S+)") or "?"
end

--- Run `cases` interleaved for opts.rounds rounds (default 5) after opts.warm warm-up
--- rounds (default 1). Fills each case's .xs, .median, .min, .max (seconds).
function M.rounds(cases, opts)
  opts = opts or {}
  local rounds, warm = opts.rounds or 5, opts.warm or 1
  local live = {}
  for _, c in ipairs(cases) do
    c.xs = {}
    if not c.missing then live[#live + 1] = c end
  end
  M.load_before = M.load_before or M.load()
  local n = #live
  for r = 1 - warm, rounds do
    for k = 0, n - 1 do
      local c = live[(r + k) % n + 1]
      if c.setup then c.setup(r) end
      if opts.settle then M.settle() end
      local t = c.run(r)
      if r >= 1 then c.xs[#c.xs + 1] = t end
    end
  end
  for _, c in ipairs(live) do
    c.median = M.median(c.xs)
    c.min, c.max = math.huge, 0
    for _, x in ipairs(c.xs) do
      if x < c.min then c.min = x end
      if x > c.max then c.max = x end
    end
  end
  return cases
end

local function fmt_time(s)
  if s >= 10 then return string.format("%.1f s", s) end
  if s >= 1 then return string.format("%.2f s", s) end
  if s >= 0.1 then return string.format("%.0f ms", s * 1000) end
  return string.format("%.1f ms", s * 1000)
end
M.fmt_time = fmt_time

local function range(c)
  local lo, hi = fmt_time(c.min), fmt_time(c.max)
  local ulo, uhi = lo:match("(%a+)$"), hi:match("(%a+)$")
  if ulo == uhi then lo = lo:gsub("%s*%a+$", "") end
  return lo .. "–" .. hi
end

local function find(cases, name)
  for _, c in ipairs(cases) do if c.name == name then return c end end
  return nil
end

--- Print the table of `cases` (after M.rounds); a case's ÷ floor is against the first floor
--- case, or the one its `floor` field names. opts.goals: array of
--- {name, max_ratio[, of = ours case name]}: "ours ÷ name ≤ max_ratio". opts.note: a line
--- printed under the table. Returns true when every goal is met.
function M.table(title, cases, opts)
  opts = opts or {}
  local ours, floor
  for _, c in ipairs(cases) do
    if c.kind == "ours" and not ours and not c.missing then ours = c end
    if c.kind == "floor" and not floor and not c.missing then floor = c end
  end
  local live = cases[1] and cases[1].xs or {}
  local out = {}
  out[#out + 1] = string.format("\n### %s\n%d rounds interleaved; load %s → %s\n", title, #live,
    M.load_before or "?", M.load())
  M.load_before = nil
  out[#out + 1] = "| case | median | range | ÷ floor | ours ÷ case |"
  out[#out + 1] = "| --- | ---: | ---: | ---: | ---: |"
  for _, c in ipairs(cases) do
    local label = (c.kind == "ours" and "ours: " or c.kind == "floor" and "floor: " or "") .. c.name
    if c.missing then
      out[#out + 1] = string.format("| %s | not measured: %s | | | |", label, c.missing)
    else
      local f = c.floor and find(cases, c.floor) or floor
      out[#out + 1] = string.format("| %s | %s | %s | %s | %s |", label, fmt_time(c.median), range(c),
        f and f.median and string.format("%.2f", c.median / f.median) or "–",
        ours and string.format("%.2f", ours.median / c.median) or "–")
    end
  end
  local all_met = true
  for _, g in ipairs(opts.goals or {}) do
    local o = g.of and find(cases, g.of) or ours
    local c = find(cases, g[1]) or (g[1] == "floor" and floor) or nil
    if not o or not c or c.missing or o.missing then
      out[#out + 1] = string.format("goal %s ÷ %s ≤ %g: not measured", o and o.name or "ours", g[1], g[2])
    else
      local r = o.median / c.median
      local met = r <= g[2]
      all_met = all_met and met
      out[#out + 1] = string.format("goal %s ÷ %s ≤ %g: %.2f, %s", o.name, c.name, g[2], r,
        met and "met" or "NOT MET")
    end
  end
  if opts.note then out[#out + 1] = opts.note end
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
  return all_met
end

--- Run argv, which must exit 0; returns seconds. opts as M.time.
--- On failure its stderr (kept in a temporary file unless opts.stderr) is shown.
function M.ok(argv, opts)
  opts = opts or {}
  local errfile
  if not opts.stderr then
    errfile = (os.getenv("TMPDIR") or "/tmp") .. "/db-tool-bench-stderr-" .. require("posix.unistd").getpid()
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.stderr = { path = errfile }
    opts = o
  end
  local t, code = M.time(argv, opts)
  local msg
  if code ~= 0 and errfile then
    local f = io.open(errfile)
    msg = f and f:read("a") or ""
    if f then f:close() end
  end
  if errfile then os.remove(errfile) end
  if code ~= 0 then
    error(table.concat(argv, " ") .. " failed (exit " .. tostring(code) .. ")"
      .. (msg and msg ~= "" and (":\n" .. msg:sub(-2000)) or ""), 2)
  end
  return t
end

return M
