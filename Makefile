# mfa: build, test, demo and install.
#
#   make demo      a self-contained SSH demo on this machine (DEMO_AUTO=1 for no questions)
#   make test      lint, then every test: unit tests and the integration tests
#                  against the real parts (as root)
#   make lint      rustfmt, clippy, and the no-tokio-in-zbus check
#   make bench     the performance benchmarks of docs/performance.md: a report of each
#                  target, PASS or MISS (as root; a few minutes; BENCH_USERS=N for fewer users)
#   make install   install mfad, mfactl, pam_mfa.so and their files (as root)
#
# Each target installs the Debian packages it needs (scripts/install-deps.sh).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# rustup installs cargo into ~/.cargo/bin, which a non-login shell (CI, sudo)
# may not have on PATH.
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(PATH):$(CARGO_BIN)
CARGO ?= cargo

# Installation paths. PAM only loads modules from its own directory, so the
# module goes there whatever PREFIX is.
DESTDIR ?=
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
MULTIARCH := $(or $(shell gcc -print-multiarch 2>/dev/null),$(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null))
PAMDIR ?= $(if $(MULTIARCH),/lib/$(MULTIARCH)/security)
DBUS_POLICYDIR ?= /usr/share/dbus-1/system.d
DBUS_SERVICEDIR ?= /usr/share/dbus-1/system-services
SYSTEMD_UNITDIR ?= /etc/systemd/system
PAM_CONFIGDIR ?= /usr/share/pam-configs

.PHONY: deps build test lint bench demo install clean

deps:
	bash scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace

# Lint first, so that CI (which runs `make test`) checks it too. The
# integration tests (the `tests` crate, not a default member) and the
# PostgreSQL store's conformance run (mfad/postgres-tests) need root and
# the binaries of `build`.
test: lint build
	bash scripts/test-summary.sh $(CARGO) test --workspace --features mfad/postgres-tests

lint: deps
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "make lint: rustfmt is missing (rustup component add rustfmt)" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "make lint: clippy is missing (rustup component add clippy)" >&2; exit 1; }
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --features mfad/postgres-tests -- -D warnings
	@# zbus's tokio feature would, by feature unification, put a tokio
	@# runtime inside pam_mfa.so and so inside sshd.
	@tree=$$($(CARGO) tree --workspace -e features -i zbus); \
	if grep -q 'zbus feature "tokio"' <<<"$$tree"; then \
		echo "make lint: zbus's \"tokio\" feature is enabled; it must stay off in every crate:" >&2; \
		grep -B2 -A6 'zbus feature "tokio"' <<<"$$tree" >&2; \
		exit 1; \
	fi; \
	echo "lint: zbus has no tokio feature"
	@if $(CARGO) tree -p pam_mfa -e normal --prefix none | grep -q '^tokio '; then \
		echo "make lint: pam_mfa depends on tokio; the PAM module must not" >&2; exit 1; \
	fi; \
	echo "lint: pam_mfa does not depend on tokio"

# Not part of `test`: a measurement that prints PASS/MISS and exits 0 either
# way. It builds its own release binaries (scripts/bench.sh).
bench: deps
	CARGO=$(CARGO) bash scripts/bench.sh

demo: build
	bash scripts/demo.sh

install:
	@[[ -n "$(PAMDIR)" ]] || { echo "make install: cannot tell the multiarch triplet (gcc -print-multiarch); set PAMDIR to the PAM module directory" >&2; exit 1; }
	bash scripts/install-deps.sh
	$(CARGO) build --release -p mfad -p mfactl -p pam_mfa
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(PAMDIR)
	install -m 0755 target/release/mfad $(DESTDIR)$(SBINDIR)/mfad
	install -m 0755 target/release/mfactl $(DESTDIR)$(BINDIR)/mfactl
	install -m 0644 target/release/libpam_mfa.so $(DESTDIR)$(PAMDIR)/pam_mfa.so
	@# An existing config is the admin's: never overwrite it.
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/mfad
	if [[ -e $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml ]]; then \
		install -m 0644 packaging/mfad.toml $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml.dist; \
		echo "kept $(SYSCONFDIR)/mfad/mfad.toml; the new default is mfad.toml.dist"; \
	else \
		install -m 0644 packaging/mfad.toml $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml; \
	fi
	install -d $(DESTDIR)$(DBUS_POLICYDIR) $(DESTDIR)$(DBUS_SERVICEDIR) $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(PAM_CONFIGDIR)
	install -m 0644 packaging/dbus/org.mfad.Mfa1.conf $(DESTDIR)$(DBUS_POLICYDIR)/org.mfad.Mfa1.conf
	@# The packaged files name /usr/sbin/mfad, where a .deb puts it.
	sed 's|/usr/sbin/mfad|$(SBINDIR)/mfad|g' packaging/dbus/org.mfad.Mfa1.service >$(DESTDIR)$(DBUS_SERVICEDIR)/org.mfad.Mfa1.service
	sed -e 's|/usr/sbin/mfad|$(SBINDIR)/mfad|g' -e 's|/etc/mfad/|$(SYSCONFDIR)/mfad/|g' packaging/systemd/mfad.service >$(DESTDIR)$(SYSTEMD_UNITDIR)/mfad.service
	chmod 0644 $(DESTDIR)$(DBUS_SERVICEDIR)/org.mfad.Mfa1.service $(DESTDIR)$(SYSTEMD_UNITDIR)/mfad.service
	@# A pam-auth-update profile that is off until enabled (see README).
	install -m 0644 packaging/pam/mfa $(DESTDIR)$(PAM_CONFIGDIR)/mfa
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then \
		systemctl daemon-reload; \
		systemctl reload dbus 2>/dev/null || true; \
		echo "installed; start the daemon with: systemctl enable --now mfad"; \
	else \
		echo "installed; start the daemon with: $(SBINDIR)/mfad (or systemctl enable --now mfad)"; \
	fi
	@echo "PAM is not changed: see README.md, \"Adding mfa to a PAM stack\", before you enable it."

clean:
	$(CARGO) clean
