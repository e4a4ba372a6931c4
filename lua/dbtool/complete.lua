-- Shell completion from the command specs: `db-tool completion bash|zsh|fish` prints a small
-- script for the shell; on TAB it runs `db-tool __complete SHELL -- WORDS...` (the words of
-- the line up to the cursor), which walks the same specs the engine parses with — the
-- project's overrides and added commands included — and prints the candidates, one a line
-- (zsh, fish: "value<TAB>description"). `::files` / `::dirs` ask the shell for paths.
local command = require "dbtool.command"

local M = {}

M.SHELLS = { "bash", "zsh", "fish" }

-- the words db-tool itself takes before a program's
local DB_TOOL_WORDS = {
  { "run", "run a script with the db-tool Lua API" },
  { "sql", "run a psql script (database sql)" },
  { "completion", "print a shell completion script (bash, zsh, fish)" },
  { "help", "the help of db-tool" },
}

local function cands()
  local list = {}
  return list, function(value, desc) list[#list + 1] = { value, desc } end
end

local function option_names(options, add)
  for _, o in ipairs(options or {}) do
    if not o.hidden then
      for _, n in ipairs(o) do add(n, o.help) end
    end
  end
end

local function index(options)
  local idx = {}
  for _, o in ipairs(options or {}) do
    for _, n in ipairs(o) do idx[n] = o end
  end
  return idx
end

-- Candidates for the value of option `opt`.
local function option_values(opt, add, ctx)
  if opt.choices then
    for _, c in ipairs(opt.choices) do add(c) end
  elseif type(opt.complete) == "function" then
    for _, c in ipairs(opt.complete(ctx) or {}) do add(c) end
  elseif opt.complete == "dir" then
    add("::dirs")
  elseif opt.complete == "file" or opt.arg and (opt.arg:find("FILE") or opt.arg == "PATH") then
    add("::files")
  elseif opt.arg == "DIR" then
    add("::dirs")
  end
end

-- The options at a point of the walk: the level's own, then the group's `anywhere` ones.
local function options_at(spec, globals)
  local list = {}
  for _, o in ipairs(spec and spec.options or {}) do list[#list + 1] = o end
  for _, o in ipairs(globals or {}) do list[#list + 1] = o end
  return list
end

local anywhere = command.anywhere_of
local group_options = command.group_options

local function project()
  local ok, p = pcall(function() return require("dbtool.project").load() end)
  return ok and p or nil
end

--- Candidates for the last word of `words` (words[1] is the program as typed). Returns a
--- list of {value, description}.
function M.candidates(words)
  local list, add = cands()
  local prog = (words[1] or ""):match("([^/]+)$") or ""
  prog = prog:gsub("%.sh$", "")
  local cli = require "dbtool.cli"
  local k = 2
  if not cli.personalities[prog] or prog == "db-tool" then
    -- db-tool [program ...] | run FILE | sql ... | completion SHELL
    if #words == 2 then
      for _, p in ipairs(cli.programs) do
        if p ~= "db-tool" then add(p, require(cli.personalities[p]).summary) end
      end
      for _, w in ipairs(DB_TOOL_WORDS) do add(w[1], w[2]) end
      return list
    end
    local first = words[2]
    if first == "completion" then
      if #words == 3 then for _, s in ipairs(M.SHELLS) do add(s) end end
      return list
    elseif first == "run" then
      add("::files")
      return list
    elseif first == "sql" then
      prog, k = "database", 2
    elseif cli.personalities[first] and first ~= "db-tool" then
      prog, k = first, 3
    else
      add("::files")
      return list
    end
  end
  local spec = cli.program(prog)
  local proj = project()
  local globals = {}
  local cur = words[#words]
  local level = spec          -- the group or command the words are in
  local gopts = command.is_group(spec) and group_options(spec) or options_at(nil, command.STANDARD)
  local positional = {}
  local leading_done = false
  local i = k
  while i < #words do
    local w = words[i]
    if w:sub(1, 1) == "-" and w ~= "-" then
      local flag = w:match("^([^=]*)=") or w
      local own = command.is_group(level) and {} or index(level.options)
      local o = own[flag] or index(gopts)[flag]
      if o and o.arg and not w:find("=", 1, true) then
        i = i + 1
        if i == #words then
          option_values(o, add, { globals = globals })
          return list
        end
        if o.key then globals[o.key] = words[i] end
      elseif o and o.key then
        globals[o.key] = w:match("=(.*)$") or true
      end
    elseif command.is_group(level) then
      local entry = command.lookup(level, w, proj)
      if entry then
        if command.is_group(entry.module) then
          gopts = group_options(entry.module, anywhere(gopts))
        end
        level = entry.module
      elseif level.leading and not leading_done then
        leading_done = true
        globals[level.leading] = w
      end
    else
      positional[#positional + 1] = w
    end
    i = i + 1
  end
  -- the word under the cursor
  if cur:sub(1, 2) == "--" and cur:find("=", 1, true) then
    local flag = cur:match("^([^=]*)=")
    local o = (not command.is_group(level) and index(level.options)[flag]) or index(gopts)[flag]
    if o and o.arg then
      local vals, addv = cands()
      option_values(o, addv, { globals = globals })
      for _, v in ipairs(vals) do add(v[1]:sub(1, 2) == "::" and v[1] or (flag .. "=" .. v[1]), v[2]) end
    end
    return list
  end
  if cur:sub(1, 1) == "-" then
    if not command.is_group(level) then option_names(level.options, add) end
    option_names(command.is_group(level) and gopts or anywhere(gopts), add)
    add("--help", "show the help")
    return list
  end
  if command.is_group(level) then
    for name, c in pairs(command.commands(level, proj)) do add(name, c.summary) end
    for alias, target in pairs(level.aliases or {}) do add(alias, "alias of " .. target) end
    if level.leading and not leading_done and level.name == "rickdb" then
      for _, db in ipairs(require("dbtool.rickdb.common").database_names(globals)) do
        add(db, "database [db_" .. db .. "]")
      end
    end
    return list
  end
  if type(level.complete) == "function" then
    for _, c in ipairs(level.complete({ globals = globals }, positional) or {}) do add(c) end
    return list
  end
  local p = (level.positionals or {})[#positional + 1]
  if p then
    -- a positional named for a path completes paths (file, path, backup)
    if not p.complete and not p.choices and (p[1] == "file" or p[1] == "path" or p[1] == "backup") then
      add("::files")
    else
      option_values(p, add, { globals = globals })
    end
  end
  return list
end

--- The candidates starting with the word under the cursor, as lines for `shell`.
function M.lines(shell, words)
  local cur = words[#words] or ""
  local out, seen = {}, {}
  for _, c in ipairs(M.candidates(words)) do
    local v, desc = c[1], c[2]
    if v:sub(1, 2) == "::" then
      if not seen[v] then out[#out + 1] = v end
    elseif v:sub(1, #cur) == cur and not seen[v] then
      if shell == "bash" then
        -- bash splits `--opt=value` at '=': it completes the part after it
        local eq = cur:find("=", 1, true)
        out[#out + 1] = eq and v:sub(eq + 1) or v
      else
        desc = desc and desc:gsub("[\t\n]", " "):sub(1, 80) or nil
        if shell == "zsh" then
          out[#out + 1] = v:gsub(":", "\\:") .. (desc and (":" .. desc) or "")
        else
          out[#out + 1] = v .. (desc and ("\t" .. desc) or "")
        end
      end
    end
    seen[v] = true
  end
  table.sort(out)
  return out
end

local PROGRAMS = "database migrator rickdb postgres-init postgres-cleanup db-ops db-tool"

local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The completion script for `shell`, calling `bin` (the absolute path of db-tool).
function M.script(shell, bin)
  local b = shq(bin):gsub("%%", "%%%%")
  if shell == "bash" then
    return ([==[
# bash completion for db-tool and its programs (`db-tool completion bash`; generated from
# the command specs: the candidates come from `db-tool __complete`).
_db_tool_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n' line out
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
  # bash splits --opt=value at '=': give db-tool the word as typed
  if [[ $COMP_CWORD -ge 2 && ${COMP_WORDS[COMP_CWORD-1]} == "=" ]]; then
    words=("${COMP_WORDS[@]:0:COMP_CWORD-2}" "${COMP_WORDS[COMP_CWORD-2]}=$cur")
  elif [[ $cur == "=" ]]; then
    words=("${COMP_WORDS[@]:0:COMP_CWORD-1}" "${COMP_WORDS[COMP_CWORD-1]}=")
    cur=
  fi
  out=$(@BIN@ __complete bash -- "${words[@]}" 2>/dev/null) || return 0
  COMPREPLY=()
  for line in $out; do
    case $line in
      ::files) COMPREPLY+=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
      ::dirs) COMPREPLY+=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null ;;
      *) COMPREPLY+=("$line") ;;
    esac
  done
}
complete -F _db_tool_complete @PROGRAMS@
]==]):gsub("@BIN@", b):gsub("@PROGRAMS@", PROGRAMS)
  elseif shell == "zsh" then
    return ([==[
#compdef @PROGRAMS@
# zsh completion for db-tool and its programs (`db-tool completion zsh`; generated from the
# command specs: the candidates come from `db-tool __complete`).
_db_tool() {
  local -a lines described
  local line
  lines=("${(@f)$(@BIN@ __complete zsh -- "${(@)words[1,CURRENT]}" 2>/dev/null)}")
  for line in "${lines[@]}"; do
    case $line in
      ::files) _files ;;
      ::dirs) _files -/ ;;
      '') ;;
      *) described+=("$line") ;;
    esac
  done
  (( ${#described} )) && _describe -t values 'db-tool' described
  return 0
}
if [[ ${funcstack[1]} == _db_tool ]]; then
  _db_tool "$@"
else
  compdef _db_tool @PROGRAMS@
fi
]==]):gsub("@BIN@", b):gsub("@PROGRAMS@", PROGRAMS)
  elseif shell == "fish" then
    return ([==[
# fish completion for db-tool and its programs (`db-tool completion fish`; generated from the
# command specs: the candidates come from `db-tool __complete`).
function __db_tool_complete
    set -l words (commandline -opc) (commandline -ct)
    for line in (@BIN@ __complete fish -- $words 2>/dev/null)
        switch $line
            case '::files'
                __fish_complete_path (commandline -ct)
            case '::dirs'
                __fish_complete_directories (commandline -ct)
            case '*'
                echo $line
        end
    end
end
for prog in @PROGRAMS@
    complete -c $prog -f -a '(__db_tool_complete)'
end
]==]):gsub("@BIN@", b):gsub("@PROGRAMS@", PROGRAMS)
  end
end

--- `db-tool completion SHELL [--bin PATH]`.
M.SPEC = {
  name = "completion",
  prog = "db-tool completion",
  summary = "print the completion script of a shell (for every program of db-tool)",
  usage = "db-tool completion bash|zsh|fish [--bin PATH]",
  options = {
    { "--bin", arg = "PATH", help = "the db-tool the script calls (default: this one, by absolute path)" },
  },
  positionals = { { "shell", choices = M.SHELLS } },
  help = [[
  bash:  eval "$(db-tool completion bash)"      (or save it as
         ~/.local/share/bash-completion/completions/database, one link per program)
  zsh:   db-tool completion zsh > ~/.zfunc/_db_tool   (with ~/.zfunc in $fpath before compinit)
  fish:  db-tool completion fish > ~/.config/fish/completions/database.fish (one per program)
`make install` puts them in the standard places. Candidates come from the command specs at
TAB time: subcommands, options and their values, a project's own commands, migration names
after `migrator migrate to`, rickdb's database names.]],
  run = function(_, opts)
    local bin = opts.bin or require("dbtool.core").exe() or "db-tool"
    io.stdout:write((M.script(opts.shell, bin)))
    return 0
  end,
}

--- `db-tool __complete SHELL -- WORDS...`: the candidates, one a line. Never fails loudly:
--- a completion must not print errors into the user's line.
function M.complete_main(argv)
  local shell = argv[1]
  local words = {}
  local start = 2
  if argv[2] == "--" then start = 3 end
  for j = start, #argv do words[#words + 1] = argv[j] end
  if #words == 0 then return 0 end
  local ok, lines = pcall(M.lines, shell, words)
  if ok then
    io.stdout:write(table.concat(lines, "\n"), #lines > 0 and "\n" or "")
    return 0
  end
  return 1
end

return M
