/*
 * fuzz_sqlscan.c — libFuzzer target for the psql-script lexer (lsqlscan.c).
 *
 * Each input is scanned whole and again in chunks (sizes taken from its first byte), with
 * and without standard_conforming_strings; the events must be identical, positions must
 * stay in range and progress, and copy_scan/newlines must agree with a plain count.
 * Any violation aborts. Not part of the normal build (the Makefile skips src/fuzz_*.c).
 *
 *   sh spec/support/fuzz.sh [SECONDS]      (make fuzz; needs clang)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lua.h"
#include "lualib.h"
#include "lauxlib.h"

int luaopen_dbtool_core_sqlscan(lua_State *L);

static const char fz_driver[] =
  "local sqlscan = ...\n"
  "local function events(text, chunk, std)\n"
  "  local sc = sqlscan.new { std_strings = std }\n"
  "  local out = {}\n"
  "  local buf, base, off, pos, eof = '', 0, 0, 1, false\n"
  "  local start_abs\n"
  "  local function refill(keep)\n"
  "    local piece = text:sub(off + 1, off + chunk)\n"
  "    off = off + #piece\n"
  "    buf = buf:sub(keep) .. piece\n"
  "    base = base + keep - 1\n"
  "    pos = 1\n"
  "    eof = off >= #text\n"
  "  end\n"
  "  refill(1)\n"
  "  local steps = 0\n"
  "  while true do\n"
  "    steps = steps + 1\n"
  "    assert(steps < 20 * #text + 100, 'no progress')\n"
  "    local kind, p, q, start, name, vkind = sc:scan(buf, pos, eof)\n"
  "    assert(p >= pos and p <= #buf + 1 and q >= p and q <= #buf + 1, 'position out of range')\n"
  "    if type(start) == 'number' then\n"
  "      assert(start >= pos and start <= p, 'bad start')\n"
  "      start_abs = base + start\n"
  "    end\n"
  "    if kind == 'semi' then\n"
  "      assert(buf:sub(p, p) == ';', 'semi not at ;')\n"
  "      out[#out + 1] = 'S' .. start_abs .. '-' .. (base + p)\n"
  "      start_abs = nil\n"
  "      pos = p + 1\n"
  "    elseif kind == 'var' then\n"
  "      assert(buf:sub(p, p) == ':' and #name > 0, 'bad var')\n"
  "      out[#out + 1] = 'V' .. vkind .. (base + p) .. '-' .. (base + q) .. name\n"
  "      pos = q + 1\n"
  "    elseif kind == 'esc' then\n"
  "      assert(buf:sub(p, p) == '\\\\', 'bad esc')\n"
  "      out[#out + 1] = 'E' .. (base + p)\n"
  "      pos = p + 2\n"
  "    elseif kind == 'blank' then\n"
  "      assert(buf:sub(p, p) == '\\n' and sc:state().started, 'bad blank')\n"
  "      out[#out + 1] = 'B' .. (base + p)\n"
  "      pos = p + 1\n"
  "    elseif kind == 'meta' then\n"
  "      assert(buf:sub(p, p) == '\\\\', 'bad meta')\n"
  "      local nl = buf:find('\\n', p, true)\n"
  "      if not nl and not eof then refill(p) else\n"
  "        out[#out + 1] = 'M' .. (base + p)\n"
  "        pos = nl or #buf + 1\n"
  "      end\n"
  "    elseif kind == 'more' then\n"
  "      assert(not eof, 'more at eof')\n"
  "      refill(p)\n"
  "    else\n"
  "      assert(kind == 'eof' and p == #buf + 1, 'bad eof')\n"
  "      if eof then\n"
  "        local st = sc:state()\n"
  "        out[#out + 1] = 'Z' .. st.state .. st.paren .. st.begin .. tostring(st.started)\n"
  "        return table.concat(out, ' ')\n"
  "      end\n"
  "      refill(p)\n"
  "    end\n"
  "  end\n"
  "end\n"
  "return function(text)\n"
  "  local c = (text:byte(1) or 0) % 17 + 1\n"
  "  for _, std in ipairs { true, false } do\n"
  "    local whole = events(text, #text + 1, std)\n"
  "    for _, size in ipairs { 1, 2, c, 64 } do\n"
  "      local part = events(text, size, std)\n"
  "      if part ~= whole then error('chunk size ' .. size .. ' differs:\\n' .. whole .. '\\n' .. part) end\n"
  "    end\n"
  "  end\n"
  "  local n = select(2, text:gsub('\\n', ''))\n"
  "  local cnt, last = sqlscan.newlines(text)\n"
  "  assert(cnt == n, 'newlines count')\n"
  "  assert((last == nil) == (n == 0), 'newlines last')\n"
  "  local i = 1\n"
  "  while i <= #text do\n"
  "    local found, dend, resume = sqlscan.copy_scan(text, i, true)\n"
  "    assert(dend >= i - 1 and resume > dend and resume <= #text + 1, 'copy_scan range')\n"
  "    if not found then break end\n"
  "    assert(text:sub(dend + 1, dend + 2) == '\\\\.', 'copy_scan end marker')\n"
  "    i = resume\n"
  "  end\n"
  "end\n";

static lua_State *fz_L;
static int fz_ref = LUA_NOREF;

static void fz_init(void) {
  fz_L = luaL_newstate();
  luaL_openlibs(fz_L);
  if (luaL_loadbuffer(fz_L, fz_driver, sizeof fz_driver - 1, "=fuzz_driver") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(fz_L, -1));
    abort();
  }
  luaL_requiref(fz_L, "dbtool.core.sqlscan", luaopen_dbtool_core_sqlscan, 0);
  if (lua_pcall(fz_L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(fz_L, -1));
    abort();
  }
  fz_ref = luaL_ref(fz_L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fz_L == NULL) fz_init();
  if (size > 4096) return 0;
  lua_rawgeti(fz_L, LUA_REGISTRYINDEX, fz_ref);
  lua_pushlstring(fz_L, (const char *)data, size);
  if (lua_pcall(fz_L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "sqlscan invariant violated: %s\n", lua_tostring(fz_L, -1));
    abort();
  }
  lua_gc(fz_L, LUA_GCSTEP, 0);
  return 0;
}
