-- Terminal output: colour only on a TTY and never with NO_COLOR (or as --color says),
-- progress lines on a TTY only, and the pager. Everything here degrades to plain text when piped.
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

-- --color=auto|always|never (and rickdb's --no-color): set once by the command engine
local color_mode = "auto"

--- Set the colour mode: "auto" (the default), "always" or "never".
function M.set_color(mode)
  assert(mode == "auto" or mode == "always" or mode == "never", mode)
  color_mode = mode
end

--- Should output on `fd` be coloured? --color=always/never decide; else never with NO_COLOR
--- (any non-empty value), always with FORCE_COLOR (non-empty, not 0), never with TERM=dumb,
--- else only on a terminal.
function M.color(fd)
  if color_mode == "never" then return false end
  if color_mode == "always" then return true end
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then return false end
  local force = os.getenv("FORCE_COLOR")
  if (force and force ~= "" and force ~= "0") or os.getenv("DB_TOOL_COLOR") == "always" then return true end
  if os.getenv("TERM") == "dumb" then return false end
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

-- Code point ranges shown in two terminal columns (East Asian Wide/Fullwidth, emoji) and in
-- none (combining marks, zero-width and direction controls, variation selectors).
local WIDE = { 0x1100, 0x115F, 0x231A, 0x231B, 0x2329, 0x232A, 0x23E9, 0x23EC, 0x23F0, 0x23F0,
  0x23F3, 0x23F3, 0x25FD, 0x25FE, 0x2614, 0x2615, 0x2648, 0x2653, 0x267F, 0x267F, 0x2693, 0x2693,
  0x26A1, 0x26A1, 0x26AA, 0x26AB, 0x26BD, 0x26BE, 0x26C4, 0x26C5, 0x26CE, 0x26CE, 0x26D4, 0x26D4,
  0x26EA, 0x26EA, 0x26F2, 0x26F3, 0x26F5, 0x26F5, 0x26FA, 0x26FA, 0x26FD, 0x26FD, 0x2705, 0x2705,
  0x270A, 0x270B, 0x2728, 0x2728, 0x274C, 0x274C, 0x274E, 0x274E, 0x2753, 0x2755, 0x2757, 0x2757,
  0x2795, 0x2797, 0x27B0, 0x27B0, 0x27BF, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B50, 0x2B55, 0x2B55,
  0x2E80, 0x303E, 0x3041, 0x33FF, 0x3400, 0x4DBF, 0x4E00, 0x9FFF, 0xA000, 0xA4CF, 0xA960, 0xA97F,
  0xAC00, 0xD7A3, 0xF900, 0xFAFF, 0xFE10, 0xFE19, 0xFE30, 0xFE6F, 0xFF00, 0xFF60, 0xFFE0, 0xFFE6,
  0x16FE0, 0x18AFF, 0x1B000, 0x1B2FF, 0x1F004, 0x1F004, 0x1F0CF, 0x1F0CF, 0x1F18E, 0x1F18E,
  0x1F191, 0x1F19A, 0x1F200, 0x1F251, 0x1F300, 0x1F320, 0x1F32D, 0x1F335, 0x1F337, 0x1F37C,
  0x1F37E, 0x1F393, 0x1F3A0, 0x1F3CA, 0x1F3CF, 0x1F3D3, 0x1F3E0, 0x1F3F0, 0x1F3F4, 0x1F3F4,
  0x1F3F8, 0x1F43E, 0x1F440, 0x1F440, 0x1F442, 0x1F4FC, 0x1F4FF, 0x1F53D, 0x1F54B, 0x1F54E,
  0x1F550, 0x1F567, 0x1F57A, 0x1F57A, 0x1F595, 0x1F596, 0x1F5A4, 0x1F5A4, 0x1F5FB, 0x1F64F,
  0x1F680, 0x1F6C5, 0x1F6CC, 0x1F6CC, 0x1F6D0, 0x1F6D2, 0x1F6D5, 0x1F6D7, 0x1F6EB, 0x1F6EC,
  0x1F6F4, 0x1F6FC, 0x1F7E0, 0x1F7EB, 0x1F90C, 0x1F93A, 0x1F93C, 0x1F945, 0x1F947, 0x1F9FF,
  0x1FA70, 0x1FAFF, 0x20000, 0x2FFFD, 0x30000, 0x3FFFD }
local ZERO = { 0x0300, 0x036F, 0x0483, 0x0489, 0x0591, 0x05BD, 0x0610, 0x061A, 0x064B, 0x065F,
  0x0E31, 0x0E31, 0x0E34, 0x0E3A, 0x0E47, 0x0E4E, 0x1160, 0x11FF, 0x1AB0, 0x1AFF, 0x1DC0, 0x1DFF,
  0x200B, 0x200F, 0x202A, 0x202E, 0x2060, 0x2064, 0x20D0, 0x20FF, 0xFE00, 0xFE0F, 0xFE20, 0xFE2F,
  0xFEFF, 0xFEFF, 0xE0100, 0xE01EF }

local function in_ranges(t, cp)
  local lo, hi = 1, #t // 2
  while lo <= hi do
    local mid = (lo + hi) // 2
    if cp < t[2 * mid - 1] then hi = mid - 1
    elseif cp > t[2 * mid] then lo = mid + 1
    else return true end
  end
  return false
end

--- Columns a terminal uses for code point `cp`: 0 (combining, zero-width), 2 (wide), else 1.
function M.char_width(cp)
  if cp < 0x300 then return 1 end
  if in_ranges(ZERO, cp) then return 0 end
  if cp >= 0x1100 and in_ranges(WIDE, cp) then return 2 end
  return 1
end

--- Columns a terminal uses for the UTF-8 text `s` (invalid UTF-8: its byte count).
function M.width(s)
  if not utf8.len(s) then return #s end
  local w = 0
  for _, cp in utf8.codes(s) do w = w + M.char_width(cp) end
  return w
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

local pager_on = true

--- --no-pager: never page.
function M.set_pager(on)
  pager_on = on and true or false
end

--- The pager command (argv) for long output on a terminal, or nil: DB_TOOL_PAGER, else
--- PAGER, else `less -FRX` (which quits at once when the text fits on the screen); an empty
--- value or `cat` means none.
function M.pager()
  if not pager_on or not M.isatty(1) then return nil end
  local pager = os.getenv("DB_TOOL_PAGER")
  if pager == nil then pager = os.getenv("PAGER") end
  if pager == nil then pager = "less -FRX" end
  local argv = {}
  for w in pager:gmatch("%S+") do argv[#argv + 1] = w end
  if #argv == 0 or argv[1] == "cat" then return nil end
  return argv
end

--- Rows of the terminal: LINES when the shell exports it, else 24.
local function rows()
  return math.tointeger(tonumber(os.getenv("LINES") or "")) or 24
end

--- Show `text` through the pager when stdout is a terminal (see M.pager) and the text is
--- longer than the screen, else print it.
function M.page(text)
  local _, nl = text:gsub("\n", "")
  local argv = nl >= rows() and M.pager() or nil
  if not argv then
    io.stdout:write(text)
    return
  end
  local proc = require "dbtool.core.proc"
  io.stdout:flush()
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
