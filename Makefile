# trainctl build. `make` builds; `make check` installs missing packages,
# builds and runs every test; `make demo` runs a workflow against cloudsim.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PKGS = lua5.4 libcurl openssl libedit
VERSION = 0.1.0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl, libcrypto and libedit are not linked: src/lazy.c loads them
# on first use, which keeps start-up near a bare lua5.4.
PKG_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null)
CJSON_LIB ?= $(firstword $(wildcard /usr/lib/*/liblua5.4-cjson.a /usr/lib/liblua5.4-cjson.a /usr/local/lib/liblua5.4-cjson.a))

CFLAGS ?= -O2 -g
WARN = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CPPFLAGS += -D_GNU_SOURCE -DTRAINCTL_VERSION='"$(VERSION)"'
ALL_CFLAGS = $(WARN) $(CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) -Isrc
LIBS = $(CJSON_LIB) $(PKG_LIBS) -ldl -lm

SRCS = $(wildcard src/*.c)
LUA_SRCS = $(sort $(wildcard lua/trainctl/*.lua))
BUILD ?= build
OBJS = $(SRCS:src/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
LIB_OBJS = $(filter-out $(BUILD)/main.o,$(OBJS))

BIN ?= trainctl

all: $(BIN)

$(BIN): $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(BUILD)/%.o: src/%.c src/host.h src/lhttp.h src/lazy.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/embedded.c: $(LUA_SRCS) scripts/embed.lua | $(BUILD)
	lua5.4 scripts/embed.lua $(LUA_SRCS) > $@.tmp && mv $@.tmp $@

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD):
	mkdir -p $@

# C unit tests link the native modules without main.c.
UNIT_SRCS = $(wildcard tests/unit/*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

$(BUILD)/unit/%: tests/unit/%.c tests/unit/tap.h $(LIB_OBJS)
	@mkdir -p $(BUILD)/unit
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $< $(LIB_OBJS) $(LIBS)

unit: $(UNIT_BINS)

deps:
	@./scripts/deps.sh

lint: format-check
	luacheck -q lua tests examples bench

C_FILES = $(wildcard src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c)

format:
	clang-format -i $(C_FILES)

# clang-format is optional on a build machine; the check runs where it is.
format-check:
	@if command -v clang-format >/dev/null; then \
		clang-format --dry-run -Werror $(C_FILES) || { echo "run: make format"; exit 1; }; \
	fi

check: deps
	$(MAKE) all unit
	$(MAKE) lint
	prove $(PROVE_FLAGS) tests/*.t

# Same tests, sanitised build in its own directory.
check-asan: deps
	$(MAKE) BUILD=build-asan BIN=trainctl.asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" all unit
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		TRAINCTL=./trainctl.asan TRAINCTL_UNIT_DIR=build-asan/unit prove tests/*.t

valgrind: all unit
	for t in $(UNIT_BINS); do valgrind -q --error-exitcode=99 --leak-check=full $$t >/dev/null || exit 1; done
	valgrind -q --error-exitcode=99 --leak-check=full ./trainctl -e 'local c=require"trainctl.crypto"; assert(#c.sha256("x")==32)'

demo: deps all
	./scripts/demo.sh

bench: all
	@./scripts/deps.sh --bench
	./bench/run.sh

fuzz:
	@./scripts/deps.sh --fuzz
	$(MAKE) -C tests/fuzz

# Each example 50 times under 20 % injected faults and 20 times killed
# with SIGKILL, against cloudsim, then 4 instances of each at once on one
# default state file; prints the counts and seeds (about 20 minutes).
soak: all
	python3 tests/soak/soak.py $(SOAK_FLAGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 trainctl $(DESTDIR)$(PREFIX)/bin/trainctl
	install -m 0644 docs/trainctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/trainctl.1

clean:
	rm -rf build build-asan trainctl trainctl.asan


.PHONY: format format-check all unit deps lint check check-asan valgrind demo bench fuzz install clean
