#!/usr/bin/env bash
# Installs what `make bench` needs beyond scripts/install-deps.sh: the peer
# it is measured against (pam_google_authenticator) and the tools that give
# the benchmark its private namespaces. `make test` never runs this.
#
# Idempotent: `apt-get update` and `apt-get install` run only when a
# package is missing. Any failure stops the script with a one-line reason.
#
# Usage: scripts/bench-deps.sh
set -euo pipefail

die() {
	echo "bench-deps.sh: $*" >&2
	exit 1
}

# What each package is for:
#   libpam-google-authenticator  pam_google_authenticator.so, the peer
#   util-linux                   unshare (private mount and PID namespaces)
#   mount                        mount --bind (the private /etc/passwd, /etc/pam.d)
packages=(libpam-google-authenticator util-linux mount)

command -v dpkg-query >/dev/null 2>&1 ||
	die "dpkg-query not found: this script supports Debian and its derivatives only; install ${packages[*]} by hand"

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [[ $status != installed ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} > 0)); then
	[[ $(id -u) -eq 0 ]] ||
		die "missing Debian packages: ${missing[*]}; run this as root to install them (or: apt-get install ${missing[*]})"
	echo "bench-deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update ||
		die "apt-get update failed (network or sources.list?); cannot install ${missing[*]}"
	apt-get install -y --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
	for p in "${missing[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[[ $status == installed ]] || die "package $p is still not installed after apt-get install"
	done
else
	echo "bench-deps.sh: all Debian packages present"
fi

for t in unshare mount; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 ||
		die "'$t' is not on PATH although its package is installed"
done
