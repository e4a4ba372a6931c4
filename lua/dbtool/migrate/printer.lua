-- `migrate --dry-run --sql`: a connection-shaped printer. dbtool.sqlrun runs a migration
-- script through it exactly as it would through libpq — psql variables interpolated, \i and
-- \ir followed, \if branches taken, inline COPY data streamed — and every statement that
-- would be sent is written out instead of executed. What sqlrun asks a connection (quoting,
-- standard_conforming_strings) is answered by the real one, which executes nothing.
local M = {}

local P = {}
P.__index = P

--- A printer over the real connection `real` (for quoting), writing with write(s).
function M.new(real, write)
  return setmetatable({ real = real, write = write, pending = nil }, P)
end

local function copy_in(text)
  local l = text:lower()
  return l:match("^%s*copy%s") ~= nil and l:find("from%s+stdin") ~= nil
end

function P:send_query(text)
  text = text:gsub("%s+$", "")
  self.write(text .. (text:sub(-1) == ";" and "\n" or ";\n"))
  self.pending = { status = copy_in(text) and "COPY_IN" or "COMMAND_OK", n = 0, fields = {}, types = {} }
  return true
end

function P:get_result()
  local r = self.pending
  self.pending = nil
  return r
end

function P:exec(sql)
  self.write(sql .. ";\n")
  return { n = 0, status = "COMMAND_OK" }
end

function P:put_copy_data(s) self.write(s) end
function P:put_copy_end() self.write("\\.\n") end
function P.get_copy_data() return nil end
function P:parameter_status(name) return self.real:parameter_status(name) end
function P:escape_literal(s) return self.real:escape_literal(s) end
function P:escape_identifier(s) return self.real:escape_identifier(s) end
function P.status() return "ok" end
function P.transaction_status() return "intrans" end
function P.closed() return false end
function P.on_notice() end

return M
