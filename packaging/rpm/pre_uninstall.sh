# %preun of mfa: $1 is 0 on the final removal, 1 on an upgrade. On the final
# removal, refuse while a PAM file still loads pam_mfa.so: a "required" line
# naming a missing module fails every login through it, root's included.
# Then, like %systemd_preun, disable and stop the daemon.
if [ "$1" -eq 0 ]; then
	named=""
	for f in /etc/pam.d/*; do
		[ -f "$f" ] || continue
		# Backups that no login reads (rpm, authselect, editors).
		case "$f" in
		*.rpmsave | *.rpmnew | *.rpmorig | *.pam-old | *~) continue ;;
		esac
		if grep -Eq '^[[:space:]]*[^#[:space:]].*pam_mfa\.so' "$f"; then
			named="$named $f"
		fi
	done
	if [ -n "$named" ] && [ "${MFA_FORCE_REMOVE:-}" != 1 ]; then
		echo "mfa: not removed: pam_mfa.so is still named in:$named; logins through these files would fail without the module. Take pam_mfa.so out of them first (authselect: disable the feature or select a profile without it; keep a root shell open), or override with MFA_FORCE_REMOVE=1." >&2
		exit 1
	fi
	systemctl --no-reload disable --now mfad.service >/dev/null 2>&1 || :
fi
