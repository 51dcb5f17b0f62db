#!/usr/bin/env bash
# The mfa demo: a real enrollment and real SSH logins on this machine,
# self-contained and cleaned up afterwards.
#
# In a temporary directory it starts a private D-Bus bus, mfad, and an sshd
# on 127.0.0.1:2222 (DEMO_PORT to change it) with its own config, host key
# and PID file. That sshd runs as `sshd-mfa-demo`, a symlink to
# /usr/sbin/sshd, so it uses the PAM service /etc/pam.d/sshd-mfa-demo, which
# loads target/debug/libpam_mfa.so. It creates the user `mfademo` with an
# SSH key, enrolls an authenticator app for them with mfactl (a QR code),
# then logs in with the real ssh client: the key, then the code. Then it
# adds a phone for codes by SMS (mfactl enroll sms) and logs in with a code
# sent by SMS. mfad's SMS gateway is the `file` backend: each message is a
# line in $dir/sms-outbox.jsonl, which the demo shows as the phone would.
#
# Interactive (default): scan the QR code with your phone, type its codes;
# type the SMS codes the demo's "phone" prints.
# DEMO_AUTO=1: app codes are computed with oathtool, SMS codes are read from
# the outbox, and the ssh client gets them through SSH_ASKPASS; no
# questions asked.
#
# Run as root after `cargo build --workspace` (`make demo` does both).
# Exits non-zero if any step fails. The machine's own sshd, bus, PAM
# configuration and users are not touched.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
user=mfademo
# The second user, who enrolls inside their first SSH login.
user2=mfademo2
service=sshd-mfa-demo
pam_file=/etc/pam.d/$service
port=${DEMO_PORT:-2222}
# A number reserved for fiction (555-0100 to 555-0199), and how mfad shows
# it to the user.
phone=+15555550100
phone_masked='+155*****100'
marker="# written by mfa scripts/demo.sh; removed when the demo ends"

bold=""
reset=""
if [[ -t 1 ]]; then
	bold=$'\e[1m'
	reset=$'\e[0m'
fi

die() {
	echo "demo: $*" >&2
	exit 1
}
step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n%s==> %d. %s%s\n' "$bold" "$step_no" "$*" "$reset"
}
say() { printf '    %s\n' "$*"; }
show() { printf '    $ %s\n' "$*"; }
indent() { sed 's/^/    /'; }

case ${DEMO_AUTO:-0} in
"" | 0 | no | false) auto=0 ;;
*) auto=1 ;;
esac
if [[ $auto -eq 0 && ! -t 0 ]]; then
	die "stdin is not a terminal, so nobody can type codes; run the non-interactive demo: DEMO_AUTO=1 make demo"
fi
if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
	die "DEMO_PORT must be a TCP port number (1-65535), not '$port'"
fi
port=$((10#$port))

# ---- preconditions -------------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "run the demo as root (it creates a user, starts sshd and writes $pam_file)"
mfad=$repo/target/debug/mfad
mfactl=$repo/target/debug/mfactl
module=$repo/target/debug/libpam_mfa.so
for f in "$mfad" "$mfactl" "$module"; do
	[[ -f $f ]] || die "$f is missing; build first: cargo build --workspace (or: make demo)"
done
export PATH=$PATH:/usr/sbin:/sbin
for t in dbus-daemon dbus-send oathtool setpriv setsid useradd userdel flock ssh ssh-keygen timeout; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install the dependencies first: scripts/install-deps.sh (or: make demo)"
done
sshd_bin=/usr/sbin/sshd
[[ -x $sshd_bin ]] || die "$sshd_bin not found; install the dependencies first: scripts/install-deps.sh (or: make demo)"

# One demo at a time: the user and the PAM service have fixed names. The
# lock is on this script itself, so nothing is left behind.
exec 9<"${BASH_SOURCE[0]}"
flock -n 9 || die "another demo is running"

if [[ -e $pam_file ]] && ! grep -qxF "$marker" "$pam_file"; then
	die "$pam_file exists and was not written by this demo; remove it or rename it first"
fi
# The demo gives the user an SSH key and a home of its own; it does not do
# that to an account it did not make.
for u in "$user" "$user2"; do
	if id "$u" >/dev/null 2>&1; then
		die "user $u exists already (left over from an interrupted demo?); remove it first: userdel $u"
	fi
done
# Anything answering on the port (another sshd, an earlier demo) would get
# our ssh client's logins.
if (: <>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	die "port $port on 127.0.0.1 is busy (something listens there); stop it, or run the demo on another port: DEMO_PORT=2223 make demo"
fi

# ---- cleanup, whatever happens -------------------------------------------

dir=""
bus_pid=""
mfad_pid=""
sshd_pid=""
reader_pid=""
made_user=0
made_user2=0
wrote_pam=0

stop() { # PID NAME
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "demo: $2 did not stop on SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	if [[ $rc -ne 0 && -n $dir ]]; then
		for log in mfad.log sshd.log dbus-daemon.log; do
			if [[ -s $dir/$log ]]; then
				echo "demo: last lines of $log:" >&2
				tail -n 20 "$dir/$log" | indent >&2
			fi
		done
	fi
	printf '\n%s==> cleaning up%s\n' "$bold" "$reset"
	stop "$reader_pid" "the phone's reader"
	# sshd first: its connections' PAM modules talk to mfad.
	if [[ -n $sshd_pid ]]; then
		stop "$sshd_pid" sshd && say "stopped sshd"
	fi
	stop "$mfad_pid" mfad
	stop "$bus_pid" dbus-daemon
	if [[ $wrote_pam -eq 1 ]]; then
		rm -f "$pam_file" && say "removed $pam_file"
	fi
	if [[ $made_user -eq 1 ]]; then
		userdel -f "$user" >/dev/null 2>&1 && say "removed user $user" ||
			echo "demo: could not remove user $user (userdel -f $user)" >&2
	fi
	if [[ $made_user2 -eq 1 ]]; then
		userdel -f "$user2" >/dev/null 2>&1 && say "removed user $user2" ||
			echo "demo: could not remove user $user2 (userdel -f $user2)" >&2
	fi
	if [[ -n $dir ]]; then
		rm -rf -- "$dir" && say "removed $dir (bus, mfad's state, sshd's config, keys and the $service symlink)"
	fi
	if [[ $rc -eq 0 ]]; then
		printf '\n%sdemo finished: enrollment, codes by SMS, SSH logins, enrolling at login and a session ending on time worked.%s\n' "$bold" "$reset"
	else
		printf '\n%sdemo FAILED (exit %d)%s\n' "$bold" "$rc" "$reset" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- helpers --------------------------------------------------------------

# Runs a command as the demo user, as a user would run it themselves.
as_user() {
	setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
}

# Does the bus at $addr answer, and does NAME have an owner?
has_owner() {
	dbus-send --bus="$addr" --print-reply=literal --dest=org.freedesktop.DBus \
		/org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null |
		grep -q true
}

# Waits up to 10 s for NAME to get an owner while PID lives.
wait_owner() { # NAME PID WHAT LOG
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$2" 2>/dev/null || die "$3 exited during startup (see $4 below)"
		has_owner "$1" && return 0
		sleep 0.1
	done
	die "$3 did not come up within 10 s"
}

# The code for TOTP step STEP; the secret goes on stdin, not in arguments.
code_at_step() { # STEP
	oathtool --totp --base32 --digits=6 --now="@$(($1 * 30))" - <"$dir/secret"
}

now_step() { echo $(($(date +%s) / 30)); }

# The demo's remote command: its output shows the login got a shell.
# shellcheck disable=SC2016 # expanded by the remote shell
remote_cmd='echo "hello from $(id -un)@$(hostname), logged in over SSH ($SSH_CONNECTION)"'
greeting="hello from $user@"

# Runs the real ssh client to the demo's sshd. Interactive: on this
# terminal, the person types the code. Otherwise (and with ASKPASS=MODE)
# without a terminal: ssh asks the askpass script for every answer, which
# is how a prompt is answered without a tty (SSH_ASKPASS_REQUIRE=force, no
# stdin, own session). Sets $out and $rc.
demo_ssh() { # [ASKPASS_MODE] -- SSH_ARGS...
	local mode=$1
	shift
	set +e
	if [[ $mode == tty ]]; then
		# The output goes to the terminal as it comes; tee keeps it to check.
		# --foreground: ssh reads the code from the terminal, which a
		# background process group may not.
		timeout --foreground 300 ssh -F "$dir/ssh_config" "$@" 2>&1 | tee "$dir/ssh.out" | indent
		rc=${PIPESTATUS[0]}
		out=$(<"$dir/ssh.out")
	else
		out=$(DEMO_ASKPASS_MODE=$mode DEMO_DIR=$dir DEMO_SMS_SEEN=$(outbox_count) \
			SSH_ASKPASS="$dir/askpass" SSH_ASKPASS_REQUIRE=force \
			timeout 60 setsid -w ssh -F "$dir/ssh_config" "$@" </dev/null 2>&1)
		rc=$?
		indent <<<"$out"
	fi
	set -e
	if [[ $rc -eq 124 ]]; then
		die "ssh did not finish in time"
	fi
}

# ---- the demo's phone: mfad's SMS outbox -------------------------------------

# How many messages mfad has sent so far (lines in the outbox).
outbox_count() {
	if [[ -f $outbox ]]; then
		wc -l <"$outbox"
	else
		echo 0
	fi
}

# One outbox line as the phone shows it: "[SMS to +1555...] TEXT". The
# fields are strings without quotes in them (E.164, the demo's sender and
# message), so sed can take them apart.
sms_text() { # JSON_LINE
	local to message
	to=$(sed -n 's/.*"to":"\([^"]*\)".*/\1/p' <<<"$1")
	message=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' <<<"$1")
	printf '[SMS to %s] %s\n' "$to" "$message"
}

# Shows the messages after the first SEEN, as they reached the phone.
show_sms_after() { # SEEN
	local line
	tail -n "+$(($1 + 1))" "$outbox" | while IFS= read -r line; do
		printf '    %s\n' "$(sms_text "$line")"
	done
}

# The code in the last message (its last run of 6 digits).
last_sms_code() {
	tail -n 1 "$outbox" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p' |
		grep -oE '[0-9]{6}' | tail -n 1
}

# Interactive: the phone, in the background. Prints each message as it is
# appended to the outbox, until the demo ends (cleanup stops it).
start_phone() {
	[[ -z $reader_pid ]] || return 0
	(
		trap - EXIT INT TERM HUP
		# A hiccup (a closed pipe) must not end the phone.
		set +e
		seen=$(outbox_count)
		while sleep 0.2; do
			n=$(outbox_count)
			if ((n > seen)); then
				# A leading newline: the message may arrive while a
				# prompt waits on the line.
				echo
				show_sms_after "$seen" | head -n $((n - seen))
				seen=$n
			fi
		done
	) 9<&- </dev/null &
	reader_pid=$!
}

# How many prompts the askpass script answered so far.
askpass_count() {
	if [[ -f $dir/askpass.log ]]; then
		wc -l <"$dir/askpass.log"
	else
		echo 0
	fi
}

# ---- the private bus and the daemon -----------------------------------------

step "Start a private D-Bus bus and mfad in a temporary directory"
dir=$(mktemp -d /tmp/mfa-demo.XXXXXX)
# The demo user must reach the bus socket and their home inside.
chmod 0755 "$dir"
addr="unix:path=$dir/bus"
outbox=$dir/sms-outbox.jsonl
bash "$repo/scripts/bus-config.sh" "$dir" >"$dir/bus.conf" ||
	die "scripts/bus-config.sh could not write a bus config"
dbus-daemon --nofork --nopidfile --config-file="$dir/bus.conf" 9<&- </dev/null >"$dir/dbus-daemon.log" 2>&1 &
bus_pid=$!
wait_owner org.freedesktop.DBus "$bus_pid" dbus-daemon dbus-daemon.log
say "bus:    $addr (system bus policy plus packaging/dbus/org.mfad.Mfa1.conf)"

cat >"$dir/mfad.toml" <<EOF
# mfad config for the demo (see packaging/mfad.toml for every key)
[daemon]
bus = "$addr"
state_dir = "$dir/state"
login_socket = "$dir/login.socket"
issuer = "mfa-demo"
log = "stderr"

[policy]
mode = "optional"

[totp]
# Two steps each way, so the codes computed for DEMO_AUTO=1 stay valid
# across a 30-second boundary.
window = 2

[trusted_devices]
# A key that passed the code step logs in without one for 30 days.
lifetime = "30d"

[session]
# A login that passed 2-step lasts at most 8 hours; users may choose less.
max_duration = "8h"

[sms]
# Codes by SMS are appended to a file, one JSON line per message, which the
# demo shows as its phone. A real machine sends them with backend = "http"
# (an SMS provider such as Twilio) or "command" (a GSM modem through
# gammu-smsd-inject) instead.
backend = "file"
# The demo logs in with a code by SMS right after adding the phone; a real
# machine keeps the default 30 s between two messages to one user.
resend_cooldown = "0s"

[sms.file]
path = "$outbox"
EOF
"$mfad" --config "$dir/mfad.toml" 9<&- </dev/null 2>"$dir/mfad.log" &
mfad_pid=$!
wait_owner org.mfad.Mfa1 "$mfad_pid" mfad mfad.log
say "mfad:   $mfad --config $dir/mfad.toml"
say "state:  $dir/state (the database with the secrets)"
say "config: $dir/mfad.toml:"
grep -v '^#' "$dir/mfad.toml" | grep -v '^$' | sed 's/^/      /'
say "([sms] backend \"file\": text messages go to that file, the demo's phone; a"
say " real machine uses \"http\" (e.g. Twilio) or \"command\" (a GSM modem))"

# ---- the demo user and their SSH key -----------------------------------------

step "Create the user $user, with an SSH key"
home=$dir/home
useradd -M -N -d "$home" -s /bin/sh -c "mfa demo user" "$user" ||
	die "useradd $user failed"
made_user=1
uid=$(id -u "$user")
gid=$(id -g "$user")
# sshd's StrictModes checks the key file's directories up to the home: they
# must be the user's and not writable by others.
install -d -m 0755 -o "$uid" -g "$gid" "$home"
install -d -m 0700 -o "$uid" -g "$gid" "$home/.ssh"
ssh-keygen -q -t ed25519 -N '' -C "$user@mfa-demo" -f "$dir/id_ed25519" ||
	die "ssh-keygen failed"
install -m 0600 -o "$uid" -g "$gid" "$dir/id_ed25519.pub" "$home/.ssh/authorized_keys"
say "created user $user (shell /bin/sh, home $home; removed at the end)"
say "its SSH key: $dir/id_ed25519 ($(ssh-keygen -l -f "$dir/id_ed25519.pub" | cut -d' ' -f2))"

# The demo user runs mfactl; a checkout under a private directory (e.g.
# /root) is out of their reach, so give them a copy then.
if ! as_user test -x "$mfactl"; then
	install -m 0755 "$mfactl" "$dir/mfactl"
	mfactl=$dir/mfactl
fi

# ---- sshd with pam_mfa ---------------------------------------------------------

step "Start sshd on 127.0.0.1:$port, with pam_mfa in its PAM service $service"
wrote_pam=1
cat >"$pam_file" <<EOF
$marker
auth     required  $module bus=$addr
account  required  $module bus=$addr
session  required  pam_permit.so
session  required  $module bus=$addr
EOF
say "$pam_file:"
sed 's/^/      /' "$pam_file"

ssh-keygen -q -t ed25519 -N '' -C "mfa-demo host key" -f "$dir/ssh_host_ed25519_key" ||
	die "ssh-keygen failed"
cat >"$dir/sshd_config" <<EOF
# sshd for the mfa demo: everything in $dir, nothing from /etc/ssh
ListenAddress 127.0.0.1:$port
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AllowUsers $user $user2
PermitRootLogin no

# The key first, then keyboard-interactive, where PAM (pam_mfa) asks for
# the code.
UsePAM yes
PubkeyAuthentication yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
AuthenticationMethods publickey,keyboard-interactive

PrintMotd no
LogLevel VERBOSE
X11Forwarding no
AllowTcpForwarding no

# A mistake on purpose, for the last login of the demo: from 127.0.0.2 the
# key alone is enough. PAM's auth phase never runs then; the account phase
# (account required pam_mfa.so) refuses the login.
Match Address 127.0.0.2
    AuthenticationMethods publickey
EOF
say "$dir/sshd_config:"
sed -n '/^[A-Z ]/p' "$dir/sshd_config" | sed 's/^/      /'

# OpenSSH takes its PAM service name from the name it is started as, and
# re-executes itself by that path, which must be absolute.
ln -s "$sshd_bin" "$dir/$service"
# The privilege-separation directory, normally made by the service's start.
# It is left in place: the system's own sshd wants it too.
if [[ ! -d /run/sshd ]]; then
	install -d -m 0755 /run/sshd
fi
"$dir/$service" -t -f "$dir/sshd_config" 2>"$dir/sshd.log" ||
	die "sshd rejects the demo's config: $(tail -n 1 "$dir/sshd.log")"
"$dir/$service" -D -e -f "$dir/sshd_config" 9<&- </dev/null 2>>"$dir/sshd.log" &
sshd_pid=$!
for ((i = 0; i < 100; i++)); do
	grep -q "Server listening on 127.0.0.1 port $port" "$dir/sshd.log" && break
	if ! kill -0 "$sshd_pid" 2>/dev/null; then
		wait "$sshd_pid" 2>/dev/null || true
		sshd_pid=""
		if grep -q "Address already in use" "$dir/sshd.log"; then
			die "port $port on 127.0.0.1 is busy; stop whatever listens there, or run the demo on another port: DEMO_PORT=2223 make demo"
		fi
		die "sshd exited during startup (see sshd.log below)"
	fi
	sleep 0.1
done
grep -q "Server listening on 127.0.0.1 port $port" "$dir/sshd.log" ||
	die "sshd did not start listening on 127.0.0.1:$port within 10 s"
say "sshd:   $dir/$service -D -e -f $dir/sshd_config   ($service -> $sshd_bin)"

# The client side: the demo key, and the demo host key as the only known one.
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
cat >"$dir/ssh_config" <<EOF
# ssh client config for the mfa demo
Host *
    IdentityFile $dir/id_ed25519
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile $dir/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    # One round of keyboard-interactive (the module allows 3 codes in it).
    NumberOfPasswordPrompts 1
EOF
ssh_show="ssh -F $dir/ssh_config"
ssh_dest="-p $port $user@127.0.0.1"

# ---- enrollment -------------------------------------------------------------

step "Enroll an authenticator app for $user (mfactl, run as $user)"
if [[ $auto -eq 0 ]]; then
	show "mfactl --bus $addr enroll totp"
	say "Scan the QR code with your phone's authenticator app, then type two"
	say "codes in a row from it."
	echo
	as_user "$mfactl" --bus "$addr" enroll totp || die "enrollment failed"
else
	show "mfactl --bus $addr enroll totp --begin"
	begin=$(as_user "$mfactl" --bus "$addr" enroll totp --begin) ||
		die "mfactl enroll totp --begin failed"
	indent <<<"$begin"
	re='--confirm ([[:alnum:]_-]+)'
	[[ $begin =~ $re ]] || die "mfactl enroll totp --begin printed no enrollment id"
	id=${BASH_REMATCH[1]}
	re='otpauth://[^[:space:]]*[?&]secret=([A-Z2-7]+)'
	[[ $begin =~ $re ]] || die "mfactl enroll totp --begin printed no otpauth URI with a secret"
	# The secret stays in a root-only file: codes are computed from it
	# (here and by the askpass script), never passed in arguments.
	(umask 077 && printf '%s\n' "${BASH_REMATCH[1]}" >"$dir/secret")
	say "(DEMO_AUTO=1: instead of a phone, oathtool computes the codes from that secret)"
	# Two consecutive steps: the previous one and now. The login that
	# follows uses a later step (a used step never works again), still
	# inside window = 2 even if the clock moves on meanwhile.
	enroll_step=$(now_step)
	show "mfactl --bus $addr enroll totp --confirm $id   (Code 1 and Code 2 on stdin: oathtool's codes for steps $((enroll_step - 1)) and $enroll_step)"
	confirm=$({ code_at_step $((enroll_step - 1)) && code_at_step "$enroll_step"; } |
		as_user "$mfactl" --bus "$addr" enroll totp --confirm "$id") ||
		die "mfactl enroll totp --confirm failed"
	indent <<<"$confirm"
	echo "$((enroll_step + 1))" >"$dir/min_step"
fi

step "Show the enrollment"
show "mfactl --bus $addr status"
as_user "$mfactl" --bus "$addr" status | indent || die "mfactl status failed"

# The askpass script: answers sshd's "Verification code: " prompt as a
# person would. MODE right: oathtool's code for now (or the first step not
# used yet, min_step, which it moves on past the step it gives); MODE
# wrong: a code that is wrong now; MODE sms: Enter at the app-or-SMS
# prompt, then the code of the SMS that Enter sent (a new line in the
# outbox after the first DEMO_SMS_SEEN). Every prompt it sees is logged, to
# tell whether one came and which.
cat >"$dir/askpass" <<'EOF'
#!/bin/sh
# SSH_ASKPASS for the mfa demo: ssh runs it with the prompt as $1 (which
# may have the module's message on a line before it). One line per prompt:
printf '%s\n' "$1" | tr '\n' ' ' >>"$DEMO_DIR/askpass.log"
echo >>"$DEMO_DIR/askpass.log"
# MODE enroll: a user enrolling inside the login. Code 1 and Code 2 are
# oathtool's codes for two consecutive steps, from the secret shown in the
# prompt (kept in a root-only file); the choice of app or text message and
# the last prompt get Enter.
if [ "$DEMO_ASKPASS_MODE" = enroll ]; then
	printf '%s\n' "$1" >>"$DEMO_DIR/enroll-prompts"
	case $1 in
	*"Code 1: ")
		(umask 077 && printf '%s\n' "$1" | grep -oE 'secret=[A-Z2-7]+' | head -n 1 |
			cut -d= -f2 >"$DEMO_DIR/secret2")
		step=$(($(date +%s) / 30))
		echo "$step" >"$DEMO_DIR/enroll_step"
		oathtool --totp --base32 --digits=6 --now="@$(((step - 1) * 30))" - <"$DEMO_DIR/secret2"
		;;
	*"Code 2: ")
		step=$(cat "$DEMO_DIR/enroll_step")
		oathtool --totp --base32 --digits=6 --now="@$((step * 30))" - <"$DEMO_DIR/secret2"
		;;
	*"(type sms): " | *"Press Enter to continue: ") echo ;;
	*)
		echo "askpass: unexpected prompt: $1" >&2
		exit 1
		;;
	esac
	exit 0
fi
case $1 in
*"Verification code"*) ;;
*)
	echo "askpass: unexpected prompt: $1" >&2
	exit 1
	;;
esac
case $DEMO_ASKPASS_MODE in
wrong) cat "$DEMO_DIR/wrong_code" ;;
right)
	step=$(($(date +%s) / 30))
	min=$(cat "$DEMO_DIR/min_step")
	[ "$step" -ge "$min" ] || step=$min
	# A step once used never works again.
	echo $((step + 1)) >"$DEMO_DIR/min_step"
	oathtool --totp --base32 --digits=6 --now="@$((step * 30))" - <"$DEMO_DIR/secret"
	;;
sms)
	case $1 in
	*"Code sent by SMS to "*)
		outbox=$DEMO_DIR/sms-outbox.jsonl
		i=0
		while [ "$(cat "$outbox" 2>/dev/null | wc -l)" -le "$DEMO_SMS_SEEN" ]; do
			i=$((i + 1))
			if [ "$i" -gt 50 ]; then
				echo "askpass: no new SMS in $outbox" >&2
				exit 1
			fi
			sleep 0.1
		done
		tail -n 1 "$outbox" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p' |
			grep -oE '[0-9]{6}' | tail -n 1
		;;
	*"press Enter to get a code by SMS"*) echo ;;
	*) exit 1 ;;
	esac
	;;
*) exit 1 ;;
esac
EOF
chmod 0700 "$dir/askpass"

# ---- SSH logins -----------------------------------------------------------------

step "Log in over SSH: the key, then the code"
show "$ssh_show $ssh_dest '$remote_cmd'"
if [[ $auto -eq 0 ]]; then
	say "ssh asks for the code: type the one your app shows now. The codes"
	say "used to enroll are used up: if the app still shows Code 2, wait for"
	say "the next one."
	echo
	demo_ssh tty -p "$port" "$user@127.0.0.1" "$remote_cmd"
else
	say "(DEMO_AUTO=1: ssh runs without a terminal and SSH_ASKPASS=$dir/askpass"
	say " answers the prompt with oathtool's current code)"
	before=$(askpass_count)
	demo_ssh right -p "$port" "$user@127.0.0.1" "$remote_cmd"
	(($(askpass_count) > before)) || die "ssh was not asked for a verification code"
	say "askpass answered: $(tail -n 1 "$dir/askpass.log" | sed 's/ *$//') ******"
fi
[[ $rc -eq 0 && $out == *"$greeting"* ]] || die "the SSH login with the key and the right code failed (ssh exit $rc)"
say "logged in: the remote command ran"

step "Log in again from the same key: a trusted device, no code asked"
say "([trusted_devices] lifetime = \"30d\": the key that just passed the code"
say " step is trusted for 30 days)"
show "$ssh_show $ssh_dest '$remote_cmd'"
before=$(askpass_count)
if [[ $auto -eq 0 ]]; then
	demo_ssh tty -p "$port" "$user@127.0.0.1" "$remote_cmd"
else
	demo_ssh right -p "$port" "$user@127.0.0.1" "$remote_cmd"
fi
[[ $rc -eq 0 && $out == *"$greeting"* ]] || die "the SSH login from the trusted key failed (ssh exit $rc)"
(($(askpass_count) == before)) || die "a code was asked for although the key is trusted"
say "logged in without a code"

step "The user's trusted devices, and removing them"
show "mfactl --bus $addr trusted list"
as_user "$mfactl" --bus "$addr" trusted list | indent || die "mfactl trusted list failed"
show "mfactl --bus $addr trusted remove --all"
as_user "$mfactl" --bus "$addr" trusted remove --all | indent || die "mfactl trusted remove --all failed"

step "A wrong code is refused over SSH"
# The wrong code must not be one the window accepts right now.
s=$(now_step)
valid=$(for k in -3 -2 -1 0 1 2 3 4; do code_at_step $((s + k)) 2>/dev/null; done || true)
wrong=000000
for candidate in 000000 111111 222222 333333 444444 555555 666666; do
	if ! grep -qx "$candidate" <<<"$valid"; then
		wrong=$candidate
		break
	fi
done
echo "$wrong" >"$dir/wrong_code"
show "$ssh_show $ssh_dest '$remote_cmd'"
say "(SSH_ASKPASS answers $wrong to each prompt: 3 tries in one login)"
before=$(askpass_count)
demo_ssh wrong -p "$port" "$user@127.0.0.1" "$remote_cmd"
[[ $rc -ne 0 && $out != *"$greeting"* ]] || die "the login with a wrong code got in"
(($(askpass_count) > before)) || die "ssh was not asked for a verification code"
say "refused; the prompts SSH_ASKPASS answered with $wrong:"
tail -n "+$((before + 1))" "$dir/askpass.log" | sed -e 's/ *$//' -e 's/^/      /'
say "(each wrong code counts toward the lockout)"

step "A misconfigured sshd that skips the code: the account phase refuses"
say "From 127.0.0.2 this sshd takes the key alone (see its Match block), so"
say "PAM's auth phase, and with it the code, never runs. The line"
say "'account required pam_mfa.so' catches it: no code step in this login."
show "$ssh_show -b 127.0.0.2 $ssh_dest '$remote_cmd'"
before=$(askpass_count)
demo_ssh right -b 127.0.0.2 -p "$port" "$user@127.0.0.1" "$remote_cmd"
[[ $rc -ne 0 && $out != *"$greeting"* ]] || die "the key-only login got in: the account guard did not refuse it"
(($(askpass_count) == before)) || die "a code was asked for in a key-only login"
grep -q "account denied" "$dir/mfad.log" || die "mfad logged no 'account denied' line"
say "refused; mfad logged why:"
grep "account denied" "$dir/mfad.log" | tail -n 1 | indent

# ---- codes by SMS -----------------------------------------------------------------

step "Add a phone for codes by SMS (mfactl enroll sms, run as $user)"
say "mfad's SMS gateway here is a file, $outbox (backend \"file\"):"
say "each message is a line in it, which the demo shows as the phone would."
if [[ $auto -eq 0 ]]; then
	start_phone
	show "mfactl --bus $addr enroll sms $phone"
	say "$user has an app already, so mfactl first asks for a current code:"
	say "type the one your app shows now (if it still shows the code you last"
	say "used, wait for the next one). Then a code goes to $phone; the"
	say "demo's phone prints it here as [SMS to $phone] ...; type it at Code:."
	echo
	seen=$(outbox_count)
	as_user "$mfactl" --bus "$addr" enroll sms "$phone" || die "enrolling the phone failed"
	(($(outbox_count) > seen)) || die "mfad sent no SMS for the enrollment"
else
	seen=$(outbox_count)
	# The current code: a step after every one used so far.
	s=$(now_step)
	min=$(<"$dir/min_step")
	((s >= min)) || s=$min
	echo "$((s + 1))" >"$dir/min_step"
	show "mfactl --bus $addr --json enroll sms $phone --begin   (a current code on stdin: oathtool's code for step $s)"
	begin=$(code_at_step "$s" | as_user "$mfactl" --bus "$addr" --json enroll sms "$phone" --begin) ||
		die "mfactl enroll sms --begin failed"
	indent <<<"$begin"
	re='"enrollment_id": *"([^"]+)"'
	[[ $begin =~ $re ]] || die "mfactl enroll sms --begin printed no enrollment_id"
	id=${BASH_REMATCH[1]}
	[[ $begin == *"\"$phone_masked\""* ]] || die "mfactl enroll sms --begin did not show the number masked as $phone_masked"
	(($(outbox_count) == seen + 1)) || die "mfad sent $(($(outbox_count) - seen)) SMS for the enrollment, not 1"
	say "the phone received:"
	show_sms_after "$seen"
	code=$(last_sms_code)
	[[ -n $code ]] || die "the SMS has no 6-digit code in it"
	show "mfactl --bus $addr enroll sms --confirm $id CODE   (CODE: the code in that SMS)"
	confirm=$(as_user "$mfactl" --bus "$addr" enroll sms --confirm "$id" "$code") ||
		die "mfactl enroll sms --confirm failed"
	indent <<<"$confirm"
fi

step "Log in with a code by SMS"
# A trusted key is let in without a code; none may be left from above.
trusted=$(as_user "$mfactl" --bus "$addr" --json trusted list) || die "mfactl trusted list failed"
if [[ $trusted == *'"id"'* ]]; then
	show "mfactl --bus $addr trusted remove --all"
	as_user "$mfactl" --bus "$addr" trusted remove --all | indent || die "mfactl trusted remove --all failed"
else
	say "(no trusted device: the key's trust was removed above, so a code is asked)"
fi
say "$user has an app and a phone: the prompt asks for the app's code, and"
say "an empty answer (Enter) sends a code by SMS instead."
show "$ssh_show $ssh_dest '$remote_cmd'"
seen=$(outbox_count)
if [[ $auto -eq 0 ]]; then
	say "At 'Verification code (press Enter to get a code by SMS):' press"
	say "Enter; then type the code the demo's phone prints."
	echo
	demo_ssh tty -p "$port" "$user@127.0.0.1" "$remote_cmd"
	[[ $rc -eq 0 && $out == *"$greeting"* ]] || die "the SSH login with a code by SMS failed (ssh exit $rc)"
	if (($(outbox_count) > seen)); then
		say "logged in with a code by SMS"
	else
		say "logged in (with the app's code: no SMS was sent)"
	fi
else
	say "(DEMO_AUTO=1: SSH_ASKPASS answers the first prompt with an empty line,"
	say " and the next one with the code of the SMS that arrived)"
	before=$(askpass_count)
	demo_ssh sms -p "$port" "$user@127.0.0.1" "$remote_cmd"
	[[ $rc -eq 0 && $out == *"$greeting"* ]] || die "the SSH login with a code by SMS failed (ssh exit $rc)"
	(($(askpass_count) == before + 2)) || die "ssh asked $(($(askpass_count) - before)) prompts, not 2 (app-or-SMS, then the SMS code)"
	first=$(tail -n 2 "$dir/askpass.log" | head -n 1 | sed 's/ *$//')
	second=$(tail -n 1 "$dir/askpass.log" | sed 's/ *$//')
	[[ $first == *"Verification code (press Enter to get a code by SMS):" ]] ||
		die "the first prompt was not the app-or-SMS one: $first"
	[[ $second == *"Code sent by SMS to $phone_masked. Verification code:" ]] ||
		die "the second prompt did not say where the code went: $second"
	(($(outbox_count) == seen + 1)) || die "mfad sent $(($(outbox_count) - seen)) SMS for the login, not 1"
	say "askpass answered: $first (Enter)"
	say "the phone received:"
	show_sms_after "$seen"
	say "askpass answered: $second ******"
	say "logged in with the code by SMS"
fi

step "The phone in the account: masked for $user, in full for an admin"
show "mfactl --bus $addr status"
status=$(as_user "$mfactl" --bus "$addr" status) || die "mfactl status failed"
indent <<<"$status"
[[ $status == *"$phone_masked"* && $status != *"$phone"* ]] ||
	die "mfactl status does not show the phone masked as $phone_masked"
show "mfactl --bus $addr admin status $user   (as root)"
status=$("$mfactl" --bus "$addr" admin status "$user") || die "mfactl admin status failed"
indent <<<"$status"
[[ $status == *"$phone"* ]] || die "mfactl admin status does not show the phone in full ($phone)"

# ---- everyone: enrollment inside the login -------------------------------------

step "Switch 2-step on for everyone: [policy] mode = \"required\", reloaded"
say "A user who must use 2-step and has no device is walked through setting"
say "it up inside their next login ([policy] enroll_at_login = true, the"
say "default; a grace_period would first let them in without it for a while)."
sed -i 's/^mode = "optional"$/mode = "required"/' "$dir/mfad.toml"
grep -qx 'mode = "required"' "$dir/mfad.toml" || die "could not switch the demo's mfad.toml to mode = \"required\""
show "sed -i 's/^mode = \"optional\"$/mode = \"required\"/' $dir/mfad.toml"
show "kill -HUP $mfad_pid   (systemctl reload mfad)"
reloads=$(grep -c "config reloaded" "$dir/mfad.log" || true)
kill -HUP "$mfad_pid"
for ((i = 0; i < 50; i++)); do
	(($(grep -c "config reloaded" "$dir/mfad.log" || true) > reloads)) && break
	sleep 0.1
done
(($(grep -c "config reloaded" "$dir/mfad.log" || true) > reloads)) || die "mfad did not reload its configuration"
grep "config reloaded" "$dir/mfad.log" | tail -n 1 | indent

step "Create the user $user2, who has no 2-step verification yet"
home2=$dir/home2
useradd -M -N -d "$home2" -s /bin/sh -c "mfa demo user 2" "$user2" ||
	die "useradd $user2 failed"
made_user2=1
uid2=$(id -u "$user2")
gid2=$(id -g "$user2")
install -d -m 0755 -o "$uid2" -g "$gid2" "$home2"
install -d -m 0700 -o "$uid2" -g "$gid2" "$home2/.ssh"
install -m 0600 -o "$uid2" -g "$gid2" "$dir/id_ed25519.pub" "$home2/.ssh/authorized_keys"
say "created user $user2 (the same demo key logs in to it)"

step "$user2 enrolls inside their first SSH login"
show "$ssh_show -p $port $user2@127.0.0.1 '$remote_cmd'"
greeting2="hello from $user2@"
if [[ $auto -eq 0 ]]; then
	say "After the key, the login asks: app or text message (press Enter for the"
	say "app). Then it shows a QR code: scan it with your app, then"
	say "type the code it shows (Code 1) and, once it changes, the next one"
	say "(Code 2). The backup codes follow; press Enter and the command runs."
	echo
	demo_ssh tty -p "$port" "$user2@127.0.0.1" "$remote_cmd"
else
	say "(DEMO_AUTO=1: SSH_ASKPASS chooses the app (Enter), reads the secret from"
	say " the prompt and answers Code 1 and Code 2 with oathtool's codes, then Enter)"
	before=$(askpass_count)
	demo_ssh enroll -p "$port" "$user2@127.0.0.1" "$remote_cmd"
	(($(askpass_count) == before + 4)) || die "ssh asked $(($(askpass_count) - before)) prompts, not 4 (app or text message, Code 1, Code 2, Press Enter)"
	say "what ssh showed, prompt by prompt (the codes typed are not shown):"
	indent <"$dir/enroll-prompts"
fi
[[ $rc -eq 0 && $out == *"$greeting2"* ]] || die "$user2's first SSH login with the enrollment failed (ssh exit $rc)"
say "logged in: the remote command ran"
show "mfactl --bus $addr admin status $user2   (as root)"
status=$("$mfactl" --bus "$addr" admin status "$user2") || die "mfactl admin status failed"
indent <<<"$status"
grep -q "enrolled at login" "$dir/mfad.log" || die "mfad logged no 'enrolled at login' line"

if [[ $auto -eq 0 ]]; then
	step "Try it yourself"
	# The last login made the key trusted again; ask for a code again.
	as_user "$mfactl" --bus "$addr" trusted remove --all >/dev/null ||
		die "mfactl trusted remove --all failed"
	say "sshd keeps running until you press Enter. In another terminal:"
	say ""
	say "    $ssh_show $ssh_dest"
	say ""
	say "The key's trust was removed, so it asks for a code: the app's, or press"
	say "Enter for one by SMS, which the phone prints here."
	say "(keep in mind: 5 wrong codes in a row lock $user for 15 minutes, and"
	say " at most 5 codes go out by SMS an hour)"
	read -r -p "    Press Enter to end the demo. " _ || true
fi

step "A session ends after its duration"
say "([session] max_duration = \"8h\" is the limit; $user chooses 5 seconds,"
say " mfad warns on the session's terminal, then ends it: SIGHUP, SIGTERM, SIGKILL)"
show "mfactl --bus $addr session-duration 5s"
as_user "$mfactl" --bus "$addr" session-duration 5s | indent || die "mfactl session-duration failed"
show "$ssh_show -t $ssh_dest 'sleep 60'"
started=$(date +%s)
if [[ $auto -eq 0 ]]; then
	demo_ssh tty -t -p "$port" "$user@127.0.0.1" "sleep 60"
else
	demo_ssh right -p "$port" "$user@127.0.0.1" "sleep 60"
fi
took=$(($(date +%s) - started))
((took < 30)) || die "the session outlived its duration (${took}s)"
say "ssh ended after ${took}s (exit $rc): mfad ended the session"
grep -F 'session ended' "$dir/mfad.log" | tail -n 1 | indent ||
	die "mfad logged no session end"
as_user "$mfactl" --bus "$addr" session-duration default >/dev/null ||
	die "mfactl session-duration default failed"

step "The daemon's view afterwards"
show "mfactl --bus $addr status"
as_user "$mfactl" --bus "$addr" status | indent || die "mfactl status failed"

step "What mfad logged (its audit log never holds a code or a secret)"
indent <"$dir/mfad.log"

step "What sshd logged about the logins"
grep -E 'Partial|Accepted (publickey|keyboard)|Failed|Access denied|Connection closed' "$dir/sshd.log" | indent || true
