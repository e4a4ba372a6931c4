-- Terminal output: colour only on a TTY and never with NO_COLOR, progress lines on a TTY
-- only, and the pager. Everything here degrades to plain text when piped.
local M = {}

local isatty = require("dbtool.core").isatty

local tty_cache = {}

--- Is file descriptor `fd` (1 = stdout, 2 = stderr) a terminal? DB_TOOL_TTY=1/0 overrides (tests).
function M.isatty(fd)
  local forced = os.getenv("DB_TOOL_TTY")
  if forced == "1" then return true elseif forced == "0" then return false end
  if tty_cache[fd] == nil then tty_cache[fd] = isatty(fd) end
  return tty_cache[fd]
end

--- Should output on `fd` be coloured? Never with NO_COLOR (any non-empty value).
function M.color(fd)
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then return false end
  if os.getenv("DB_TOOL_COLOR") == "always" then return true end
  return M.isatty(fd or 1)
end

M.codes = {
  reset = "0", bold = "1", dim = "2", red = "31", green = "32", yellow = "33",
  blue = "34", magenta = "35", cyan = "36", white = "37", grey = "90", bred = "91",
}

--- Wrap `text` in the style(s) `style` ("bold", "red", "bold,green") when colour is on for fd.
function M.style(style, text, fd)
  if not M.color(fd or 1) or not style or style == "" then return text end
  local parts = {}
  for name in style:gmatch("[^,]+") do parts[#parts + 1] = assert(M.codes[name], name) end
  return "\27[" .. table.concat(parts, ";") .. "m" .. text .. "\27[0m"
end

--- Remove ANSI escape sequences.
function M.strip(text)
  return (text:gsub("\27%[[%d;]*m", ""))
end

-- ---------------------------------------------------------------- status line

-- One transient line at the bottom of stderr (TTY only): what is running now. Log lines
-- (dbtool.log) and script output written through ui.suspend_status/resume_status are
-- printed above it, so it never ends up glued to other text.
local status_text

--- Draw `text` as the status line, or clear it with nil. Does nothing unless stderr is a TTY.
function M.status(text)
  if not M.isatty(2) then return end
  if status_text == nil and text == nil then return end
  io.stderr:write("\r\27[K")
  status_text = text and text:gsub("\n", " "):sub(1, 200) or nil
  if status_text then io.stderr:write(status_text) end
  io.stderr:flush()
end

--- Erase the status line before other output; returns what resume_status() redraws.
function M.suspend_status()
  if not status_text then return nil end
  io.stderr:write("\r\27[K")
  io.stderr:flush()
  return status_text
end

function M.resume_status(text)
  if text and text == status_text then
    io.stderr:write(text)
    io.stderr:flush()
  end
end

-- ---------------------------------------------------------------- progress

local Progress = {}
Progress.__index = Progress

--- A progress line on stderr, drawn only on a TTY. total may be nil (unknown).
function M.progress(label, total)
  local p = setmetatable({ label = label, total = total, done = 0, active = M.isatty(2),
    last = 0 }, Progress)
  return p
end

local clock = require("dbtool.core").now

function Progress:update(done, note)
  self.done = done
  if not self.active then return end
  local now = clock()
  if now - self.last < 0.05 and done ~= self.total then return end
  self.last = now
  local text
  if self.total and self.total > 0 then
    local width = 24
    local filled = math.floor(width * done / self.total)
    text = string.format("%s [%s%s] %d/%d", self.label, string.rep("#", filled),
      string.rep(".", width - filled), done, self.total)
  else
    text = string.format("%s %s", self.label, tostring(done))
  end
  if note then text = text .. " " .. note end
  io.stderr:write("\r\27[K", text:sub(1, 200))
  io.stderr:flush()
end

function Progress:finish()
  if self.active then
    io.stderr:write("\r\27[K")
    io.stderr:flush()
  end
end

--- Human size: 1536 → "1.5 KiB".
function M.bytes(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n = n / 1024
    i = i + 1
  end
  return i == 1 and string.format("%d %s", n, units[i]) or string.format("%.1f %s", n, units[i])
end

--- Human duration in seconds: 0.0123 → "12 ms".
function M.duration(s)
  if s < 1 then return string.format("%d ms", math.floor(s * 1000 + 0.5)) end
  if s < 60 then return string.format("%.2f s", s) end
  return string.format("%dm%02ds", math.floor(s / 60), math.floor(s % 60))
end

-- ---------------------------------------------------------------- pager

--- Show `text` through $PAGER (default less -R) when stdout is a TTY, else print it.
function M.page(text)
  if not M.isatty(1) then
    io.stdout:write(text)
    return
  end
  local pager = os.getenv("PAGER")
  if pager == nil or pager == "" then pager = "less -R" end
  if pager == "cat" then
    io.stdout:write(text)
    return
  end
  local proc = require "dbtool.core.proc"
  local argv = {}
  for w in pager:gmatch("%S+") do argv[#argv + 1] = w end
  local p = proc.spawn { argv = argv, stdin = "pipe" }
  if not p then
    io.stdout:write(text)
    return
  end
  p.stdin:write(text)
  p.stdin:close()
  p:wait()
end

return M
