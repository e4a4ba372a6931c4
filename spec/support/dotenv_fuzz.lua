-- Mutation fuzzer for dbtool.dotenv. Properties checked on every input:
--   * decode() (with and without expand) returns a result or a list of structured errors,
--     never raises;
--   * a result is consistent: valid keys, map = the last value of each key, values are
--     UTF-8 without NUL, keys listed once in first-appearance order;
--   * serialize(map) parses back to the same map (with and without expand);
--   * set(text, K, v) parses to the old map with K = v; unset(text, K) removes K only.
--
--   require("dotenv_fuzz").run{iterations = N | seconds = S, seed = n, log = fn, crash_dir = dir}
--     → {iterations =, valid =, invalid =}; raises with the failing input on a violation
--       (written to crash_dir/dotenv-crash-<n> when crash_dir is given).
-- Used by spec/unit/dotenv_spec.lua (a bounded quick run) and spec/fuzz/dotenv.lua (`make fuzz`).
local dotenv = require "dbtool.dotenv"

local M = {}

M.SEEDS = {
  "",
  "A=1\n",
  "# comment\n\nKEY=value\nexport OTHER = 'single quoted'  # trailing\n",
  "DQ=\"line1\\nline2 \\\"q\\\" \\\\ \\$HOME \\t\"\nSQ='it''s'\n",
  "MULTI=\"first\nsecond\nthird\"\nNEXT=x\n",
  "SQM='a\nb'\r\nCRLF=yes\r\n",
  "\239\187\191BOM=1\nDUP=1\nDUP=2\n",
  "URL=postgresql://user:pw@host:5432/db?sslmode=require\nHASH=a#b #c\n",
  "E=${A}-$B-${C:-dflt}\nA=1\nB=${A}\n",
  "# db-tool: expand\nA=1\nB=\"${A}\\$A\"\nC=${HOME:-x}\n",
  "WIN=C:\\path\\to\nEMPTY=\nEMPTYQ=\"\"\nEMPTYS=''\n",
  "UNICODE=\"héllo wörld ✓\"\nTAB=a\tb\n",
}

local TOKENS = {
  "=", "\"", "'", "\\", "#", " #", "$", "${", "}", "${A}", "${A:-x}", "$A", "\n", "\r\n", "\r",
  "\t", " ", "export ", "export", "A", "B=", "KEY=", "\0", "\255", "\195\169", "\226\156\147",
  "\\n", "\\\"", "\\$", "''", "\"\"", "=\"", "='", "\n#", "a", "1", ".", "-", "_",
}

local function rand_token(rng)
  return TOKENS[rng(#TOKENS)]
end

local function mutate(s, rng, seeds)
  local n = rng(1, 4)
  for _ = 1, n do
    local op = rng(8)
    local len = #s
    local p = rng(len + 1)
    if op == 1 then                                  -- insert a token
      s = s:sub(1, p - 1) .. rand_token(rng) .. s:sub(p)
    elseif op == 2 and len > 0 then                  -- delete a range
      local q = math.min(len, p + rng(0, 8))
      s = s:sub(1, p - 1) .. s:sub(q + 1)
    elseif op == 3 and len > 0 then                  -- replace a byte
      local c = string.char(rng(0, 255))
      s = s:sub(1, p - 1) .. c .. s:sub(p + 1)
    elseif op == 4 and len > 0 then                  -- duplicate a range
      local q = math.min(len, p + rng(0, 16))
      s = s:sub(1, q) .. s:sub(p, q) .. s:sub(q + 1)
    elseif op == 5 then                              -- splice another seed
      local o = seeds[rng(#seeds)]
      local a = rng(#o + 1)
      s = s:sub(1, p - 1) .. o:sub(a) .. s:sub(p)
    elseif op == 6 and len > 0 then                  -- truncate
      s = s:sub(1, p - 1)
    elseif op == 7 then                              -- several tokens
      local t = {}
      for i = 1, rng(2, 6) do t[i] = rand_token(rng) end
      s = s:sub(1, p - 1) .. table.concat(t) .. s:sub(p)
    else                                             -- a random printable run
      local t = {}
      for i = 1, rng(1, 6) do t[i] = string.char(rng(32, 126)) end
      s = s:sub(1, p - 1) .. table.concat(t) .. s:sub(p)
    end
  end
  if #s > 4096 then s = s:sub(1, 4096) end
  return s
end
M.mutate = mutate

local function same_map(a, b)
  for k, v in pairs(a) do if b[k] ~= v then return false, k end end
  for k in pairs(b) do if a[k] == nil then return false, k end end
  return true
end

local function fail(input, what, crash_dir, n)
  local path
  if crash_dir then
    path = crash_dir .. "/dotenv-crash-" .. n
    local f = io.open(path, "wb")
    if f then f:write(input); f:close() end
  end
  error(string.format("dotenv fuzz: %s\ninput %q%s", what, input,
    path and ("\nsaved to " .. path) or ""), 0)
end

local function check_errors(errs)
  if type(errs) ~= "table" or #errs == 0 then return "no error list" end
  for _, e in ipairs(errs) do
    if math.type(e.line) ~= "integer" or type(e.msg) ~= "string" or e.msg == "" then
      return "malformed error entry"
    end
  end
end

local function check_result(r)
  if type(r.map) ~= "table" or type(r.keys) ~= "table" or type(r.entries) ~= "table" then
    return "malformed result"
  end
  local last, seen = {}, {}
  for _, e in ipairs(r.entries) do
    if not dotenv.valid_key(e.key) then return "invalid key in result" end
    if type(e.value) ~= "string" or e.value:find("\0", 1, true) or not utf8.len(e.value) then
      return "value is not UTF-8 text"
    end
    if e.last_line < e.line then return "entry lines out of order" end
    last[e.key] = e.value
  end
  for _, k in ipairs(r.keys) do
    if seen[k] then return "key listed twice" end
    seen[k] = true
  end
  local ok, k = same_map(last, r.map)
  if not ok then return "map does not hold the last value of " .. tostring(k) end
  for k2 in pairs(r.map) do if not seen[k2] then return "key missing from keys" end end
end

-- One input: returns "valid" / "invalid", or raises through fail().
local function check(input, rng, crash_dir, n)
  local values = { "", "x", "a b # c", "line1\nline2", "q\"uo'te\\", "$HOME ${X}", "\tt\r" }
  local env = { HOME = "/h" }
  local res
  for _, expand in ipairs { false, true } do
    local ok, r, errs = pcall(dotenv.decode, input, { expand = expand, env = env })
    if not ok then fail(input, "decode raised: " .. tostring(r), crash_dir, n) end
    if r then
      local why = check_result(r)
      if why then fail(input, why, crash_dir, n) end
      if not expand then res = r end
    else
      local why = check_errors(errs)
      if why then fail(input, why .. " (expand=" .. tostring(expand) .. ")", crash_dir, n) end
    end
  end
  if not res then return "invalid" end
  -- round trip of the serialiser
  local text = dotenv.serialize(res.map)
  for _, expand in ipairs { false, true } do
    local back, errs = dotenv.decode(text, { expand = expand })
    if not back then fail(input, "serialize output does not parse: " .. errs[1].msg, crash_dir, n) end
    local ok, k = same_map(res.map, back.map)
    if not ok then fail(input, "serialize round trip changed " .. tostring(k), crash_dir, n) end
  end
  -- set / unset keep everything else
  local key = res.keys[1] and rng(2) == 1 and res.keys[rng(#res.keys)] or "FUZZ_KEY"
  local value = values[rng(#values)]
  -- (with expansion on, other values may refer to KEY: only KEY itself is compared, and an
  -- unset may leave a reference undefined)
  local eopts = { env = env }
  local ok, edited = pcall(dotenv.set, input, key, value, eopts)
  if not ok then fail(input, "set raised: " .. tostring(edited.msg or edited), crash_dir, n) end
  local after, errs = dotenv.decode(edited, eopts)
  if not after and not (res.expanded and errs[1].msg:find("^undefined variable")) then
    fail(input, "set output does not parse: " .. errs[1].msg, crash_dir, n)
  end
  local want = {}
  for k, v in pairs(res.map) do want[k] = v end
  want[key] = value
  if after then
    local same, k = same_map(want, after.map)
    if res.expanded then same = after.map[key] == value end
    if not same then fail(input, "set changed " .. tostring(k or key), crash_dir, n) end
  end
  local ok2, removed = pcall(dotenv.unset, input, key, eopts)
  if not ok2 then fail(input, "unset raised: " .. tostring(removed.msg or removed), crash_dir, n) end
  local gone, gerrs = dotenv.decode(removed, eopts)
  if not gone then
    if res.expanded and gerrs[1].msg:find("^undefined variable") then return "valid" end
    fail(input, "unset output does not parse: " .. gerrs[1].msg, crash_dir, n)
  end
  want[key] = nil
  local same, k = same_map(want, gone.map)
  if res.expanded then same = gone.map[key] == nil end
  if not same then fail(input, "unset changed " .. tostring(k or key), crash_dir, n) end
  return "valid"
end
M.check = check

function M.run(opts)
  opts = opts or {}
  local seed = opts.seed or os.time()
  math.randomseed(seed)
  local rng = math.random
  local corpus = {}
  for i, s in ipairs(M.SEEDS) do corpus[i] = s end
  local stats = { iterations = 0, valid = 0, invalid = 0, seed = seed }
  local deadline = opts.seconds and (os.clock() + opts.seconds)
  local limit = opts.iterations or math.huge
  local n = 0
  while n < limit and (not deadline or os.clock() < deadline) do
    n = n + 1
    local base = corpus[rng(#corpus)]
    local input = mutate(base, rng, corpus)
    local kind = check(input, rng, opts.crash_dir, n)
    stats[kind] = stats[kind] + 1
    -- keep some valid inputs as new material (bounded corpus)
    if kind == "valid" and #corpus < 256 and rng(8) == 1 then corpus[#corpus + 1] = input end
    if opts.log and n % 20000 == 0 then opts.log(stats, n) end
  end
  stats.iterations = n
  return stats
end

return M
