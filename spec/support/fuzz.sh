#!/bin/sh
# Fuzzers, SECONDS each:
#   * every Lua mutation fuzzer in spec/fuzz/*.lua (parsers written in Lua: dotenv, ...), run
#     with the built binary: `build/db-tool spec/fuzz/NAME.lua SECONDS`;
#   * the libFuzzer target of the psql-script lexer (src/fuzz_sqlscan.c) with AddressSanitizer
#     and UBSan. Needs clang (Debian: apt-get install clang).
#   sh spec/support/fuzz.sh [SECONDS [NAME...]]  (default 60; `make fuzz`, FUZZ_SECONDS=N)
# NAMEs pick fuzzers: sqlscan (the libFuzzer target), or the base name of a spec/fuzz/*.lua
# (`sh spec/support/fuzz.sh 300 sqlscan`: only the lexer, five minutes). Run it under
# `nice -n 10` on a shared machine.
# The corpus is kept in build-fuzz/corpus; crashes are written to build-fuzz/crash-* (Lua
# fuzzers: build-fuzz/<name>-crash-*). Replay one: build-fuzz/fuzz_sqlscan build-fuzz/crash-…
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
secs=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
wanted() { n=$1; shift; [ $# -eq 0 ] && return 0; case " $* " in *" $n "*) return 0 ;; esac; return 1; }
mkdir -p build-fuzz
for f in spec/fuzz/*.lua; do
  [ -f "$f" ] || continue
  wanted "$(basename "$f" .lua)" "$@" || continue
  echo "fuzz: $f for ${secs}s"
  DB_TOOL_LUA_PATH= "${DB_TOOL_BIN:-build/db-tool}" "$f" "$secs"
done
wanted sqlscan "$@" || exit 0
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "fuzz: clang not found (apt-get install clang)" >&2
  exit 127
fi
out=build-fuzz
mkdir -p "$out/corpus"
# shellcheck disable=SC2046
"$CLANG" -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -D_GNU_SOURCE -Isrc $(pkg-config --cflags lua5.4) \
  -o "$out/fuzz_sqlscan" src/fuzz_sqlscan.c src/lsqlscan.c $(pkg-config --libs lua5.4) -lm
# seeds: the kinds of text the lexer must handle
i=0
for s in \
  "SELECT 1; SELECT 'a;''b', E'\\';', \"x;\"\"y\";" \
  "CREATE FUNCTION f() RETURNS int AS \$body\$ BEGIN x := 1; RETURN \$1; END \$body\$ LANGUAGE plpgsql;" \
  "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END;" \
  "\\set x 'v'
SELECT :x, :'x', :\"x\", :{?x}, a::int, b[1:2] \\; SELECT 2;
\\if :{?x}
\\echo yes
\\endif" \
  "/* a /* nested; */ ; */ SELECT 1 -- c;
; U&'\\0041' B'1' X'f' N'n' E'a'
'\\'' ;" \
  "SELECT 0x1F\$t\$:a, 1e5\$t\$, 1\$t\$ x \$t\$, 0.5e--x; 1..2; \$e'\\';'; \$a:b \$\$x\$\$;" \
  "CREATE FUNCTION f() RETURNS int LANGUAGE sql
\\echo mid
BEGIN ATOMIC SELECT (1; \\; BEGIN; END;" \
  "COPY t (a, b) FROM stdin;
1	x
\\N	y\\tz
\\.
SELECT 1;" \
  "SELECT

1 -- c


\\echo x

+ '

' /*

*/;
\\g"
do
  i=$((i + 1))
  printf '%s' "$s" > "$out/corpus/seed$i"
done
echo "fuzz: running for ${secs}s"
"$out/fuzz_sqlscan" -max_total_time="$secs" -max_len=4096 -timeout=10 \
  -artifact_prefix="$out/" "$out/corpus"
