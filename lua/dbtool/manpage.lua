-- Manual pages (man(7) roff) generated from the command specs at build time:
-- `db-tool __man PROGRAM` prints the page of a program: every subcommand with its usage and
-- options, the program's options, environment, exit status and files.
local command = require "dbtool.command"

local M = {}

--- Escape text for roff: backslashes, and a leading '.' or '\'' that would start a request.
function M.escape(s)
  s = tostring(s):gsub("\\", "\\e")
  s = s:gsub("\n([.'])", "\n\\&%1")
  if s:sub(1, 1) == "." or s:sub(1, 1) == "'" then s = "\\&" .. s end
  -- roff input is ASCII: other characters as \[uXXXX] glyph names
  if s:find("[\128-\255]") and utf8.len(s) then
    s = s:gsub(utf8.charpattern, function(ch)
      if #ch == 1 then return ch end
      return string.format("\\[u%04X]", utf8.codepoint(ch))
    end)
  end
  return s
end

-- An option name for roff: every '-' as \- (a minus, not a hyphen).
local function flag(n)
  return (n:gsub("%-", "\\-"))
end

local function out_buffer()
  local out = {}
  return out, function(...)
    for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end
  end
end

-- A block of text written with its own line breaks and indentation (help texts).
local function block(add, text)
  text = text:gsub("%s+$", "")
  if text == "" then return end
  add(".PP", ".nf")
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line == "" then add(".sp") else add(M.escape(line)) end
  end
  add(".fi")
end

-- Fill-mode text (one paragraph).
local function para(add, text)
  text = text:gsub("%s+$", ""):gsub("\n", " ")
  if text ~= "" then add(".PP", M.escape(text)) end
end

local function options(add, list)
  for _, o in ipairs(list or {}) do
    if not o.hidden then
      local names = {}
      for _, n in ipairs(o) do names[#names + 1] = "\\fB" .. flag(n) .. "\\fR" end
      local head = table.concat(names, ", ")
      if o.arg then head = head .. " \\fI" .. M.escape(o.arg) .. "\\fR" end
      add(".TP", head)
      local text = o.help or ""
      if o.choices and not text:find(o.choices[1], 1, true) then
        text = text .. (text ~= "" and " " or "") .. "(" .. table.concat(o.choices, ", ") .. ")"
      end
      add(M.escape(text ~= "" and text or "(no description)"))
    end
  end
end

local function rows(add, title, list, bold)
  if not list or #list == 0 then return end
  add(".SH " .. title)
  for _, r in ipairs(list) do
    add(".TP", (bold and "\\fB" or "") .. M.escape(tostring(r[1])) .. (bold and "\\fR" or ""))
    add(M.escape(r[2]))
  end
end

local function command_section(add, path, spec)
  local usage = spec.usage and spec.usage:gsub("{path}", (path:gsub("%%", "%%%%"))) or path
  add('.SS "' .. M.escape(usage):gsub('"', '\\(dq') .. '"')
  if spec.title and spec.title ~= spec.summary then para(add, spec.title) end
  if spec.summary then para(add, spec.summary) end
  if spec.options and #spec.options > 0 then
    add(".PP", "Options:", ".RS")
    options(add, spec.options)
    add(".RE")
  end
  if spec.help then block(add, spec.help) end
end

local function commands(add, group, path)
  local names, cmds = command.sorted(group, nil)
  for _, name in ipairs(names) do
    local spec = cmds[name].module
    if command.is_group(spec) then
      add('.SS "' .. M.escape(path .. " " .. name) .. ' ..."')
      para(add, spec.description or spec.summary or "")
      if spec.help then block(add, spec.help) end
      local subnames, subs = command.sorted(spec, nil)
      for _, sub in ipairs(subnames) do
        command_section(add, path .. " " .. name .. " " .. sub, subs[sub].module)
      end
    else
      command_section(add, path .. " " .. name, spec)
    end
  end
  for alias, target in pairs(group.aliases or {}) do
    para(add, path .. " " .. alias .. " is another name of " .. path .. " " .. target .. ".")
  end
end

--- The page of program `name` (database, migrator, ...).
function M.page(name)
  local cli = require "dbtool.cli"
  local core = require "dbtool.core"
  local spec = cli.program(name)
  local out, add = out_buffer()
  add(".\\\" generated from the command specs by `db-tool __man " .. name .. "`; do not edit")
  add(".TH " .. name:upper():gsub("%-", "\\-") .. ' 1 "" "db-tool ' .. core.version .. '" "db-tool manual"')
  add(".SH NAME")
  add(flag(name) .. " \\- " .. M.escape(spec.summary or ""))
  add(".SH SYNOPSIS")
  local usage = spec.usage or name
  add(".nf")
  for line in (usage .. "\n"):gmatch("([^\n]*)\n") do add(M.escape(line)) end
  add(".fi")
  add(".SH DESCRIPTION")
  if name == "db-tool" then
    block(add, spec.HELP or "")
  elseif spec.description then
    para(add, spec.description)
  elseif spec.summary then
    para(add, spec.summary)
  end
  if command.is_group(spec) then
    add(".SH COMMANDS")
    commands(add, spec, name)
    if spec.help then
      add(".SH NOTES")
      block(add, spec.help)
    end
  elseif spec.help and name ~= "db-tool" then
    block(add, spec.help)
  end
  add(".SH OPTIONS")
  local opts = {}
  for _, o in ipairs(spec.options or {}) do opts[#opts + 1] = o end
  if name ~= "db-tool" then
    for _, o in ipairs(command.STANDARD) do opts[#opts + 1] = o end
  end
  options(add, opts)
  add(".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "show the help"
    .. (command.is_group(spec)
      and ("; \\fB" .. flag(name) .. " \\fR\\fIcommand\\fR \\fB\\-\\-help\\fR for one command's") or ""))
  rows(add, "ENVIRONMENT", spec.environment, true)
  rows(add, "EXIT STATUS", spec.exit_codes, true)
  rows(add, "FILES", spec.files, false)
  add(".SH SEE ALSO")
  local see = {}
  for _, p in ipairs(cli.programs) do
    if p ~= name then
      see[#see + 1] = ".BR " .. flag(p) .. " (1)" .. (#see < #cli.programs - 2 and "," or "")
    end
  end
  for _, l in ipairs(see) do add(l) end
  return table.concat(out, "\n") .. "\n"
end

--- `db-tool __man PROGRAM`.
function M.main(argv)
  local name = argv[1]
  local cli = require "dbtool.cli"
  if not name or not cli.personalities[name] then
    io.stderr:write("usage: db-tool __man PROGRAM   (" .. table.concat(cli.programs, ", ") .. ")\n")
    return 9
  end
  io.stdout:write(M.page(name))
  return 0
end

return M
