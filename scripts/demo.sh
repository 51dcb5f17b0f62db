#!/usr/bin/env bash
# The mfa demo: a real enrollment and a real PAM login on this machine,
# self-contained and cleaned up afterwards.
#
# It starts a private D-Bus bus and mfad in a temporary directory (the
# machine's own bus, if any, is not touched), creates the user `mfademo`
# (unless it exists), and writes the PAM service /etc/pam.d/mfa-demo that
# loads target/debug/libpam_mfa.so. Then, as that user, it enrolls an
# authenticator app with mfactl and logs in through PAM with pamtester.
#
# Interactive (default): scan the QR code with your phone, type its codes.
# DEMO_AUTO=1: codes are computed with oathtool; no questions asked.
#
# Run as root after `cargo build --workspace` (`make demo` does both).
# Exits non-zero if any step fails.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
user=mfademo
service=mfa-demo
pam_file=/etc/pam.d/$service
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

case ${DEMO_AUTO:-0} in
"" | 0 | no | false) auto=0 ;;
*) auto=1 ;;
esac
if [[ $auto -eq 0 && ! -t 0 ]]; then
	die "stdin is not a terminal, so nobody can type codes; run the non-interactive demo: DEMO_AUTO=1 make demo"
fi

# ---- preconditions -------------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "run the demo as root (it creates a user and /etc/pam.d/$service)"
mfad=$repo/target/debug/mfad
mfactl=$repo/target/debug/mfactl
module=$repo/target/debug/libpam_mfa.so
for f in "$mfad" "$mfactl" "$module"; do
	[[ -f $f ]] || die "$f is missing; build first: cargo build --workspace (or: make demo)"
done
export PATH=$PATH:/usr/sbin:/sbin
for t in dbus-daemon dbus-send pamtester oathtool setpriv useradd userdel flock; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install the dependencies first: scripts/install-deps.sh (or: make demo)"
done

# One demo at a time: the user and the PAM service have fixed names. The
# lock is on this script itself, so nothing is left behind.
exec 9<"${BASH_SOURCE[0]}"
flock -n 9 || die "another demo is running"

if [[ -e $pam_file ]] && ! grep -qxF "$marker" "$pam_file"; then
	die "$pam_file exists and was not written by this demo; remove it or rename it first"
fi

# ---- cleanup, whatever happens -------------------------------------------

dir=""
bus_pid=""
mfad_pid=""
made_user=0
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
	trap - EXIT INT TERM
	if [[ $rc -ne 0 && -n $dir ]]; then
		for log in mfad.log dbus-daemon.log; do
			if [[ -s $dir/$log ]]; then
				echo "demo: last lines of $log:" >&2
				tail -n 20 "$dir/$log" | sed 's/^/    /' >&2
			fi
		done
	fi
	printf '\n%s==> cleaning up%s\n' "$bold" "$reset"
	stop "$mfad_pid" mfad
	stop "$bus_pid" dbus-daemon
	if [[ $wrote_pam -eq 1 ]]; then
		rm -f "$pam_file" && say "removed $pam_file"
	fi
	if [[ $made_user -eq 1 ]]; then
		userdel -f "$user" >/dev/null 2>&1 && say "removed user $user" ||
			echo "demo: could not remove user $user (userdel -f $user)" >&2
	fi
	if [[ -n $dir ]]; then
		rm -rf -- "$dir" && say "removed $dir"
	fi
	if [[ $rc -eq 0 ]]; then
		printf '\n%sdemo finished: enrollment and login worked.%s\n' "$bold" "$reset"
	else
		printf '\n%sdemo FAILED (exit %d)%s\n' "$bold" "$rc" "$reset" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# JSON string field from mfactl's --json output (flat, no escapes in these
# values: ids, base32, otpauth URIs).
json_field() { # JSON KEY
	local re="\"$2\"[[:space:]]*:[[:space:]]*\"([^\"]*)\""
	[[ $1 =~ $re ]] || die "mfactl's JSON has no \"$2\": $1"
	printf '%s' "${BASH_REMATCH[1]}"
}

# The code for TOTP step STEP; the secret goes on stdin, not in arguments.
code_at_step() { # STEP
	printf '%s\n' "$secret" | oathtool --totp --base32 --digits=6 --now="@$(($1 * 30))" -
}

now_step() { echo $(($(date +%s) / 30)); }

# pamtester's output, indented. With answers piped in, the echo-off prompt
# is not followed by a newline; show the (hidden) answer and break the line.
show_pam() {
	sed -e 's/^/    /' -e 's/Verification code: /Verification code: ******\n    /g' <<<"$1"
}

# ---- the private bus and the daemon -----------------------------------------

step "Start a private D-Bus bus and mfad in a temporary directory"
dir=$(mktemp -d /tmp/mfa-demo.XXXXXX)
# The demo user must reach the bus socket inside.
chmod 0755 "$dir"
addr="unix:path=$dir/bus"
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
issuer = "mfa-demo"
log = "stderr"

[policy]
mode = "optional"

[totp]
# Two steps each way, so the codes computed for DEMO_AUTO=1 stay valid
# across a 30-second boundary.
window = 2
EOF
"$mfad" --config "$dir/mfad.toml" 9<&- </dev/null 2>"$dir/mfad.log" &
mfad_pid=$!
wait_owner org.mfad.Mfa1 "$mfad_pid" mfad mfad.log
say "mfad:   $mfad --config $dir/mfad.toml"
say "state:  $dir/state (the database with the secrets)"

# ---- the demo user and the PAM service -------------------------------------

step "Create the demo user and the PAM service $service"
if id "$user" >/dev/null 2>&1; then
	say "user $user exists already; using it (it will be kept)"
else
	useradd -M -N -s /usr/sbin/nologin -c "mfa demo user" "$user" ||
		die "useradd $user failed"
	made_user=1
	say "created user $user (no home, no login shell; removed at the end)"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")

# The demo user runs mfactl; a checkout under a private directory (e.g.
# /root) is out of their reach, so give them a copy then.
if ! as_user test -x "$mfactl"; then
	install -m 0755 "$mfactl" "$dir/mfactl"
	mfactl=$dir/mfactl
fi

wrote_pam=1
cat >"$pam_file" <<EOF
$marker
auth    required  $module bus=$addr
account required  pam_permit.so
EOF
say "$pam_file:"
sed 's/^/      /' "$pam_file"

# ---- enrollment -------------------------------------------------------------

step "Enroll an authenticator app for $user (mfactl, run as $user)"
if [[ $auto -eq 0 ]]; then
	show "mfactl --bus $addr enroll totp"
	say "mfactl shows a QR code for your phone's authenticator app, then asks"
	say "for two codes in a row from it."
	echo
	as_user "$mfactl" --bus "$addr" enroll totp || die "enrollment failed"
else
	show "mfactl --bus $addr --json enroll totp --begin"
	begin=$(as_user "$mfactl" --bus "$addr" --json enroll totp --begin) ||
		die "mfactl enroll totp --begin failed"
	id=$(json_field "$begin" enrollment_id)
	uri=$(json_field "$begin" uri)
	secret=$(json_field "$begin" secret)
	[[ $secret =~ ^[A-Z2-7]+=*$ ]] || die "mfactl returned a secret that is not base32"
	say "enrollment $id; the app would scan this URI (secret hidden here):"
	say "${uri//$secret/<secret>}"
	# Two consecutive steps: the previous one and now. The login that
	# follows uses a later step (a used step never works again), still
	# inside window = 2 even if the clock moves on meanwhile.
	enroll_step=$(now_step)
	code1=$(code_at_step $((enroll_step - 1)))
	code2=$(code_at_step "$enroll_step")
	say "Code 1 and Code 2: oathtool's codes for steps $((enroll_step - 1)) and $enroll_step (not shown)"
	show "mfactl --bus $addr --json enroll totp --confirm $id CODE1 CODE2"
	confirm=$(as_user "$mfactl" --bus "$addr" --json enroll totp --confirm "$id" "$code1" "$code2") ||
		die "mfactl enroll totp --confirm failed"
	unset code1 code2
	device=$(json_field "$confirm" device_id)
	re='"backup_codes"[[:space:]]*:[[:space:]]*\[([^]]*)\]'
	[[ $confirm =~ $re ]] || die "mfactl's JSON has no backup_codes: $confirm"
	n_backup=$(grep -o '"[0-9]\{8\}"' <<<"${BASH_REMATCH[1]}" | wc -l || true)
	say "device $device enrolled; $n_backup one-time backup codes issued (not shown)"
fi

step "Show the enrollment"
show "mfactl --bus $addr status"
as_user "$mfactl" --bus "$addr" status | sed 's/^/    /' || die "mfactl status failed"

# ---- a real PAM login ---------------------------------------------------------

step "Log in through PAM: pamtester loads pam_mfa.so, which asks mfad"
show "pamtester -v $service $user authenticate"
if [[ $auto -eq 0 ]]; then
	say "Type the code your app shows now. The codes used to enroll are used"
	say "up: if the app still shows Code 2, wait for the next one."
	echo
	pamtester -v "$service" "$user" authenticate || die "the login with the right code failed"
else
	# A fresh step, after the enrollment's, inside the window.
	login_step=$(now_step)
	((login_step > enroll_step)) || login_step=$((enroll_step + 1))
	say "answering with oathtool's code for step $login_step (not shown)"
	out=$(code_at_step "$login_step" | timeout 60 pamtester -v "$service" "$user" authenticate 2>&1) || {
		show_pam "$out"
		die "the login with the right code failed"
	}
	show_pam "$out"
fi

step "A wrong code is refused"
# Three wrong answers: one per try the daemon allows in one login. In the
# automatic demo the wrong code is checked against every code the window
# accepts now.
wrong=000000
if [[ $auto -eq 1 ]]; then
	s=$(now_step)
	valid=$(for k in -2 -1 0 1 2 3; do code_at_step $((s + k)); done)
	for candidate in 000000 111111 222222 333333 444444 555555 666666; do
		if ! grep -qx "$candidate" <<<"$valid"; then
			wrong=$candidate
			break
		fi
	done
fi
show "pamtester -v $service $user authenticate   (answering $wrong three times)"
set +e
out=$(printf '%s\n' "$wrong" "$wrong" "$wrong" | timeout 60 pamtester -v "$service" "$user" authenticate 2>&1)
rc=$?
set -e
show_pam "$out"
if [[ $rc -eq 0 ]]; then
	die "a wrong code was accepted"
elif [[ $rc -eq 124 ]]; then
	die "pamtester did not finish within 60 s"
fi
say "refused, as it should be (each wrong code counts toward the lockout)"

step "The daemon's view afterwards"
show "mfactl --bus $addr status"
as_user "$mfactl" --bus "$addr" status | sed 's/^/    /' || die "mfactl status failed"

step "What mfad logged (its audit log never holds a code or a secret)"
sed 's/^/    /' "$dir/mfad.log"
