#!/usr/bin/env bash
# Boots the Debian 12 base with the .debs installed under systemd-nspawn
# (its own network namespace: only its loopback), where mfad runs under
# its real unit and sends an SMS through the HTTP backend to a loopback
# gateway; nspawn-probe.sh checks it from inside. Prints the probe's
# results, ending with "nspawn: N passed, M failed".
#
# Usage: nspawn.sh BASE_TARBALL DEB_DIR WORK_DIR
set -euo pipefail

base=$1
debs=$2
work=$3
here=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$work/nspawn

die() {
	echo "nspawn.sh: $*" >&2
	exit 1
}

mkdir "$root"
tar -C "$root" --numeric-owner -xpf "$base"
cp "$debs"/mfad_*.deb "$debs"/libpam-mfa_*.deb "$root/tmp/"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chroot "$root" sh -c 'dpkg -i /tmp/mfad_*.deb /tmp/libpam-mfa_*.deb' >"$work/nspawn-dpkg.log" 2>&1 ||
	die "dpkg -i in the nspawn root failed: $(tail -n 5 "$work/nspawn-dpkg.log")"
rm "$root/usr/sbin/policy-rc.d"

cat >>"$root/etc/mfad/mfad.toml" <<'EOT'

[sms]
backend = "http"

[sms.http]
url = "http://127.0.0.1:8025/send"
EOT
install -m 0755 "$here/sms-gw.py" "$root/usr/local/sbin/sms-gw"
install -m 0755 "$here/nspawn-probe.sh" "$root/usr/local/sbin/probe"
cat >"$root/etc/systemd/system/sms-gw.service" <<'EOT'
[Unit]
Description=loopback SMS gateway of the package test
[Service]
ExecStart=/usr/local/sbin/sms-gw
[Install]
WantedBy=multi-user.target
EOT
cat >"$root/etc/systemd/system/probe.service" <<'EOT'
[Unit]
Description=package test probe
After=multi-user.target mfad.service sms-gw.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/probe
[Install]
WantedBy=multi-user.target
EOT
for u in sms-gw probe; do
	ln -s "/etc/systemd/system/$u.service" "$root/etc/systemd/system/multi-user.target.wants/$u.service"
done

# The probe powers the container off; the timeout only guards a hang. A
# machine name of its own lets two runs boot at once.
timeout 300 systemd-nspawn --quiet --directory="$root" --machine="mfa-pt-${work##*.}" --register=no --keep-unit --private-network --boot \
	>"$work/nspawn-boot.log" 2>&1 </dev/null || true
[[ -s $root/root/probe.out ]] ||
	die "the container wrote no results; its console: $(tail -n 20 "$work/nspawn-boot.log")"
cat "$root/root/probe.out"
