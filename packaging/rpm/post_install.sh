# %post of mfa: $1 is 1 on a first install, 2 on an upgrade. Like
# %systemd_post: reload units, and on a first install apply the preset
# (Fedora enables nothing it does not list; the admin runs
# systemctl enable --now mfad). PAM is never edited: see the README.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl --no-reload preset mfad.service >/dev/null 2>&1 || :
fi
