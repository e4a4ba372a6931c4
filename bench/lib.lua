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

return M
