# mfa: build, test, demo and install.
#
#   make demo      a self-contained SSH demo on this machine (DEMO_AUTO=1 for no questions)
#   make test      lint, then every test: unit tests and the integration tests
#                  against the real parts (as root)
#   make lint      rustfmt, clippy, and the no-tokio-in-zbus check
#   make bench     the performance benchmarks of docs/performance.md: a report of each
#                  target, PASS or MISS (as root; a few minutes; BENCH_USERS=N for fewer users)
#   make fuzz      run each fuzz target of fuzz/ for FUZZ_SECONDS (60) from its corpus;
#                  prints executions and crashes per target (installs cargo-fuzz)
#   make           the debug build (for the tests) and `release`
#   make release   release binaries, man pages and completions
#   make install   install what `make` built (DESTDIR=, PREFIX=); make uninstall
#   make deb       the Debian packages mfad and libpam-mfa into target/debian/
#   make rpm       the RPM into target/generate-rpm/
#   make package-test  check and install the packages in a Debian 12 chroot (as root)
#
# Each target installs the Debian packages it needs (scripts/install-deps.sh).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all

# rustup installs cargo into ~/.cargo/bin, which a non-login shell (CI, sudo)
# may not have on PATH.
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(PATH):$(CARGO_BIN)
CARGO ?= cargo

# Where cargo builds (CARGO_TARGET_DIR may move it).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release
# mfactl's man pages and completions, written by mfa-docgen.
DOCS_DIR := $(RELEASE_DIR)/mfa-docs
# The Debian version of the packages: the workspace version, revision 1.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
DEB_VERSION := $(VERSION)-1

# Installation paths. PAM only loads modules from its own directory, so the
# module goes there whatever PREFIX is: pam.pc's securedir (Fedora), else
# its libdir/security (Debian).
DESTDIR ?=
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
PAMDIR ?= $(or $(shell pkg-config --variable=securedir pam 2>/dev/null),$(addsuffix /security,$(shell pkg-config --variable=libdir pam 2>/dev/null)))
# Where dbus-daemon, systemd and pam-auth-update look, whatever PREFIX is.
DBUS_POLICYDIR ?= /usr/share/dbus-1/system.d
DBUS_SERVICEDIR ?= /usr/share/dbus-1/system-services
SYSTEMD_UNITDIR ?= /etc/systemd/system
PAM_CONFIGDIR ?= /usr/share/pam-configs
BASH_COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
ZSH_COMPLETIONDIR ?= $(DATADIR)/zsh/vendor-completions
FISH_COMPLETIONDIR ?= $(DATADIR)/fish/vendor_completions.d

.PHONY: all deps build release man-gz test lint bench fuzz demo install uninstall package-deps deb rpm package-test clean

all: build release

deps:
	bash scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace

# Lint first, so that CI (which runs `make test`) checks it too. The
# integration tests (the `tests` crate, not a default member) and the
# PostgreSQL store's conformance run (mfad/postgres-tests) need root and
# the binaries of `build`; package-test checks the packages.
test: lint build package-test
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

# Not part of `test`: the fuzz crate needs cargo-fuzz and its own
# (sanitizer) build; see scripts/fuzz.sh.
fuzz:
	CARGO=$(CARGO) bash scripts/fuzz-deps.sh
	CARGO=$(CARGO) bash scripts/fuzz.sh

demo: build
	bash scripts/demo.sh

# What make install and the packages ship: release binaries, and mfactl's
# man pages and completions generated from its clap definitions.
release: deps
	$(CARGO) build --release -p mfad -p mfactl -p pam_mfa -p mfa-docgen
	rm -rf $(DOCS_DIR)
	$(RELEASE_DIR)/mfa-docgen $(DOCS_DIR)

# Installs what `make` built. It runs neither apt-get nor cargo, so it can
# stage into DESTDIR as any user (e.g. under fakeroot).
INSTALL_INPUTS = $(RELEASE_DIR)/mfad $(RELEASE_DIR)/mfactl $(RELEASE_DIR)/libpam_mfa.so $(DOCS_DIR)/man/mfactl.1 $(DOCS_DIR)/completions/mfactl.bash

install:
	@for f in $(INSTALL_INPUTS); do \
		[[ -e $$f ]] || { echo "make install: $$f is missing: run make first" >&2; exit 1; }; \
	done
	@[[ -n "$(PAMDIR)" ]] || { echo "make install: pkg-config names no PAM module directory (pam.pc, from libpam0g-dev or pam-devel); set PAMDIR" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(PAMDIR)
	install -m 0755 $(RELEASE_DIR)/mfad $(DESTDIR)$(SBINDIR)/mfad
	install -m 0755 $(RELEASE_DIR)/mfactl $(DESTDIR)$(BINDIR)/mfactl
	install -m 0644 $(RELEASE_DIR)/libpam_mfa.so $(DESTDIR)$(PAMDIR)/pam_mfa.so
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(DOCS_DIR)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 packaging/man/mfad.toml.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 packaging/man/mfad.8 packaging/man/pam_mfa.8 $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(BASH_COMPLETIONDIR) $(DESTDIR)$(ZSH_COMPLETIONDIR) $(DESTDIR)$(FISH_COMPLETIONDIR)
	install -m 0644 $(DOCS_DIR)/completions/mfactl.bash $(DESTDIR)$(BASH_COMPLETIONDIR)/mfactl
	install -m 0644 $(DOCS_DIR)/completions/_mfactl $(DESTDIR)$(ZSH_COMPLETIONDIR)/_mfactl
	install -m 0644 $(DOCS_DIR)/completions/mfactl.fish $(DESTDIR)$(FISH_COMPLETIONDIR)/mfactl.fish
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
	@# The packaged files name /usr/sbin/mfad and /etc/mfad, where a .deb puts them.
	sed -e 's|/usr/sbin/mfad|$(SBINDIR)/mfad|g' -e 's|/etc/mfad/|$(SYSCONFDIR)/mfad/|g' packaging/dbus/org.mfad.Mfa1.service >$(DESTDIR)$(DBUS_SERVICEDIR)/org.mfad.Mfa1.service
	sed -e 's|/usr/sbin/mfad|$(SBINDIR)/mfad|g' -e 's|/etc/mfad/|$(SYSCONFDIR)/mfad/|g' packaging/systemd/mfad.service >$(DESTDIR)$(SYSTEMD_UNITDIR)/mfad.service
	chmod 0644 $(DESTDIR)$(DBUS_SERVICEDIR)/org.mfad.Mfa1.service $(DESTDIR)$(SYSTEMD_UNITDIR)/mfad.service
	@# A pam-auth-update profile that is off until enabled (see README).
	install -m 0644 packaging/pam/mfa $(DESTDIR)$(PAM_CONFIGDIR)/mfa
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then \
		systemctl daemon-reload; \
		systemctl reload dbus 2>/dev/null || true; \
		echo "installed; start the daemon with: systemctl enable --now mfad"; \
	else \
		echo "installed; start the daemon with: $(SBINDIR)/mfad --config $(SYSCONFDIR)/mfad/mfad.toml (or systemctl enable --now mfad)"; \
	fi
	@echo "PAM is not changed: see README.md, \"Adding mfa to a PAM stack\", before you enable it."

# Removes what install put there, but never the configuration nor the
# database (/etc/mfad, /var/lib/mfad: the secrets). Refuses while a PAM
# file still loads the module, as the package does.
uninstall:
	@if [[ -z "$(DESTDIR)" ]] && grep -lE --exclude='*.pam-old' --exclude='*.dpkg-*' --exclude='*.ucf-*' --exclude='*.rpm*' --exclude='*~' \
		'^[[:space:]]*[^#[:space:]].*pam_mfa\.so' /etc/pam.d/* 2>/dev/null; then \
		echo "make uninstall: the files above still load pam_mfa.so; logins through them would fail without it: take it out first (pam-auth-update --disable mfa)" >&2; exit 1; \
	fi
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then systemctl disable --now mfad 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(SBINDIR)/mfad $(DESTDIR)$(BINDIR)/mfactl $(DESTDIR)$(PAMDIR)/pam_mfa.so
	rm -f $(DESTDIR)$(MANDIR)/man1/mfactl.1 $(DESTDIR)$(MANDIR)/man1/mfactl-*.1
	rm -f $(DESTDIR)$(MANDIR)/man5/mfad.toml.5 $(DESTDIR)$(MANDIR)/man8/mfad.8 $(DESTDIR)$(MANDIR)/man8/pam_mfa.8
	rm -f $(DESTDIR)$(BASH_COMPLETIONDIR)/mfactl $(DESTDIR)$(ZSH_COMPLETIONDIR)/_mfactl $(DESTDIR)$(FISH_COMPLETIONDIR)/mfactl.fish
	rm -f $(DESTDIR)$(DBUS_POLICYDIR)/org.mfad.Mfa1.conf $(DESTDIR)$(DBUS_SERVICEDIR)/org.mfad.Mfa1.service
	rm -f $(DESTDIR)$(SYSTEMD_UNITDIR)/mfad.service $(DESTDIR)$(PAM_CONFIGDIR)/mfa
	rm -f $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml.dist
	@if [[ -z "$(DESTDIR)" && -d /run/systemd/system ]]; then systemctl daemon-reload; fi
	@echo "kept $(SYSCONFDIR)/mfad and /var/lib/mfad (configuration and secrets): remove them by hand if you want them gone"

package-deps:
	bash scripts/package-deps.sh

# Every man page, compressed as packages ship them (cargo-deb compresses
# only those outside the target dir; cargo-generate-rpm none).
man-gz: release
	rm -rf $(DOCS_DIR)/man-gz && mkdir $(DOCS_DIR)/man-gz
	for f in $(DOCS_DIR)/man/*.1 packaging/man/*.[0-9]; do gzip -9n <$$f >$(DOCS_DIR)/man-gz/$${f##*/}.gz; done

# Two packages, mfad and libpam-mfa, from the release build.
deb: release man-gz package-deps
	rm -f $(TARGET_DIR)/debian/mfad_*.deb $(TARGET_DIR)/debian/libpam-mfa_*.deb
	$(CARGO) deb -p mfad --no-build --deb-version $(DEB_VERSION)
	$(CARGO) deb -p pam_mfa --no-build --multiarch=same --deb-version $(DEB_VERSION)
	@dep=$$(dpkg-deb -f $(TARGET_DIR)/debian/libpam-mfa_$(DEB_VERSION)_*.deb Depends); \
	[[ ", $$dep," == *", mfad (= $(DEB_VERSION)),"* ]] || { echo "make deb: libpam-mfa depends on '$$dep', not on mfad (= $(DEB_VERSION)): fix depends in pam_mfa/Cargo.toml" >&2; exit 1; }

# The RPM, from the release build.
rpm: release man-gz package-deps
	rm -f $(TARGET_DIR)/generate-rpm/mfa-*.rpm
	$(CARGO) generate-rpm -p mfad --target-dir $(TARGET_DIR)

# Checks of the packages, and the .debs installed in a Debian 12 chroot.
package-test: deb rpm
	TARGET_DIR=$(TARGET_DIR) DEB_VERSION=$(DEB_VERSION) bash packaging/test/run.sh

clean:
	$(CARGO) clean
