#!/usr/bin/env bash
# Runs mfa's performance benchmarks (docs/performance.md) and prints a
# report: each target, what was measured, PASS or MISS. A measurement, not a
# test: it exits 0 whatever the numbers, and non-zero only when it could not
# measure. `make bench` runs it; `make test` never does.
#
# Everything happens in private mount and PID namespaces (unshare): the
# benchmark's /etc/passwd (its users exist only there) and /etc/pam.d (its
# services) are bind mounts that vanish with it, and every process it
# starts (dbus-daemon, mfad, PAM workers, sshd on private ports of
# 127.0.0.1, ssh) dies with it, even on a crash. The
# temp dir (on disk, so that mfad's and Google Authenticator's fsyncs are
# real) is removed on exit.
#
# Usage: scripts/bench.sh   (as root)
# Environment:
#   BENCH_USERS=N     users enrolled on mfad (default 100000; at least 10000)
#   BENCH_SECONDS=S   length of each throughput round through PAM (default 4)
#   BENCH_TMPDIR=DIR  where the temp dir goes (default /var/tmp): put it on
#                     the disk that holds /var/lib/mfad in production
#   CARGO             cargo to build with (default cargo)
set -euo pipefail

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] ||
	die "run this as root (make bench): it mounts in a private namespace and runs mfad"

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
bash "$repo/scripts/bench-deps.sh"

cargo=${CARGO:-cargo}
"$cargo" build --release -p mfad -p pam_mfa -p mfa-bench ||
	die "the release build failed"
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target
bin=$target/release

tmpbase=${BENCH_TMPDIR:-/var/tmp}
[[ -d $tmpbase ]] || die "BENCH_TMPDIR '$tmpbase' is not a directory"
dir=$(mktemp -d "$tmpbase/mfa-bench.XXXXXXXX") ||
	die "cannot make a temp dir in $tmpbase"
trap 'rm -rf -- "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The bus socket inside must be reachable; nothing secret lives at the top.
chmod 0755 "$dir"

host_ns=$(readlink /proc/self/ns/mnt) || die "cannot read /proc/self/ns/mnt"

status=0
unshare --mount --propagation private --pid --fork --mount-proc --kill-child \
	"$bin/mfa-bench" run \
	--dir "$dir" \
	--repo "$repo" \
	--mfad "$bin/mfad" \
	--module "$bin/libpam_mfa.so" \
	--host-mnt-ns "$host_ns" \
	--users "${BENCH_USERS:-100000}" \
	--seconds "${BENCH_SECONDS:-4}" || status=$?
if ((status != 0)); then
	echo "bench.sh: the benchmark could not run (exit $status); see the messages above" >&2
fi
exit "$status"
