#!/bin/bash
# Runs inside the Debian 12 chroot of run.sh, in its own PID namespace:
# installs the previous build of mfad and libpam-mfa, upgrades to the
# packages under test, and exercises them: files, D-Bus activation, mfactl,
# pam-auth-update, logins through common-auth with pamtester and oathtool,
# the removal guards, and purge. Ends with "chroot: N passed, M failed".
#
# Usage (in the chroot): chroot.sh DEB_VERSION PREV_VERSION MULTIARCH
set -uo pipefail

version=$1
prev=$2
# Where libpam-mfa puts the module: /usr/lib/<triplet>.
multiarch=/usr/lib/$3
pt=/tmp/pt
export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

passed=0
failed=0
ok() {
	passed=$((passed + 1))
	echo "ok    $1"
}
bad() {
	failed=$((failed + 1))
	echo "FAIL  $1"
	[[ -z ${2:-} ]] || sed 's/^/      /' <<<"$2"
}
# check NAME COMMAND...
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}
# refuses NAME COMMAND...: COMMAND must fail.
refuses() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then bad "$name (it succeeded)" "$out"; else ok "$name"; fi
	last_out=$out
}
finish() {
	echo "chroot: $passed passed, $failed failed"
	exit $((failed > 0))
}
fatal() {
	bad "$1" "${2:-}"
	finish
}

# No service starts from a postinst here (systemd is installed but not
# running, so deb-systemd-invoke does nothing); make sure of it for
# invoke-rc.d too.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

# --- the system bus, as dbus.service would start it -------------------------
mkdir -p /run/dbus
dbus-daemon --system --fork || fatal "start the chroot's system dbus-daemon"

# --- install the previous build, enable the profile, edit the conffile ------
out=$(dpkg -i $pt/debs/prev/mfad_*.deb $pt/debs/prev/libpam-mfa_*.deb 2>&1) ||
	fatal "dpkg -i the previous build ($prev)" "$out"
ok "install the previous build ($prev)"
pam-auth-update --enable mfa
sed -i 's/^issuer = ""$/issuer = "edited-by-admin"/' /etc/mfad/mfad.toml
grep -q '^issuer = "edited-by-admin"$' /etc/mfad/mfad.toml || fatal "edit /etc/mfad/mfad.toml"

# --- upgrade to the packages under test ------------------------------------
out=$(dpkg -i $pt/debs/mfad_*.deb $pt/debs/libpam-mfa_*.deb 2>&1) || fatal "upgrade to $version" "$out"
ok "upgrade $prev -> $version"
check "the upgrade keeps the edited conffile" grep -q '^issuer = "edited-by-admin"$' /etc/mfad/mfad.toml
check "the upgrade keeps the enabled profile" grep -q 'pam_mfa\.so' /etc/pam.d/common-auth
installed() {
	local p v
	for p in mfad libpam-mfa; do
		v=$(dpkg-query -W -f='${Version} ${db:Status-Status}' "$p")
		[[ $v == "$version installed" ]] || { echo "$p: $v"; return 1; }
	done
}
check "both packages are at $version" installed

# --- files, owners, modes ---------------------------------------------------
files_are() {
	local want have
	while read -r want; do
		local path=${want##* }
		have=$(stat -c '%U:%G %a %n' "$path" 2>&1)
		[[ $have == "$want" ]] || { echo "want '$want', have '$have'"; return 1; }
	done <<EOT
root:root 755 /usr/sbin/mfad
root:root 755 /usr/bin/mfactl
root:root 644 /etc/mfad/mfad.toml
root:root 644 /usr/share/dbus-1/system.d/org.mfad.Mfa1.conf
root:root 644 /usr/share/dbus-1/system-services/org.mfad.Mfa1.service
root:root 644 /usr/lib/systemd/system/mfad.service
root:root 644 /usr/lib/systemd/system/mfad.socket
root:root 644 /usr/share/man/man8/mfad.8.gz
root:root 644 /usr/share/man/man5/mfad.toml.5.gz
root:root 644 /usr/share/man/man1/mfactl.1.gz
root:root 644 /usr/share/bash-completion/completions/mfactl
root:root 644 $multiarch/security/pam_mfa.so
root:root 644 /usr/share/pam-configs/mfa
root:root 644 /usr/share/man/man8/pam_mfa.8.gz
EOT
}
check "files, owners and modes" files_are
check "mfad.service is enabled (deb-systemd-helper)" test -L /etc/systemd/system/multi-user.target.wants/mfad.service

# --- D-Bus activation, mfactl -------------------------------------------------
if pgrep -x mfad >/dev/null; then
	bad "mfad is not running before the first call" "$(pgrep -a mfad)"
else
	ok "mfad is not running before the first call"
fi
out=$(mfactl admin list 2>&1) && ok "mfactl admin list as root answers (the bus activated mfad)" ||
	bad "mfactl admin list as root answers" "$out"
activated() {
	local pid exe
	pid=$(pgrep -x mfad) || { echo "no mfad process"; return 1; }
	exe=$(readlink "/proc/$pid/exe")
	[[ $exe == /usr/sbin/mfad ]] || { echo "mfad is $exe"; return 1; }
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '--config /etc/mfad/mfad.toml' ||
		{ echo "mfad runs as: $(tr '\0' ' ' <"/proc/$pid/cmdline")"; return 1; }
}
check "D-Bus activation started /usr/sbin/mfad --config /etc/mfad/mfad.toml" activated
check "mfad made /var/lib/mfad, 0700 root" bash -c '[[ $(stat -c "%U %a" /var/lib/mfad) == "root 700" ]]'

# --- pam-auth-update --------------------------------------------------------
# A service that is common-auth alone, as login, su and sshd include it.
printf '@include common-auth\n@include common-account\n' >/etc/pam.d/mfa-pt
after_password() {
	local unix mfa
	unix=$(grep -n 'pam_unix\.so' /etc/pam.d/common-auth | head -n 1 | cut -d: -f1)
	mfa=$(grep -n '^auth[[:space:]]*required[[:space:]]*pam_mfa\.so' /etc/pam.d/common-auth | cut -d: -f1)
	[[ -n $unix && -n $mfa && $mfa -gt $unix ]] || { cat /etc/pam.d/common-auth; return 1; }
}
check "pam-auth-update --enable mfa: the line after the password modules" after_password

useradd -m alice
useradd -m bob
echo 'alice:alice-pw-1' | chpasswd
echo 'bob:bob-pw-2' | chpasswd

# login USER INPUT...: pamtester through mfa-pt, one answer per line.
login() {
	local user=$1
	shift
	printf '%s\n' "$@" | pamtester mfa-pt "$user" authenticate
}
check "an unenrolled user logs in with the password alone" login alice alice-pw-1

# Enroll bob's app, as bob, with codes from oathtool.
step() { echo $(($(date +%s) / 30)); }
code_at() { oathtool --totp -b -N "@$(($1 * 30))" "$secret"; }
# Clear of a step boundary, so the codes below stay inside the window.
while (($(date +%s) % 30 > 24)); do sleep 1; done
as_bob() { setpriv --reuid bob --regid bob --init-groups "$@"; }
begin=$(as_bob mfactl --json enroll totp --begin 2>&1) || fatal "bob: mfactl enroll totp --begin" "$begin"
id=$(sed -n 's/.*"enrollment_id":"\([^"]*\)".*/\1/p' <<<"$begin")
secret=$(sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' <<<"$begin")
[[ -n $id && -n $secret ]] || fatal "bob: enrollment id and secret in the --begin output" "$begin"
now=$(step)
out=$(as_bob mfactl enroll totp --confirm "$id" "$(code_at $((now - 1)))" "$(code_at "$now")" 2>&1) &&
	ok "bob enrolls an app (mfactl enroll totp --confirm, oathtool codes)" ||
	bad "bob enrolls an app" "$out"
check "an enrolled user logs in with the password and the code" login bob bob-pw-2 "$(code_at $((now + 1)))"
wrong=$(code_at $((now + 9)))
refuses "an enrolled user with a wrong code is refused" login bob bob-pw-2 "$wrong"
refuses "an enrolled user with the password alone is refused" login bob bob-pw-2 ""

pam-auth-update --disable mfa
check "pam-auth-update --disable mfa: the line is gone" bash -c '! grep -q pam_mfa /etc/pam.d/common-auth'
check "with the profile off, bob logs in with the password alone" login bob bob-pw-2

# --- removal guards -----------------------------------------------------------
pam-auth-update --enable mfa
module=$multiarch/security/pam_mfa.so

cp /etc/pam.d/mfa-pt /tmp/mfa-pt.orig
echo 'auth required pam_mfa.so' >>/etc/pam.d/mfa-pt
refuses "dpkg -r libpam-mfa is refused while a service file names pam_mfa.so" dpkg -r libpam-mfa
check "  ... the message names the file" grep -q '/etc/pam.d/mfa-pt' <<<"$last_out"
check "  ... the module stays" test -f "$module"

# The RPM's %preun has the same guard, on the final removal only.
refuses "the RPM's %preun refuses the final removal while a service file names pam_mfa.so" sh $pt/debs/rpm-preun.sh 0
check "  ... the message names the file" grep -q '/etc/pam.d/mfa-pt' <<<"$last_out"
check "the RPM's %preun lets an upgrade go ahead" sh $pt/debs/rpm-preun.sh 1
cp /tmp/mfa-pt.orig /etc/pam.d/mfa-pt

cp /etc/pam.d/common-auth /tmp/common-auth.orig
# A line added inside the block pam-auth-update manages: it then leaves the
# file alone (an edit of a module's options it would merge), and still
# exits 0.
sed -i 's/^auth[[:space:]]*required[[:space:]]*pam_mfa\.so[[:space:]]*$/&\nauth\toptional\tpam_echo.so local edit/' /etc/pam.d/common-auth
grep -q '^auth.optional.pam_echo\.so local edit$' /etc/pam.d/common-auth || fatal "edit common-auth" "$(cat /etc/pam.d/common-auth)"
refuses "dpkg -r libpam-mfa is refused when common-auth has local edits" dpkg -r libpam-mfa
check "  ... the message names common-auth" grep -q '/etc/pam.d/common-auth' <<<"$last_out"
check "  ... the module stays" test -f "$module"
cp /tmp/common-auth.orig /etc/pam.d/common-auth
# The refused removal ran postinst abort-remove; the profile is as before.
pam-auth-update --enable mfa
check "the profile is enabled again" grep -q pam_mfa /etc/pam.d/common-auth

# A backup pam-auth-update --force leaves names the module; no login reads it.
cp /etc/pam.d/common-auth /etc/pam.d/common-auth.pam-old
out=$(dpkg -r libpam-mfa 2>&1) && ok "dpkg -r libpam-mfa with the profile enabled (and a common-auth.pam-old)" ||
	bad "dpkg -r libpam-mfa with the profile enabled" "$out"
check "  ... no pam_mfa left in /etc/pam.d" bash -c '! grep -r --exclude="*.pam-old" pam_mfa /etc/pam.d'
check "  ... the module is gone" test ! -e "$module"
check "  ... logins work: alice with her password" login alice alice-pw-1
check "  ... logins work: bob with his password" login bob bob-pw-2
check "the RPM's %preun allows the final removal once no PAM file names pam_mfa.so" sh $pt/debs/rpm-preun.sh 0

# --- purge --------------------------------------------------------------------
out=$(dpkg -P mfad 2>&1) && ok "dpkg -P mfad" || bad "dpkg -P mfad" "$out"
check "  ... /etc/mfad is gone" test ! -e /etc/mfad
check "  ... /var/lib/mfad is gone" test ! -e /var/lib/mfad
check "  ... /usr/sbin/mfad is gone" test ! -e /usr/sbin/mfad
check "  ... the D-Bus policy and the unit are gone" bash -c '! test -e /usr/share/dbus-1/system.d/org.mfad.Mfa1.conf && ! test -e /usr/lib/systemd/system/mfad.service'
check "  ... the rest of the system is there (/etc/pam.d/common-auth)" test -s /etc/pam.d/common-auth

finish
