# db-tool — build, test and install.
#
#   make deps      install the Debian packages we need (idempotent; root or sudo)
#   make           build build/db-tool and the personality links
#   make check     warnings-as-errors build, luacheck, every busted spec
#   make asan      the same suite under AddressSanitizer + UBSan
#   make demo      deps, build, start a cluster, deploy examples/
#   make install   PREFIX=/usr/local (DESTDIR honoured): binaries, links, man pages, completions
#   make uninstall the same PREFIX/DESTDIR: removes all of it
#   make bench     the benchmarks in bench/

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
BUILD      ?= build
CC         ?= cc
PKGS       := lua5.4 libpq libsodium sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libpq is dlopen'ed on first use (src/lpg.c): only its headers are needed at build time
PKG_LIBS   := $(shell pkg-config --libs lua5.4 libsodium sqlite3 2>/dev/null)
OPT        ?= -O2
CFLAGS     ?= $(OPT) -g
CWARN      := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS   += -D_GNU_SOURCE -Isrc -I$(BUILD)
LDLIBS     += $(PKG_LIBS) -lm -ldl
# -E: luaposix and other C modules loaded with dlopen resolve the Lua API in us
LDFLAGS    += -Wl,-E

PERSONALITIES := database postgres-cleanup migrator rickdb db-ops
# every program a user calls (one manual page each)
PROGRAMS   := database migrator rickdb postgres-init postgres-cleanup db-ops db-tool
MANPAGES   := $(PROGRAMS:%=$(BUILD)/man/%.1)
LUA_FILES  := $(shell find lua -type f -name '*.lua' 2>/dev/null | LC_ALL=C sort)
SQL_FILES  := $(shell find sql -type f 2>/dev/null | LC_ALL=C sort)
SRC        := $(filter-out src/embed.c src/fuzz_%.c,$(wildcard src/*.c))
OBJ        := $(SRC:src/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
HDR        := $(wildcard src/*.h)

.PHONY: all deps check asan demo install uninstall bench clean lint spec fuzz

all: $(BUILD)/db-tool $(PERSONALITIES:%=$(BUILD)/%) $(BUILD)/postgres-init $(MANPAGES)

$(BUILD)/db-tool: $(OBJ)
	$(CC) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/%.o: src/%.c $(HDR) | $(BUILD)
	$(CC) $(CWARN) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/embed: src/embed.c | $(BUILD)
	$(CC) $(CWARN) $(CFLAGS) -o $@ $<

$(BUILD)/embedded.c: $(BUILD)/embed $(LUA_FILES) $(SQL_FILES)
	$(BUILD)/embed $@ $(LUA_FILES) $(SQL_FILES)

$(BUILD)/embedded.o: $(BUILD)/embedded.c | $(BUILD)
	$(CC) -std=c11 -Wall -Wextra -Werror $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(PERSONALITIES:%=$(BUILD)/%): | $(BUILD)/db-tool
	ln -sf db-tool $@

# postgres-init is a POSIX sh shim so that `. postgres-init` exports into the caller.
# The shim names the binary by absolute path: when sourced, $$0 is the caller's shell.
$(BUILD)/postgres-init: src/postgres-init.sh | $(BUILD)
	sed 's|@DB_TOOL@|$(abspath $(BUILD))/db-tool|' src/postgres-init.sh > $@ && chmod 755 $@

# manual pages from the command specs (built-ins only: no project, no DB_TOOL_LUA_PATH)
$(BUILD)/man/%.1: $(BUILD)/db-tool
	@mkdir -p $(BUILD)/man
	cd / && env -u DB_TOOL_LUA_PATH -u LOCAL_DIR -u MIGRATION_DIR DATABASE_DIR=/nonexistent \
	  $(abspath $(BUILD))/db-tool __man $* > $(abspath $@).tmp && mv $(abspath $@).tmp $(abspath $@)

$(BUILD):
	mkdir -p $@

deps:
	@sh .ci/deps.sh

lint:
	luacheck -q $$(ls -d lua spec examples bench 2>/dev/null)

# The suite starts real PostgreSQL servers, which refuse to run as root: as root we copy
# the tree to a scratch directory owned by an unprivileged user and run it there.
# deps first, then a fresh make (pkg-config flags are read when the Makefile is parsed)
check: deps
	@$(MAKE) --no-print-directory all
	@sh spec/support/run-checks.sh

# make spec SPEC="spec/unit/args_spec.lua spec/cli"   (no luacheck; as the test user too)
spec: all
	@SPEC="$(SPEC)" sh spec/support/run-checks.sh

asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-Wl,-E -fsanitize=address,undefined" all
	@DB_TOOL_BUILD=build-asan sh spec/support/run-checks.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@sh examples/demo.sh

bench: all
	@sh bench/run.sh

# the TOML parser (Lua-level mutation + round-trip fuzzing), the Lua fuzzers of spec/fuzz/
# (dotenv, the project-file loader, the migration-directory scanners), then the C lexer
fuzz: all
	@$(BUILD)/db-tool spec/support/fuzz_toml.lua $${FUZZ_SECONDS:-60}
	@sh spec/support/fuzz.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 $(BUILD)/db-tool $(DESTDIR)$(BINDIR)/db-tool
	for p in $(PERSONALITIES); do ln -sf db-tool $(DESTDIR)$(BINDIR)/$$p; done
	sed 's|@DB_TOOL@|$(BINDIR)/db-tool|' src/postgres-init.sh > $(DESTDIR)$(BINDIR)/postgres-init
	chmod 755 $(DESTDIR)$(BINDIR)/postgres-init
	for p in $(PROGRAMS); do install -m 644 $(BUILD)/man/$$p.1 $(DESTDIR)$(MANDIR)/man1/$$p.1; done
	$(BUILD)/db-tool completion bash --bin $(BINDIR)/db-tool > $(DESTDIR)$(BASHCOMPDIR)/db-tool
	$(BUILD)/db-tool completion zsh --bin $(BINDIR)/db-tool > $(DESTDIR)$(ZSHCOMPDIR)/_db_tool
	$(BUILD)/db-tool completion fish --bin $(BINDIR)/db-tool > $(DESTDIR)$(FISHCOMPDIR)/db-tool.fish
	for p in $(filter-out db-tool,$(PROGRAMS)); do \
	  ln -sf db-tool $(DESTDIR)$(BASHCOMPDIR)/$$p; ln -sf db-tool.fish $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; done

parent = $(patsubst %/,%,$(dir $(1)))

# removes what install put there, then the directories it leaves empty
uninstall:
	for p in $(PROGRAMS); do rm -f $(DESTDIR)$(BINDIR)/$$p $(DESTDIR)$(MANDIR)/man1/$$p.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; done
	rm -f $(DESTDIR)$(ZSHCOMPDIR)/_db_tool
	for d in $(MANDIR)/man1 $(MANDIR) $(BASHCOMPDIR) $(call parent,$(BASHCOMPDIR)) $(ZSHCOMPDIR) \
	  $(call parent,$(ZSHCOMPDIR)) $(FISHCOMPDIR) $(call parent,$(FISHCOMPDIR)) $(PREFIX)/share \
	  $(BINDIR) $(PREFIX); do rmdir $(DESTDIR)$$d 2>/dev/null || true; done

clean:
	rm -rf $(BUILD) build-asan
