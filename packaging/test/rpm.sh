# shellcheck shell=bash disable=SC2154
# Sourced by run.sh (uses its `check`, TARGET_DIR, DEB_VERSION, docs): the
# RPM's lint, file list, configuration files and scriptlets.

rpm_file=$(ls "$TARGET_DIR"/generate-rpm/mfa-*.rpm 2>/dev/null | head -n 1)
[[ -n $rpm_file ]] || die "no $TARGET_DIR/generate-rpm/mfa-*.rpm: run make rpm"

rpmlint_clean() {
	local out
	# Its filters are in the repository, each with its reason.
	out=$(rpmlint -r packaging/rpm/mfa.rpmlintrc "$rpm_file" 2>&1)
	echo "$out"
	# "N packages and 0 specfiles checked; E errors, W warnings"
	grep -Eq ' 0 errors, [0-9]+ warnings' <<<"$out"
}
check "rpmlint $(basename "$rpm_file"): 0 errors" rpmlint_clean

rpm_files_are() {
	local want have
	want=$(
		cat <<EOT
/etc/mfad/mfad.toml
/usr/bin/mfactl
/usr/lib/systemd/system/mfad.service
/usr/lib/systemd/system/mfad.socket
/usr/lib64/security/pam_mfa.so
/usr/sbin/mfad
/usr/share/bash-completion/completions/mfactl
/usr/share/dbus-1/system-services/org.mfad.Mfa1.service
/usr/share/dbus-1/system.d/org.mfad.Mfa1.conf
/usr/share/doc/mfa/README.md
/usr/share/fish/vendor_completions.d/mfactl.fish
/usr/share/licenses/mfa/LICENSE
/usr/share/man/man5/mfad.toml.5.gz
/usr/share/man/man8/mfad.8.gz
/usr/share/man/man8/pam_mfa.8.gz
/usr/share/zsh/site-functions/_mfactl
EOT
		for f in "$docs"/man/*.1; do echo "/usr/share/man/man1/${f##*/}.gz"; done
	)
	want=$(sort <<<"$want")
	have=$(rpm -qlp "$rpm_file" 2>/dev/null | sort)
	[[ $have == "$want" ]] || { diff <(echo "$want") <(echo "$have"); return 1; }
}
check "rpm -qlp: the expected files" rpm_files_are
check "rpm --configfiles: /etc/mfad/mfad.toml alone" \
	bash -c "[[ \$(rpm -qp --configfiles '$rpm_file' 2>/dev/null) == /etc/mfad/mfad.toml ]]"
check "rpm: mfad.toml is %config(noreplace)" \
	bash -c "rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$rpm_file' 2>/dev/null | grep -qx '/etc/mfad/mfad.toml cn'"
rpm_scripts() {
	local s
	s=$(rpm -qp --scripts "$rpm_file" 2>/dev/null)
	local want
	for want in "postinstall scriptlet" "systemctl daemon-reload" "systemctl --no-reload preset mfad.service" \
		"preuninstall scriptlet" "pam_mfa\\.so" "systemctl --no-reload disable --now mfad.service" \
		"postuninstall scriptlet" "systemctl try-restart mfad.service"; do
		grep -qF -- "$want" <<<"$s" || { echo "--scripts lacks '$want':"; echo "$s"; return 1; }
	done
	# Never edits PAM: no authselect, no pam-auth-update, no writes to /etc/pam.d.
	! grep -Eq 'authselect (enable|select)|pam-auth-update|sed -i|> */etc/pam' <<<"$s" ||
		{ echo "a scriptlet edits PAM:"; echo "$s"; return 1; }
}
check "rpm --scripts: daemon-reload, preset, guard and disable on removal, try-restart on upgrade" rpm_scripts
rpm_requires() {
	local r p
	r=$(rpm -qp --requires "$rpm_file" 2>/dev/null)
	for p in dbus pam systemd; do
		grep -qx "$p" <<<"$r" || { echo "Requires lacks $p:"; echo "$r"; return 1; }
	done
}
check "rpm: Requires dbus, pam, systemd" rpm_requires
