#!/usr/bin/env bash
# Prints the path of a Debian 12 (bookworm) base tarball for the package
# tests (chroot.sh, nspawn.sh), made with mmdebstrap from the apt sources
# this machine uses, with what they need preinstalled (the tests themselves
# need no network).
#
# Cached in /var/cache/mfa-package-test under a name derived from the
# sources and the package list, so a change of either makes a new one; on
# a fresh machine it is built here (a few minutes).
set -euo pipefail

die() {
	echo "chroot-base.sh: $*" >&2
	exit 1
}

# dbus: the system bus that activates mfad; libpam-runtime: pam-auth-update;
# pamtester and oathtool: logins with codes; passwd: useradd, chpasswd;
# ca-certificates: mfad Recommends it; procps: pgrep; util-linux: setpriv;
# systemd, systemd-sysv: booted by systemd-nspawn (nspawn.sh); python3:
# the loopback SMS gateway there.
include=dbus,libpam-runtime,libpam-modules,pamtester,oathtool,passwd,ca-certificates,procps,util-linux,systemd,systemd-sysv,python3

# The sources of this machine: every active list and deb822 file.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[[ -s $f ]] && grep -qE '^[[:space:]]*(deb |Types:)' "$f" && sources+=("$f")
done
((${#sources[@]} > 0)) || die "no apt sources found in /etc/apt"

cache=/var/cache/mfa-package-test
key=$( (
	echo "v1 bookworm $include"
	cat "${sources[@]}"
) | sha256sum | cut -c1-16)
tarball=$cache/bookworm-$key.tar
if [[ -s $tarball ]]; then
	echo "$tarball"
	exit 0
fi

mkdir -p "$cache"
echo "chroot-base.sh: building $tarball with mmdebstrap (a few minutes; cached afterwards)" >&2
tmp=$tarball.tmp.$$
trap 'rm -f "$tmp"' EXIT
mmdebstrap --quiet --variant=apt --format=tar --include="$include" bookworm "$tmp" "${sources[@]}" >&2 ||
	die "mmdebstrap failed (network, or the apt sources above?)"
mv "$tmp" "$tarball"
# Older bases are of no use any more.
find "$cache" -name 'bookworm-*.tar' ! -name "bookworm-$key.tar" -delete
echo "$tarball"
