# %postun of mfa: $1 is 0 after the final removal, 1 after an upgrade. Like
# %systemd_postun_with_restart: reload units, restart a running daemon on an
# upgrade. The configuration (%config(noreplace)) and /var/lib/mfad stay.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
	systemctl try-restart mfad.service >/dev/null 2>&1 || :
fi
