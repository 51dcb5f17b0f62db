#!/bin/bash
# Runs inside the container that nspawn.sh boots, as a oneshot unit after
# multi-user.target: mfad under its real unit (started at boot, sandboxed)
# sends an SMS code through the HTTP backend to a loopback gateway
# (sms-gw.service), and the code from the gateway completes the
# enrollment. Writes its results to /root/probe.out, then powers off.
set -uo pipefail
exec >/root/probe.out 2>&1

passed=0
failed=0
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

# The gateway may still be binding its port.
for _ in $(seq 50); do
	[[ -e /run/sms-gw.ready ]] && break
	sleep 0.1
done

check "mfad.service is active at boot (enabled by the package)" systemctl is-active mfad.service
pid=$(systemctl show -p MainPID --value mfad.service)
sandboxed() {
	[[ $(readlink "/proc/$pid/exe") == /usr/sbin/mfad ]] || { echo "MainPID $pid is $(readlink "/proc/$pid/exe")"; return 1; }
	grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status" || { grep NoNewPrivs "/proc/$pid/status"; return 1; }
	grep -q '^CapBnd:[[:space:]]*0000000000000000$' "/proc/$pid/status" || { grep Cap "/proc/$pid/status"; return 1; }
	grep -q '^Seccomp:[[:space:]]*2$' "/proc/$pid/status" || { grep Seccomp "/proc/$pid/status"; return 1; }
}
check "mfad runs under its unit's sandbox (no capabilities, NoNewPrivs, seccomp)" sandboxed
check "mfactl admin list as root answers" mfactl admin list

useradd -m carol
as_carol() { setpriv --reuid carol --regid carol --init-groups "$@"; }
begin=$(as_carol mfactl --json enroll sms +15555550100 --begin 2>&1)
id=$(sed -n 's/.*"enrollment_id":"\([^"]*\)".*/\1/p' <<<"$begin")
check "carol: mfactl enroll sms --begin (mfad sends through the HTTP gateway)" \
	bash -c '[[ -n $1 ]] || { echo "$2"; exit 1; }' - "$id" "$begin"
msg=$(tail -n 1 /var/lib/sms-gw/messages.jsonl 2>/dev/null)
code=$(sed -n 's/.*"Body": "[^"]*\([0-9]\{6\}\)[^"]*".*/\1/p' <<<"$msg")
sent() {
	[[ $msg == *'"To": "+15555550100"'* && -n $code ]] || { echo "message: $msg"; return 1; }
}
check "the gateway got the message for +15555550100 with a 6-digit code" sent
check "carol confirms with the code from the gateway" as_carol mfactl enroll sms --confirm "$id" "$code"
check "mfactl admin status carol shows the phone" bash -c "mfactl admin status carol | grep -q 15555550100"
no_code_in_log() {
	local log
	[[ -n $code ]] || { echo "no code was sent, so none to look for"; return 1; }
	log=$(journalctl -q --no-pager -b 2>&1)
	[[ -n $log ]] || { echo "empty journal"; return 1; }
	! grep -q -- "$code" <<<"$log" || { echo "the code is in the journal:"; grep -- "$code" <<<"$log"; return 1; }
}
check "the code is nowhere in the journal" no_code_in_log

echo "nspawn: $passed passed, $failed failed"
systemctl poweroff
