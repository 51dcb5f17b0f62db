#!/usr/bin/env bash
# Installs what `make bench` needs beyond what the tests need, through
# scripts/install-deps.sh: the peer it is measured against
# (pam_google_authenticator) and the tools that give the benchmark its
# private namespaces. `make test` never runs this.
#
# What each extra package is for:
#   libpam-google-authenticator  pam_google_authenticator.so, the peer
#   util-linux                   unshare (private mount and PID namespaces)
#   mount                        mount --bind (the private /etc/passwd, /etc/pam.d)
# The SSH phase's sshd, ssh and ssh-keygen (openssh-server, openssh-client)
# are among what install-deps.sh installs for the tests anyway.
#
# Usage: scripts/bench-deps.sh
set -euo pipefail

here=$(dirname -- "${BASH_SOURCE[0]}")
bash "$here/install-deps.sh" libpam-google-authenticator util-linux mount

for t in unshare mount; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 || {
		echo "bench-deps.sh: '$t' is not on PATH although its package is installed" >&2
		exit 1
	}
done
[[ -n $(find /lib /usr/lib -name pam_google_authenticator.so -print -quit 2>/dev/null) ]] || {
	echo "bench-deps.sh: pam_google_authenticator.so not found although libpam-google-authenticator is installed" >&2
	exit 1
}
