#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time from its
# committed corpus (fuzz/corpus/<target>/, which grows with what the run
# finds), then prints the executions and crashes of each. Exits 1 if any
# target crashed; the input that did it is in fuzz/artifacts/<target>/.
#
# cargo-fuzz wants nightly for -Zsanitizer and friends; RUSTC_BOOTSTRAP=1
# lets the stable toolchain take them, for this build only.
#
# Usage: scripts/fuzz.sh          (scripts/fuzz-deps.sh first, as `make fuzz` does)
#   FUZZ_SECONDS=60               per target
#   FUZZ_TARGETS="config phone"   a subset (default: all of fuzz/Cargo.toml)
#   CARGO_TARGET_DIR              where to build (default fuzz/target)
set -euo pipefail

die() {
	echo "fuzz.sh: $*" >&2
	exit 1
}

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
seconds=${FUZZ_SECONDS:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a whole number of seconds, not '$seconds'"
target_dir=${CARGO_TARGET_DIR:-$root/fuzz/target}
if [[ -n ${FUZZ_TARGETS:-} ]]; then
	read -r -a targets <<<"$FUZZ_TARGETS"
else
	mapfile -t targets < <(RUSTC_BOOTSTRAP=1 "$cargo" fuzz list --fuzz-dir fuzz)
fi
((${#targets[@]} > 0)) || die "no fuzz targets"

export RUSTC_BOOTSTRAP=1
# -a: overflow checks and debug assertions on, so an arithmetic overflow in
# mfad is a finding rather than a silent wrap.
build=("$cargo" fuzz build --fuzz-dir fuzz --target-dir "$target_dir" -O -a)
"${build[@]}" || die "cargo fuzz build failed"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A execs crashes
labels=()
failed=0

# run LABEL CORPUS ARTIFACTS SEP COMMAND...: one bounded run of COMMAND
# CORPUS SEP FLAGS (SEP: "--" after cargo fuzz run, "" for a bare fuzzer);
# records its executions and crashes (new files in ARTIFACTS) under LABEL.
run() {
	local label=$1 corpus=$2 artifacts=$3 sep=$4
	shift 4
	local flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/")
	[[ -z $sep ]] || flags=("$sep" "${flags[@]}")
	local before rc=0
	before=$(find "$artifacts" -type f | wc -l)
	labels+=("$label")
	echo "fuzz.sh: $label for ${seconds}s"
	# The targets log (mfad's audit lines) to stderr: keep that in a file.
	# -timeout: an input that takes 10 s is a hang, reported as a crash.
	"$@" "$corpus" "${flags[@]}" >"$logs/$label.log" 2>&1 || rc=$?
	execs[$label]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$label.log" | tail -n 1)
	crashes[$label]=$(($(find "$artifacts" -type f | wc -l) - before))
	if ((rc != 0)) || [[ -z ${execs[$label]} ]]; then
		failed=1
		((crashes[$label] > 0)) || crashes[$label]="? (exit $rc)"
		echo "fuzz.sh: $label failed; the end of its log:" >&2
		grep -v '^mfad: ' "$logs/$label.log" | tail -n 30 >&2
	fi
}

host=$(rustc -vV | sed -n 's/^host: //p')
for t in "${targets[@]}"; do
	mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
	run "$t" "fuzz/corpus/$t" "fuzz/artifacts/$t" -- \
		"$cargo" fuzz run --fuzz-dir fuzz --target-dir "$target_dir" -O -a "$t"
	# The D-Bus target acts as whoever runs it (SO_PEERCRED): as root it
	# reaches root's paths only, so it runs a second time as nobody, a
	# user acting on their own account, against the authorization checks.
	if [[ $t == dbus && $(id -u) -eq 0 ]]; then
		user_dir=$(mktemp -d "$logs/dbus-user.XXXXXX")
		mkdir "$user_dir/corpus" "$user_dir/artifacts"
		cp -r "fuzz/corpus/$t/." "$user_dir/corpus/"
		chmod 0755 "$logs"
		chown -R nobody:nogroup "$user_dir"
		run dbus-user "$user_dir/corpus" "$user_dir/artifacts" "" \
			setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
			"$target_dir/$host/release/$t"
		cp -rn "$user_dir/corpus/." "fuzz/corpus/$t/"
		cp -r "$user_dir/artifacts/." "fuzz/artifacts/$t/"
	fi
done

total=0
printf '\n%-12s %14s %8s\n' target executions crashes
for l in "${labels[@]}"; do
	printf '%-12s %14s %8s\n' "$l" "${execs[$l]:-?}" "${crashes[$l]}"
	total=$((total + ${execs[$l]:-0}))
done
printf '%-12s %14s\n' total "$total"
((failed == 0)) || die "a fuzz target crashed or failed: see above and fuzz/artifacts/"
