#!/usr/bin/env bash
# make package-test: checks of the unit, the man pages and the packages,
# then the .debs installed and exercised in a Debian 12 chroot (chroot.sh).
# Every check is counted; any failure fails the run. Nothing on the host
# changes but a cached base tarball (/var/cache/mfa-package-test).
#
# Needs root, and what scripts/package-deps.sh installs. Run through
# `make package-test`, which builds the packages first.
set -euo pipefail

root=$(cd "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
TARGET_DIR=${TARGET_DIR:-target}
DEB_VERSION=${DEB_VERSION:?DEB_VERSION is not set (run make package-test)}
docs=$TARGET_DIR/release/mfa-docs
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
mfad_deb=$TARGET_DIR/debian/mfad_${DEB_VERSION}_$arch.deb
pam_deb=$TARGET_DIR/debian/libpam-mfa_${DEB_VERSION}_$arch.deb

die() {
	echo "package-test: $*" >&2
	exit 1
}
[[ $(id -u) -eq 0 ]] || die "must run as root (it builds and enters a chroot)"
for f in "$mfad_deb" "$pam_deb"; do
	[[ -f $f ]] || die "$f is missing: run make deb"
done

passed=0
failed=0
# check NAME COMMAND...: runs COMMAND, counts it, shows its output on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		echo "ok    $name"
	else
		failed=$((failed + 1))
		echo "FAIL  $name"
		sed 's/^/      /' <<<"$out"
	fi
}

work=$(mktemp -d /var/tmp/mfa-package-test.XXXXXX)
cleanup() {
	# The chroot's mounts live in its own mount namespace; none is left here.
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== the unit and the D-Bus files"
check "systemd-analyze security: mfad.service exposure at most 2.0" \
	systemd-analyze security --offline=yes --threshold=20 packaging/systemd/mfad.service
same_command() {
	local unit act
	unit=$(sed -n 's/^ExecStart=//p' packaging/systemd/mfad.service)
	act=$(sed -n 's/^Exec=//p' packaging/dbus/org.mfad.Mfa1.service)
	[[ -n $unit && $unit == "$act" && $unit == *"--config /etc/mfad/mfad.toml"* ]] ||
		{ echo "unit: '$unit', D-Bus activation: '$act'"; return 1; }
}
check "the unit and D-Bus activation run the same command line" same_command
unit_has() {
	local l
	for l in "LimitCORE=0" "Documentation=man:mfad(8)" "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
		"ProtectProc=invisible" "ProcSubset=pid" "PrivateMounts=yes"; do
		grep -qF "$l" packaging/systemd/mfad.service || { echo "mfad.service lacks $l"; return 1; }
	done
}
check "the unit has LimitCORE=0, its man page, the HTTP gateway's address families" unit_has

echo "== man pages"
check "every config key and module argument is in the man pages" python3 packaging/test/man-coverage.py "$root"
man_clean() {
	local f warn n=0
	for f in packaging/man/*.[0-9] "$docs"/man/*.1; do
		[[ -f $f ]] || continue
		n=$((n + 1))
		warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
		[[ -z $warn ]] || { echo "$f: $warn"; return 1; }
	done
	((n >= 6)) || { echo "only $n man pages found"; return 1; }
	echo "$n pages"
}
check "man --warnings -l is clean on every page" man_clean
subcommand_pages() {
	local p
	for p in mfactl mfactl-enroll-totp mfactl-enroll-sms mfactl-admin-reset mfactl-trusted-remove; do
		[[ -f $docs/man/$p.1 ]] || { echo "$docs/man/$p.1 missing"; return 1; }
	done
}
check "mfactl(1) and a page per subcommand, from the clap definitions" subcommand_pages

completions() {
	# bash: sourcing it registers a completion for mfactl that offers the
	# subcommands.
	bash -c 'source "$1" && complete -p mfactl >/dev/null && COMP_WORDS=(mfactl "") COMP_CWORD=1 && _mfactl mfactl "" mfactl && [[ " ${COMPREPLY[*]} " == *" enroll "* && " ${COMPREPLY[*]} " == *" admin "* ]] || { echo "offered: ${COMPREPLY[*]}"; exit 1; }' - "$docs/completions/mfactl.bash" || return 1
	grep -q '^#compdef mfactl' "$docs/completions/_mfactl" || { echo "_mfactl is no zsh completion for mfactl"; return 1; }
	grep -q '^complete -c mfactl' "$docs/completions/mfactl.fish" || { echo "mfactl.fish completes no mfactl"; return 1; }
}
check "bash, zsh and fish completions of mfactl (bash offers the subcommands)" completions

echo "== make install, make uninstall"
# Into DESTDIR, with a PATH whose cargo, rustc, apt-get and apt only
# record that they were called: make install copies what make built.
stage=$work/stage
mkdir -p "$stage/bin"
for t in cargo rustc apt-get apt; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$t" "$stage/called" >"$stage/bin/$t"
	chmod 755 "$stage/bin/$t"
done
as_make() {
	env -i PATH="$stage/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/nonexistent \
		make -s -C "$root" "$@" DESTDIR="$stage/d" PREFIX=/usr CARGO_TARGET_DIR="$(realpath "$TARGET_DIR")" || return 1
	[[ ! -e $stage/called ]] || { echo "make $* ran:"; cat "$stage/called"; return 1; }
}
staged_files() {
	(cd "$stage/d" && find . -type f | sort)
}
pamdir=$(pkg-config --variable=libdir pam)/security
install_stages() {
	as_make install || return 1
	local want have f
	want=$(
		for f in etc/mfad/mfad.toml etc/systemd/system/mfad.service "${pamdir#/}/pam_mfa.so" usr/bin/mfactl \
			usr/sbin/mfad usr/share/bash-completion/completions/mfactl \
			usr/share/dbus-1/system-services/org.mfad.Mfa1.service usr/share/dbus-1/system.d/org.mfad.Mfa1.conf \
			usr/share/fish/vendor_completions.d/mfactl.fish usr/share/man/man5/mfad.toml.5 usr/share/man/man8/mfad.8 \
			usr/share/man/man8/pam_mfa.8 usr/share/pam-configs/mfa usr/share/zsh/vendor-completions/_mfactl; do
			echo "./$f"
		done
		for f in "$docs"/man/*.1; do echo "./usr/share/man/man1/${f##*/}"; done
	)
	have=$(staged_files)
	[[ $have == "$(sort <<<"$want")" ]] || { diff <(sort <<<"$want") <(echo "$have"); return 1; }
	grep -q -- "--config /etc/mfad/mfad.toml" "$stage/d/etc/systemd/system/mfad.service"
}
check "make install DESTDIR= PREFIX=/usr, no cargo, no apt-get: every file, the module in pkg-config's PAM dir" install_stages
uninstall_unstages() {
	as_make uninstall || return 1
	[[ $(staged_files) == ./etc/mfad/mfad.toml ]] || { echo "left:"; staged_files; return 1; }
}
check "make uninstall removes them all but the configuration" uninstall_unstages

echo "== lintian"
for deb in "$mfad_deb" "$pam_deb"; do
	# Overrides ship in the package; each has its reason above it.
	check "lintian $(basename "$deb"): 0 errors, 0 warnings" \
		lintian --fail-on error,warning --tag-display-limit 0 "$deb"
done

echo "== .deb contents"
# deb_has DEB MODE OWNER PATH...: each PATH is in DEB with that mode and owner.
deb_has() {
	local deb=$1 mode=$2 owner=$3 p list
	shift 3
	list=$(dpkg-deb -c "$deb")
	for p in "$@"; do
		awk -v m="$mode" -v o="$owner" -v p="./$p" '$1 == m && ($2 == o || $2 == "0/0") && $6 == p { f = 1 } END { exit !f }' <<<"$list" ||
			{ echo "$deb: no $mode $owner ./$p in:"; echo "$list"; return 1; }
	done
}
check "mfad: binaries" deb_has "$mfad_deb" -rwxr-xr-x root/root usr/sbin/mfad usr/bin/mfactl
check "mfad: configuration, D-Bus files, unit, man pages, completions, docs" deb_has "$mfad_deb" -rw-r--r-- root/root \
	etc/mfad/mfad.toml usr/share/dbus-1/system.d/org.mfad.Mfa1.conf \
	usr/share/dbus-1/system-services/org.mfad.Mfa1.service usr/lib/systemd/system/mfad.service \
	usr/share/man/man8/mfad.8.gz usr/share/man/man5/mfad.toml.5.gz usr/share/man/man1/mfactl.1.gz \
	usr/share/man/man1/mfactl-enroll-totp.1.gz usr/share/bash-completion/completions/mfactl \
	usr/share/zsh/vendor-completions/_mfactl usr/share/fish/vendor_completions.d/mfactl.fish \
	usr/share/doc/mfad/copyright usr/share/doc/mfad/changelog.Debian.gz
check "libpam-mfa: module, profile, man page" deb_has "$pam_deb" -rw-r--r-- root/root \
	"usr/lib/$multiarch/security/pam_mfa.so" usr/share/pam-configs/mfa usr/share/man/man8/pam_mfa.8.gz \
	usr/share/doc/libpam-mfa/copyright
control_is() {
	local deb=$1 field=$2 want=$3 have
	have=$(dpkg-deb -f "$deb" "$field")
	# shellcheck disable=SC2053 # want is a glob pattern
	[[ $have == $want ]] || { echo "$(basename "$deb") $field: '$have', want '$want'"; return 1; }
}
check "mfad: conffile /etc/mfad/mfad.toml" bash -c "dpkg-deb --ctrl-tarfile '$mfad_deb' | tar -xO ./conffiles | grep -qx /etc/mfad/mfad.toml"
check "mfad: Depends on the system bus" control_is "$mfad_deb" Depends "*default-dbus-system-bus | dbus-system-bus*"
check "mfad: Recommends ca-certificates" control_is "$mfad_deb" Recommends "*ca-certificates*"
check "libpam-mfa: Multi-Arch: same" control_is "$pam_deb" Multi-Arch same
check "libpam-mfa: Depends mfad (= $DEB_VERSION) and libpam-runtime" control_is "$pam_deb" Depends "*libpam-runtime*mfad (= $DEB_VERSION)*"
check "libpam-mfa: profile is Default: no" bash -c "dpkg-deb --fsys-tarfile '$pam_deb' | tar -xO ./usr/share/pam-configs/mfa | grep -qx 'Default: no'"

echo "== rpm"
# shellcheck source=packaging/test/rpm.sh
source packaging/test/rpm.sh

echo "== the .debs in a Debian 12 chroot"
# The previous build: the same packages one revision lower, for the
# upgrade test (it upgrades to the packages under test).
prev_version=${DEB_VERSION%-*}-0
mkdir -p "$work/debs/prev"
for deb in "$mfad_deb" "$pam_deb"; do
	x=$work/repack
	rm -rf "$x"
	dpkg-deb -R "$deb" "$x"
	sed -i -e "s/^Version: .*/Version: $prev_version/" -e "s/mfad (= $DEB_VERSION)/mfad (= $prev_version)/" "$x/DEBIAN/control"
	dpkg-deb --root-owner-group -b "$x" "$work/debs/prev/" >/dev/null
done
cp "$mfad_deb" "$pam_deb" "$work/debs/"
# The RPM's %preun, to run its removal guard against a real /etc/pam.d.
rpm -qp --qf '%{PREUN}' "$rpm_file" >"$work/debs/rpm-preun.sh" 2>/dev/null
[[ -s $work/debs/rpm-preun.sh ]] || die "no %preun in $rpm_file"

base=$(bash packaging/test/chroot-base.sh)
chroot_dir=$work/root
mkdir "$chroot_dir"
tar -C "$chroot_dir" --numeric-owner -xpf "$base"
mkdir -p "$chroot_dir/tmp/pt"
cp -a "$work/debs" packaging/test/chroot.sh "$chroot_dir/tmp/pt/"

# Own mount and PID namespaces: every process started in the chroot (the
# bus, mfad) ends with it, and its mounts vanish with it.
set +e
unshare --mount --pid --fork --kill-child bash -euc '
	mount --make-rprivate /
	mount -t proc proc "$1/proc"
	mount --rbind /dev "$1/dev"
	mount -t tmpfs -o mode=0755 tmpfs "$1/run"
	chroot "$1" /bin/bash /tmp/pt/chroot.sh "$2" "$3" "$4"
' chroot-test "$chroot_dir" "$DEB_VERSION" "$prev_version" "$multiarch" | tee "$work/chroot.log"
rc=${PIPESTATUS[0]}
set -e
# tally NAME LOG EXIT: adds the "NAME: N passed, M failed" line of LOG.
tally() {
	local name=$1 log=$2 rc=$3 p f
	p=$(sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed\$/\1/p" "$log")
	f=$(sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed\$/\2/p" "$log")
	if [[ -z $p ]]; then
		echo "FAIL  the $name test ended early (exit $rc)"
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if ((rc != 0 && f == 0)); then
		echo "FAIL  the $name test exited $rc"
		failed=$((failed + 1))
	fi
}
tally chroot "$work/chroot.log" "$rc"

echo "== the .debs booted with systemd-nspawn: mfad under its unit, an SMS through the HTTP backend"
set +e
bash packaging/test/nspawn.sh "$base" "$work/debs" "$work" | tee "$work/nspawn.log"
rc=${PIPESTATUS[0]}
set -e
tally nspawn "$work/nspawn.log" "$rc"

echo "package-test: $passed passed, $failed failed"
((failed == 0))
