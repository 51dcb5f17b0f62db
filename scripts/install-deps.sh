#!/usr/bin/env bash
# Installs the Debian packages mfa needs to build, test and demo, and checks
# that the Rust toolchain is there.
#
# Idempotent: only packages that are missing are installed, and `apt-get
# update` runs only when something must be installed. Run as root (or with
# every package already present). Any failure stops the script with a
# one-line reason.
#
# Usage: scripts/install-deps.sh [EXTRA_PACKAGE...]
#   (extra packages: for `make bench`, see scripts/bench-deps.sh)
set -euo pipefail

die() {
	echo "install-deps.sh: $*" >&2
	exit 1
}

# What each package is for:
#   dbus          dbus-daemon for the private test/demo bus, dbus-send, and
#                 the stock /usr/share/dbus-1/system.conf the bus config is
#                 derived from
#   libpam0g-dev  libpam.so to link pam_mfa.so against
#   pamtester     drives a real PAM stack (tests, demo)
#   oathtool      an independent TOTP implementation (tests, demo)
#   libpam-modules pam_permit.so in the test/demo service files
#   util-linux    setpriv, to run commands as a test or demo user; setsid,
#                 to run the ssh client without a terminal
#   openssh-server sshd, run on 127.0.0.1 by the tests and the demo (never
#                 started by this script: see below)
#   openssh-client ssh and ssh-keygen
#   passwd        useradd, userdel, groupadd, gpasswd
#   gcc, libc6-dev the C toolchain Rust links with (bundled SQLite is C)
#   openssl       a test CA and certificate for PostgreSQL over TLS
#   postgresql    initdb and postgres for the private clusters the
#                 PostgreSQL store's tests start (never the system's: the
#                 policy below keeps the install from starting it)
packages=(
	dbus
	libpam0g-dev
	pamtester
	oathtool
	libpam-modules
	util-linux
	openssh-server
	openssh-client
	passwd
	gcc
	libc6-dev
	openssl
	postgresql
	"$@"
)

command -v dpkg-query >/dev/null 2>&1 ||
	die "dpkg-query not found: this script supports Debian and its derivatives only; install the packages listed in it by hand"

# PIDs of running sshd processes started as /usr/sbin/sshd (the system's
# service; the tests' and the demo's run under other names), one a line.
system_sshd_pids() {
	local d argv0
	for d in /proc/[0-9]*; do
		argv0=$(tr '\0' '\n' 2>/dev/null <"$d/cmdline" | head -n 1) || continue
		if [[ $argv0 == /usr/sbin/sshd ]]; then
			echo "${d#/proc/}"
		fi
	done
}

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
	echo "install-deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive

	# Packages with a service (openssh-server) start it from their
	# postinst through invoke-rc.d or deb-systemd-invoke; the tests and the
	# demo run their own sshd on 127.0.0.1 and want none on port 22. Both
	# ask policy-rc.d, and exit 101 means "do not start anything". One that
	# exists already (e.g. a container's) is left alone.
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	trap 'if ((made_policy)); then rm -f "$policy"; fi' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if [[ ! -e $policy && ! -L $policy ]]; then
		made_policy=1
		if ! printf '#!/bin/sh\n# Written by mfa scripts/install-deps.sh for one apt-get run: start no service.\nexit 101\n' >"$policy" ||
			! chmod 0755 "$policy"; then
			die "cannot write $policy (to keep the install from starting services)"
		fi
	fi
	sshd_before=$(system_sshd_pids)

	apt-get update ||
		die "apt-get update failed (network or sources.list?); cannot install ${missing[*]}"
	apt-get install -y --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"

	if ((made_policy)); then
		rm -f "$policy"
		made_policy=0
	fi
	# Whatever the policy said (an existing one may allow starts), an sshd
	# that this install started is stopped, so port 22 stays as it was.
	for pid in $(system_sshd_pids); do
		if ! grep -qxF "$pid" <<<"$sshd_before"; then
			echo "install-deps.sh: stopping the sshd (pid $pid) that installing openssh-server started"
			kill -TERM "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			! kill -0 "$pid" 2>/dev/null ||
				die "the sshd (pid $pid) that the install started does not stop; stop it by hand (kill $pid)"
		fi
	done
	if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
		echo "install-deps.sh: openssh-server is installed but not started (the tests and the demo run their own sshd);"
		echo "install-deps.sh: under systemd Debian enables ssh.service at boot: 'systemctl disable ssh' if this machine should not serve SSH"
	fi
	for p in "${missing[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[[ $status == installed ]] || die "package $p is still not installed after apt-get install"
	done
else
	echo "install-deps.sh: all Debian packages present"
fi

# The tools themselves, in case a package was installed but is broken or
# diverted: the tests would otherwise fail much later and less clearly.
for t in dbus-daemon dbus-send pamtester oathtool setpriv setsid useradd gcc sshd ssh ssh-keygen; do
	PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 ||
		die "'$t' is not on PATH although its package is installed"
done
[[ -r /usr/share/dbus-1/system.conf ]] ||
	die "/usr/share/dbus-1/system.conf is missing (package dbus-system-bus-common, pulled in by dbus)"

# Rust cannot be installed from here (no toolchain download); it must exist.
# rustup puts it in ~/.cargo/bin, which a non-login root shell (CI) may not
# have on PATH; the Makefile adds that directory, so look there too.
cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1; then
	if [[ -x $cargo_bin/cargo ]]; then
		echo "install-deps.sh: cargo found in $cargo_bin (not on PATH; the Makefile adds it)"
	else
		die "cargo (Rust 1.85 or newer) not found on PATH nor in $cargo_bin; install Rust first, e.g. with rustup (https://rustup.rs), then run this again"
	fi
fi
echo "install-deps.sh: ok"
