#!/usr/bin/env bash
# Installs what `make deb`, `make rpm` and `make package-test` need beyond
# what the tests need: Debian packages through scripts/install-deps.sh, and
# the two cargo subcommands, at pinned versions, into ~/.cargo/bin.
#
# What each extra package is for:
#   dpkg-dev      dpkg-shlibdeps (cargo-deb's $auto Depends), dpkg-architecture
#   binutils      strip (cargo-deb, cargo-generate-rpm)
#   lintian       the .deb checks
#   rpm           rpm -qp (the .rpm checks)
#   rpmlint       the .rpm checks
#   mmdebstrap    the Debian 12 chroot the .debs are installed in
#   man-db        man --warnings (the man page checks)
#   python3       packaging/test/man-coverage.py
#   systemd       systemd-analyze security (the unit's exposure)
#   systemd-container  systemd-nspawn, which boots the packages under systemd
#   pkg-config    the PAM module directory for make install
#
# Usage: scripts/package-deps.sh
set -euo pipefail

die() {
	echo "package-deps.sh: $*" >&2
	exit 1
}

# Pinned: a new release may change paths or maintainer-script fragments.
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

here=$(dirname -- "${BASH_SOURCE[0]}")
bash "$here/install-deps.sh" dpkg-dev binutils lintian rpm rpmlint mmdebstrap man-db python3 systemd systemd-container pkg-config

cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
export PATH=$PATH:$cargo_bin
command -v cargo >/dev/null 2>&1 || die "cargo not found (on PATH nor in $cargo_bin)"

# $1 = crate, $2 = version, $3 = the cargo subcommand it provides.
pinned() {
	local have
	have=$(cargo "$3" --version 2>/dev/null || true)
	if [[ $have == *" $2"* ]]; then
		return
	fi
	echo "package-deps.sh: installing $1 $2 (cargo install --locked; a few minutes)"
	cargo install --locked --quiet "$1@$2" || die "cargo install --locked $1@$2 failed"
	have=$(cargo "$3" --version 2>/dev/null || true)
	[[ $have == *" $2"* ]] || die "cargo $3 --version says '$have' after installing $1 $2 (another $3 earlier on PATH?)"
}
pinned cargo-deb "$CARGO_DEB_VERSION" deb
pinned cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION" generate-rpm

for t in lintian rpm rpmlint mmdebstrap man python3 systemd-analyze systemd-nspawn pkg-config dpkg-shlibdeps strip; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 ||
		die "'$t' is not on PATH although its package is installed"
done
echo "package-deps.sh: ok"
