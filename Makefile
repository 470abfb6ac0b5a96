PREFIX ?= /usr/local
SWIFT ?= swift

.PHONY: all build debug deps test fuzz bench install clean run

all: build

deps:
	bash scripts/deps.sh

build:
	$(SWIFT) build -c release --static-swift-stdlib

debug:
	$(SWIFT) build

# Installs missing packages, builds, and starts a confined shell in this directory.
run: deps build
	./.build/release/agentpen

# Unit tests, then the end-to-end suite as an unprivileged user and as root
# (needs root or sudo: it creates the test user and the test network world).
test:
	bash tests/run.sh

# libFuzzer targets for the parsers of hostile bytes (fuzz/run.sh), each for
# FUZZ_TIME seconds (default 60); make test runs each briefly.
fuzz:
	bash fuzz/run.sh

bench: build
	bash scripts/deps.sh --test
	bash bench/run.sh

# The binary, its man page and the bash, zsh and fish completions (all three
# written by the binary itself from its argument parser).
BIN ?= .build/release/agentpen
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/agentpen
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) __manual > $(DESTDIR)$(PREFIX)/share/man/man1/agentpen.1
	$(BIN) completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/agentpen
	$(BIN) completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_agentpen
	$(BIN) completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/agentpen.fish

clean:
	rm -rf .build
