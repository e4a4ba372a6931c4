-- Fuzzing dbtool.toml at the Lua level. Two properties:
--
--  1. robustness: for any input (mutations of a corpus of valid and tricky documents:
--     byte flips, insertions of TOML tokens, deletions, splices), toml.decode returns a
--     value or a structured error (exit 1, not a bug, `where` = name:line:col inside the
--     document) — never a Lua runtime error;
--  2. round trip: random values (every type, nested tables, arrays of tables), written out
--     in varied but valid TOML styles (headers, dotted keys, inline tables, every string
--     and integer form), parse back to the same values.
--
--   db-tool spec/support/fuzz_toml.lua [SECONDS] [SEED]     (`make fuzz`; default 30 s)
--   require("fuzz_toml").run{iterations = 2000, seed = 1}   (bounded, from a spec)
local toml = require "dbtool.toml"
local errors = require "dbtool.errors"

local M = {}

M.corpus = {
  "",
  "a = 1\n",
  'title = "TOML \\"x\\" \\u00e9 \\U0001F600"\nlit = \'C:\\x\'\n',
  'ml = """\nRoses\\\n   are red"""\nmll = \'\'\'\nraw\n\'\'\'\n',
  "int = +99\nhex = 0xDEAD_beef\noct = 0o755\nbin = 0b1101\nbig = 9_223_372_036_854_775_807\n",
  "f = 6.626e-34\ng = -inf\nh = nan\ni = 224_617.445_991_228\nj = 1e06\n",
  "odt = 1979-05-27T00:32:00.999999-07:00\nldt = 1979-05-27 07:32:00\nld = 1979-05-27\nlt = 07:32:00\n",
  "arr = [ 1, [2, 'x'], {a = 1}, ]\nnested = [\n  # c\n  1,\n  2, # c\n]\n",
  "it = { x = 1, y.z = 2, w = { v = [true, false] } }\n",
  '"quoted key" = 1\nsite."google.com" = true\n3.14159 = "pi"\n',
  "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n",
  "[[products]]\nname = \"Hammer\"\n[[products]]\n[[products]]\nname = \"Nail\"\n",
  "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n[[fruits.varieties]]\nname = \"x\"\n",
  "[a.b.c]\nz = 9\n[a]\nb.d = 1\n",
  "[db]\nengine = \"pgsql\"\nhost = \"localhost\"\nport = 5432\n\n"
    .. "[db_app]\nengine = 'sqlite'\ndb_file = '/tmp/x.db'\n",
  "a = 1\r\nb = 'x'\r\n# c\r\n",
  "[ j . \"ʞ\" . 'l' ]\nx = 1\n",
}

-- tokens inserted by mutations (structure, quotes, escapes, numbers, dates, control bytes)
M.tokens = {
  "[", "]", "[[", "]]", "{", "}", "=", ".", ",", "#", "\n", "\r", "\r\n", "\t", " ", '"', "'", '"""',
  "'''", "\\", "\\u", "\\U0001F600", "\\uD800", "0x", "0o", "0b", "_", "+", "-", "e", "E", "inf",
  "nan", "true", "false", "1979-05-27", "T", "Z", "07:32:00", ".999", "+05:30", "a.b", "\0", "\1",
  "\127", "\255", "\192\128", "\237\160\128", "é", "9223372036854775808", "[a]\n", "[[a]]\n",
  "a = 1\n", "a.b = {}\n", string.rep("[", 300), string.rep("{a=", 50),
}

local function mutate(rng, s)
  local n = rng(1, 4)
  for _ = 1, n do
    local op = rng(1, 6)
    local len = #s
    local at = rng(1, len + 1)
    if op == 1 and len > 0 then -- flip a byte
      s = s:sub(1, at - 1) .. string.char(rng(0, 255)) .. s:sub(at + 1)
    elseif op == 2 then -- insert a token
      s = s:sub(1, at - 1) .. M.tokens[rng(1, #M.tokens)] .. s:sub(at)
    elseif op == 3 and len > 0 then -- delete a run
      s = s:sub(1, at - 1) .. s:sub(at + rng(1, 8))
    elseif op == 4 then -- splice with another corpus entry
      local other = M.corpus[rng(1, #M.corpus)]
      local b = rng(1, #other + 1)
      s = s:sub(1, at - 1) .. other:sub(b, b + rng(0, 40)) .. s:sub(at)
    elseif op == 5 and len > 0 then -- duplicate a line (duplicate keys, tables twice)
      local line = s:match("[^\n]*\n?", at) or ""
      s = s:sub(1, at - 1) .. line .. line .. s:sub(at)
    else -- truncate
      s = s:sub(1, at - 1)
    end
  end
  return s
end

--- Check property 1 on `input`; returns nil, or a message describing the violation.
function M.check(input)
  local ok, res, err = pcall(toml.decode, input, { name = "fuzz.toml" })
  if not ok then return "decode raised: " .. tostring(res) end
  if res ~= nil then return nil end
  if not errors.is(err) then return "error is not structured: " .. tostring(err) end
  if err.bug then return "bug: " .. tostring(err.msg) .. "\n" .. tostring(err.traceback) end
  if err.exit ~= 1 then return "exit " .. tostring(err.exit) end
  local line, col = tostring(err.where):match("^fuzz%.toml:(%d+):(%d+)$")
  if not line then return "bad where: " .. tostring(err.where) end
  local _, nl = input:gsub("\n", "")
  if tonumber(line) > nl + 1 or tonumber(col) < 1 then return "where out of range: " .. err.where end
  return nil
end

-- ---------------------------------------------------------------- round trip

local BARE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

local function rand_key(rng)
  local kind = rng(1, 6)
  if kind <= 3 then
    local n = rng(1, 8)
    local out = {}
    for i = 1, n do
      local c = rng(1, #BARE)
      out[i] = BARE:sub(c, c)
    end
    return table.concat(out)
  end
  local pieces = { "a", " ", ".", "é", "\"", "'", "\\", "\t", "\n", "#", "=", "[", "x", "😀", "\1" }
  local out = {}
  for i = 1, rng(0, 6) do out[i] = pieces[rng(1, #pieces)] end
  return table.concat(out)
end

local function rand_string(rng)
  local pieces = { "a", "b", " ", "é", "😀", "\"", "'", "\\", "\t", "\n", "\r\n", "\1", "\127", "''", '""',
    "'''", '"""', "x y", "#", "\0" }
  local out = {}
  for i = 1, rng(0, 10) do out[i] = pieces[rng(1, #pieces)] end
  return table.concat(out)
end

local function rand_datetime(rng)
  local y, mo = rng(1, 9999), rng(1, 12)
  local dim = ({ 31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28, 31, 30, 31, 30, 31, 31,
    30, 31, 30, 31 })[mo]
  local d = rng(1, dim)
  local date = string.format("%04d-%02d-%02d", y, mo, d)
  local time = string.format("%02d:%02d:%02d", rng(0, 23), rng(0, 59), rng(0, 59))
  if rng(1, 2) == 1 then time = time .. "." .. tostring(rng(0, 999999)) end
  local k = rng(1, 4)
  if k == 1 then return date end
  if k == 2 then return time end
  if k == 3 then return date .. "T" .. time end
  local off = rng(1, 2) == 1 and "Z" or string.format("%s%02d:%02d", rng(1, 2) == 1 and "+" or "-",
    rng(0, 23),
    rng(0, 59))
  return date .. "T" .. time .. off
end

local function rand_scalar(rng)
  local k = rng(1, 6)
  if k == 1 then return rand_string(rng) end
  if k == 2 then
    local r = rng(1, 4)
    if r == 1 then return math.mininteger end
    if r == 2 then return math.maxinteger end
    return rng(-1000000, 1000000)
  end
  if k == 3 then
    local r = rng(1, 5)
    if r == 1 then return math.huge end
    if r == 2 then return -math.huge end
    return (rng(-1000000, 1000000) / 7) * 10.0 ^ rng(-30, 30)
  end
  if k == 4 then return rng(1, 2) == 1 end
  return setmetatable({ dt = rand_datetime(rng) }, { __name = "dt" })
end

local function rand_value(rng, depth)
  local k = rng(1, 10)
  if depth > 3 or k <= 6 then return rand_scalar(rng) end
  if k <= 8 then
    local arr = setmetatable({}, toml.array_mt)
    for i = 1, rng(0, 4) do arr[i] = rand_value(rng, depth + 1) end
    return arr
  end
  local t = {}
  for _ = 1, rng(0, 4) do t[rand_key(rng)] = rand_value(rng, depth + 1) end
  return t
end

-- writing TOML

local function basic(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
    return map[c] or string.format("\\u%04X", c:byte())
  end) .. '"'
end

local function write_string(rng, s)
  local k = rng(1, 4)
  if k == 2 and not s:find("[%c']") then return "'" .. s .. "'" end
  if k == 3 and not s:find("'''", 1, true) and s:sub(-1) ~= "'" and not s:find("[\0-\8\11-\31\127]")
    and not s:find("\r", 1, true) then
    return "'''\n" .. s .. "'''"
  end
  if k == 4 then
    -- multi-line basic: escape backslashes and control chars, break up quote runs
    local body = s:gsub('[\0-\8\11-\31\127\\"]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      return string.format("\\u%04X", c:byte())
    end)
    return '"""\n' .. body .. '"""'
  end
  return basic(s)
end

local function write_key(rng, k)
  if k:match("^[%w_%-]+$") and rng(1, 3) > 1 then return k end
  if not k:find("[%c']") and rng(1, 2) == 1 then return "'" .. k .. "'" end
  return basic(k)
end

local function write_int(rng, v)
  if v >= 0 and rng(1, 3) == 1 then
    local base = ({ 16, 8, 2 })[rng(1, 3)]
    local prefix = ({ [16] = "0x", [8] = "0o", [2] = "0b" })[base]
    local digits = {}
    local x = v
    repeat
      local d = x % base
      digits[#digits + 1] = ("0123456789abcdef"):sub(d + 1, d + 1)
      x = x // base
    until x == 0
    local s = string.reverse(table.concat(digits))
    if #s > 2 and rng(1, 2) == 1 then s = s:sub(1, 1) .. "_" .. s:sub(2) end
    return prefix .. s
  end
  local s = tostring(v)
  if rng(1, 3) == 1 and #s > 3 and s:sub(1, 1) ~= "-" then s = s:sub(1, 1) .. "_" .. s:sub(2) end
  return s
end

local write_value

local function write_inline(rng, t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = write_key(rng, k) .. " = " .. write_value(rng, v, true) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

write_value = function(rng, v, inline)
  local ty = type(v)
  if ty == "string" then
    if inline then return basic(v) end
    return write_string(rng, v)
  elseif ty == "boolean" then
    return tostring(v)
  elseif math.type(v) == "integer" then
    return write_int(rng, v)
  elseif ty == "number" then
    if v == math.huge then return rng(1, 2) == 1 and "inf" or "+inf" end
    if v == -math.huge then return "-inf" end
    local s = string.format("%.17g", v)
    if not s:find("[.eEn]") then s = s .. ".0" end
    return s
  elseif getmetatable(v) and getmetatable(v).__name == "dt" then
    return v.dt
  elseif toml.is_array(v) then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = write_value(rng, x, true) end
    if not inline and rng(1, 2) == 1 then
      return "[\n  " .. table.concat(parts, ",\n  # c\n  ") .. (#parts > 0 and ",\n" or "\n") .. "]"
    end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  return write_inline(rng, v)
end

local function is_table(v)
  return type(v) == "table" and getmetatable(v) == nil
end

-- a document for table `t`: scalars and arrays as key = value, sub-tables as [headers]
-- (or inline, or as dotted keys when they hold only scalars)
local function write_doc(rng, t, path, out)
  local subs = {}
  for k, v in pairs(t) do
    if is_table(v) then
      local style = rng(1, 3)
      local only_scalars = true
      for _, x in pairs(v) do if type(x) == "table" then only_scalars = false end end
      if style == 1 then
        out[#out + 1] = write_key(rng, k) .. " = " .. write_inline(rng, v)
      elseif style == 2 and only_scalars and next(v) then
        for k2, x in pairs(v) do
          out[#out + 1] = write_key(rng, k) .. " . " .. write_key(rng, k2) .. " = " .. write_value(rng, x)
        end
      else
        subs[#subs + 1] = k
      end
    else
      out[#out + 1] = write_key(rng, k) .. " = " .. write_value(rng, v)
    end
  end
  for _, k in ipairs(subs) do
    local p = {}
    for i, x in ipairs(path) do p[i] = x end
    p[#p + 1] = k
    local keys = {}
    for i, x in ipairs(p) do keys[i] = write_key(rng, x) end
    out[#out + 1] = "[" .. table.concat(keys, ".") .. "]"
    write_doc(rng, t[k], p, out)
  end
end

-- compare parsed value `a` with generated value `b`
local function equal(a, b)
  if type(b) == "table" and getmetatable(b) and getmetatable(b).__name == "dt" then
    return toml.is_datetime(a) and tostring(a) == b.dt:gsub(" ", "T")
  end
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  if toml.is_array(b) ~= toml.is_array(a) then return false end
  for k, v in pairs(b) do if not equal(a[k], v) then return false end end
  for k in pairs(a) do if b[k] == nil then return false end end
  return true
end

--- One round trip with the generator state `rng`; returns nil or a message.
function M.round_trip(rng)
  local t = {}
  for _ = 1, rng(0, 8) do t[rand_key(rng)] = rand_value(rng, 0) end
  local out = {}
  write_doc(rng, t, {}, out)
  local doc = table.concat(out, "\n") .. "\n"
  local v, err = toml.decode(doc, { name = "rt.toml" })
  if not v then
    return "valid document rejected: " .. tostring(err.where) .. ": " .. err.msg .. "\n" .. doc
  end
  if not equal(v, t) then return "round trip changed the value:\n" .. doc end
  return nil
end

--- Run both properties. opts: iterations (or seconds), seed. Returns the number of inputs
--- tried; raises with the failing input on a violation.
function M.run(opts)
  opts = opts or {}
  local seed = opts.seed or os.time()
  math.randomseed(seed)
  local rng = math.random
  local deadline = opts.seconds and (os.clock() + opts.seconds)
  local n = 0
  while true do
    if opts.iterations and n >= opts.iterations then break end
    if deadline and os.clock() >= deadline then break end
    n = n + 1
    local input = mutate(rng, M.corpus[rng(1, #M.corpus)])
    local bad = M.check(input)
    if bad then
      error(string.format("toml fuzz (seed %d, input %d): %s\ninput: %q", seed, n, bad, input), 0)
    end
    if n % 4 == 0 then
      bad = M.round_trip(rng)
      if bad then error(string.format("toml round trip (seed %d, input %d): %s", seed, n, bad), 0) end
    end
  end
  return n
end

-- as a script: db-tool spec/support/fuzz_toml.lua [SECONDS] [SEED]
if arg and arg[0] and arg[0]:match("fuzz_toml%.lua$") then
  local secs = tonumber(arg[1]) or tonumber(os.getenv("FUZZ_SECONDS")) or 30
  local seed = tonumber(arg[2]) or os.time()
  io.stdout:write(string.format("fuzz_toml: %d s, seed %d\n", secs, seed))
  local ok, res = pcall(M.run, { seconds = secs, seed = seed })
  if not ok then
    io.stderr:write(res, "\n")
    os.exit(1)
  end
  io.stdout:write(string.format("fuzz_toml: %d inputs, no failure\n", res))
end

return M
