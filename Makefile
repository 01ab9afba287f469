# trainctl build. `make` builds; `make check` installs missing packages,
# builds and runs every test; `make demo` runs a workflow on each of the
# three clouds against cloudsim; `make install`, `make deb` package it.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PKGS = lua5.4 libcurl openssl libedit
VERSION = 0.1.0

PKG_CONFIG ?= pkg-config
DEPS_SH ?= ./scripts/deps.sh

# What the build takes from the system is looked up when a recipe first
# needs it, then kept; never while make reads this file, which on a fresh
# machine is before `deps` has installed anything (`make deps all` works,
# and so do check, demo and the others that run deps first). Missing
# packages stop the build with one line saying what to run.
need_pkgs = $(if $(shell $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && command -v lua5.4),,$(error \
	build packages missing ($(PKGS) for pkg-config, lua5.4): run 'make deps' to install them))
PKG_CFLAGS = $(need_pkgs)$(eval PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS)))$(PKG_CFLAGS)
# libcurl, libcrypto and libedit are not linked: src/lazy.c loads them
# on first use, which keeps start-up near a bare lua5.4.
PKG_LIBS = $(need_pkgs)$(eval PKG_LIBS := $(shell $(PKG_CONFIG) --libs lua5.4))$(PKG_LIBS)
CJSON_LIB ?= $(eval CJSON_LIB := $(firstword $(wildcard /usr/lib/*/liblua5.4-cjson.a \
	/usr/lib/liblua5.4-cjson.a /usr/local/lib/liblua5.4-cjson.a)))$(or $(CJSON_LIB),$(error \
	liblua5.4-cjson.a missing (package lua-cjson-dev): run 'make deps' to install it))

CFLAGS ?= -O2 -g
WARN = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CPPFLAGS += -D_GNU_SOURCE -DTRAINCTL_VERSION='"$(VERSION)"'
ALL_CFLAGS = $(WARN) $(CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) -Isrc/core -Isrc/lua -Isrc/cli
LIBS = $(CJSON_LIB) $(PKG_LIBS) -ldl -lm

# src/core never touches Lua; src/lua binds it to Lua; src/cli is the
# command line (docs/architecture.md).
LAYERS = core lua cli
SRCS = $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.c))
HDRS = $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.h))
LUA_SRCS = $(sort $(wildcard lua/trainctl/*.lua lua/trainctl/*/*.lua))
LUA_ALIASES = lua/trainctl/aliases.lua
BUILD ?= build
OBJS = $(SRCS:src/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
LIB_OBJS = $(filter-out $(BUILD)/cli/main.o,$(OBJS))

BIN ?= trainctl

all: $(BIN)

$(BIN): $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(BUILD)/%.o: src/%.c $(HDRS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/embedded.c: $(LUA_SRCS) scripts/embed.lua | $(BUILD)
	$(need_pkgs)lua5.4 scripts/embed.lua --aliases $(LUA_ALIASES) $(LUA_SRCS) > $@.tmp && mv $@.tmp $@

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD):
	mkdir -p $@

# C unit tests link the native modules without main.c.
UNIT_SRCS = $(wildcard tests/unit/*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

$(BUILD)/unit/%: tests/unit/%.c tests/unit/tap.h $(LIB_OBJS)
	@mkdir -p $(BUILD)/unit
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS)

unit: $(UNIT_BINS)

deps:
	@$(DEPS_SH)

# `make deps all`: the packages come before anything is compiled, -j or not.
ifneq ($(filter deps,$(MAKECMDGOALS)),)
$(OBJS) $(BUILD)/embedded.c: | deps
endif

lint: format-check
	luacheck -q lua tests examples bench

C_FILES = $(SRCS) $(HDRS) $(wildcard tests/unit/*.c tests/unit/*.h tests/fuzz/*.c)

format:
	clang-format -i $(C_FILES)

# clang-format is optional on a build machine; the check runs where it is.
format-check:
	@if command -v clang-format >/dev/null; then \
		clang-format --dry-run -Werror $(C_FILES) || { echo "run: make format"; exit 1; }; \
	fi

# Two test files at a time: the suite mostly waits on its emulators,
# servers and clocks (about 3 minutes of CPU in 9 minutes of one file at
# a time). The slowest start first, rather than where the alphabet puts
# them. PROVE_JOBS=1 runs one at a time. A failing test is named with
# its diagnostics (-f, and -o for the comments that carry them), which
# prove otherwise leaves out of its report; --timer says how long each
# file took.
PROVE_JOBS ?= 2
SLOW_TESTS = tests/reliability.t tests/integration.t tests/host.t tests/etcd.t \
	tests/soak.t tests/loop.t
TESTS = $(SLOW_TESTS) $(filter-out $(SLOW_TESTS),$(sort $(wildcard tests/*.t)))

check: deps
	$(MAKE) all unit
	$(MAKE) lint
	prove -j$(PROVE_JOBS) -f -o --timer $(PROVE_FLAGS) $(TESTS)

# Same tests, sanitised build in its own directory. ASan's runtime comes
# after libfaketime's in the tests that fake the clock
# (verify_asan_link_order=0), and leaves RLIMIT_CORE to trainctl, whose
# TRAINCTL_CORE_DUMPS a test checks (disable_coredump=0).
check-asan: deps
	$(MAKE) BUILD=build-asan BIN=trainctl.asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" all unit
	ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0:disable_coredump=0 UBSAN_OPTIONS=print_stacktrace=1 \
		TRAINCTL=./trainctl.asan TRAINCTL_UNIT_DIR=build-asan/unit prove -f -o --timer $(PROVE_FLAGS) $(TESTS)

valgrind: deps
	$(MAKE) all unit
	for t in $(UNIT_BINS); do valgrind -q --error-exitcode=99 --leak-check=full $$t >/dev/null || exit 1; done
	valgrind -q --error-exitcode=99 --leak-check=full ./trainctl -e 'local c=require"trainctl.crypto"; assert(#c.sha256("x")==32)'

# deps first, then a make of its own: its pkg-config calls run once the
# packages are there (this make parsed the file before they were).
demo: deps
	$(MAKE) all
	./scripts/demo.sh

bench:
	@$(DEPS_SH) --bench
	$(MAKE) all
	./bench/run.sh

fuzz:
	@$(DEPS_SH) --fuzz
	$(MAKE) -C tests/fuzz

# Each example 50 times under 20 % injected faults and 20 times killed
# with SIGKILL, against cloudsim, then 4 instances of each at once on one
# default state file, the operator rounds and the nightly rounds; prints
# the counts and seeds (about 30 minutes).
soak: deps
	$(MAKE) all
	python3 tests/soak/soak.py $(SOAK_FLAGS)
	$(MAKE) soak-hosts

# Several hosts against a 3-member etcd cluster under 20 % faults, holders
# killed and paused past their TTL, an etcd member restarted (about 2
# minutes); skipped where etcd-server is not installed.
.PHONY: soak-hosts
soak-hosts: all
	@if command -v etcd >/dev/null; then python3 tests/soak/hosts.py --jobs 30 $(SOAK_HOSTS_FLAGS); \
	else echo "soak-hosts: etcd-server is not installed; skipped"; fi

# Where `make install` puts things; debian/rules sets ZSH_COMPDIR to
# Debian's vendor directory.
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man/man1
DATADIR = $(PREFIX)/share/trainctl
DOCDIR = $(PREFIX)/share/doc/trainctl
BASH_COMPDIR = $(PREFIX)/share/bash-completion/completions
ZSH_COMPDIR = $(PREFIX)/share/zsh/site-functions
DOCS = README.md docs/lua-api.md docs/providers.md docs/cookbook.md docs/cloudsim.md docs/reliability.md

# The completion scripts come from the binary (`trainctl completion SHELL`,
# generated from its operation tables); a trainctl without that command
# installs none.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(DATADIR)/examples/data
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/trainctl
	install -m 0644 docs/trainctl.1 $(DESTDIR)$(MANDIR)/trainctl.1
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)
	install -m 0755 examples/*.lua $(DESTDIR)$(DATADIR)/examples
	cp -R examples/data/. $(DESTDIR)$(DATADIR)/examples/data
	@set -e; for sh in bash zsh; do \
		if $(abspath $(BIN)) completion $$sh >$(BUILD)/completion.$$sh 2>/dev/null; then \
			case $$sh in \
			bash) dest=$(BASH_COMPDIR)/trainctl ;; \
			zsh) dest=$(ZSH_COMPDIR)/_trainctl ;; \
			esac; \
			echo "install $$sh completion: $$dest"; \
			install -d $(DESTDIR)$$(dirname $$dest); \
			install -m 0644 $(BUILD)/completion.$$sh $(DESTDIR)$$dest; \
		else \
			echo "install: no $$sh completion ($(BIN) has no 'completion' command)"; \
		fi; \
		rm -f $(BUILD)/completion.$$sh; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/trainctl $(DESTDIR)$(MANDIR)/trainctl.1 \
		$(DESTDIR)$(BASH_COMPDIR)/trainctl $(DESTDIR)$(ZSH_COMPDIR)/_trainctl
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)

# A Debian package, built by dpkg-buildpackage from a copy of this tree in
# $(BUILD)/deb (the tree stays clean); the .deb is copied here, to be
# installed with `apt install ./trainctl_$(VERSION)_*.deb`.
DEB_DIR = $(BUILD)/deb
deb:
	@$(DEPS_SH) --deb
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(VERSION)" ] || \
		{ echo "debian/changelog is at $$v, the Makefile at $(VERSION): make them agree" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/trainctl-$(VERSION)
	tar -cf - --anchored --exclude=./.git --exclude=./build --exclude=./build-asan \
		--exclude=./$(BUILD) --exclude=./demo-output --exclude=./trainctl \
		--exclude=./trainctl.asan --exclude='./trainctl_*' --exclude=./tests/fuzz/out . | \
		tar -xf - -C $(DEB_DIR)/trainctl-$(VERSION)
	cd $(DEB_DIR)/trainctl-$(VERSION) && dpkg-buildpackage -us -uc -b -J2
	rm -f trainctl_*.deb
	cp $(DEB_DIR)/trainctl_$(VERSION)_*.deb .
	@echo "make deb: built $$(ls trainctl_$(VERSION)_*.deb); install it with: apt install ./$$(ls trainctl_$(VERSION)_*.deb)"

clean:
	rm -rf build build-asan trainctl trainctl.asan trainctl_*.deb


.PHONY: format format-check all unit deps lint check check-asan valgrind demo bench fuzz install uninstall deb clean
