#!/usr/bin/env bash
# Prints a dbus-daemon configuration for a private system-like bus that
# listens on unix:path=DIR/bus, derived from the stock system bus config
# (so the default policy is the real one) plus mfa's own policy file.
#
# Usage: scripts/bus-config.sh DIR > DIR/bus.conf
#        dbus-daemon --nofork --nopidfile --config-file=DIR/bus.conf
#
# Dropped from the stock file: <user>, <fork/>, <pidfile>, <syslog/>,
# <standard_system_servicedirs/>, <servicedir>, <servicehelper>, every
# <include> and <includedir> (the machine's own system.d policies do not
# belong on a test bus), <listen> and <auth> (replaced by our own).
# MFA_STOCK_BUS_CONF overrides the stock file's path (for tests of this script).
set -euo pipefail

die() {
	echo "bus-config.sh: $*" >&2
	exit 1
}

[[ $# -eq 1 && -n $1 ]] || die "usage: bus-config.sh DIR (an existing directory for the bus socket)"
[[ -d $1 ]] || die "directory '$1' does not exist"
dir=$(cd -- "$1" && pwd -P)

stock=${MFA_STOCK_BUS_CONF:-/usr/share/dbus-1/system.conf}
[[ -r $stock ]] || die "the stock system bus config '$stock' is missing (install the Debian package dbus-system-bus-common, or dbus)"

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
policy="$repo/packaging/dbus/org.mfad.Mfa1.conf"
[[ -r $policy ]] || die "the mfa D-Bus policy file '$policy' is missing"

# A D-Bus address value escapes every byte outside [-0-9A-Za-z_/.\*] as %XX.
dbus_escape() {
	local LC_ALL=C s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		if [[ $c == [-0-9A-Za-z_/.\\*] ]]; then
			out+=$c
		else
			out+=$(printf '%%%02X' "'$c")
		fi
	done
	printf '%s' "$out"
}

xml_escape() {
	local s=$1
	s=${s//&/&amp;}
	s=${s//</&lt;}
	s=${s//>/&gt;}
	printf '%s' "$s"
}

listen="unix:path=$(dbus_escape "$dir/bus")"

# Every element we drop sits on one line in the stock file; an element we
# drop that spans lines would slip through, so the output is checked below.
drop='^[[:space:]]*<(user>|fork[[:space:]]*/>|pidfile>|syslog[[:space:]]*/>|standard_system_servicedirs[[:space:]]*/>|servicedir>|servicehelper>|includedir>|include[[:space:]>]|listen>|auth>)'

out=""
closed=0
while IFS= read -r line || [[ -n $line ]]; do
	if [[ $line =~ $drop ]]; then
		continue
	fi
	if [[ $line =~ ^[[:space:]]*\</busconfig\> ]]; then
		out+="  <!-- mfa: private bus for tests and the demo -->"$'\n'
		out+="  <listen>$(xml_escape "$listen")</listen>"$'\n'
		out+="  <auth>EXTERNAL</auth>"$'\n'
		out+="  <include>$(xml_escape "$policy")</include>"$'\n'
		closed=1
	fi
	out+=$line$'\n'
done <"$stock"

[[ $closed -eq 1 ]] || die "'$stock' has no closing </busconfig> line; cannot derive a config from it"

# Outside comments, nothing we meant to drop may be left.
stripped=$out
while [[ $stripped == *'<!--'* ]]; do
	rest=${stripped#*'<!--'}
	[[ $rest == *'-->'* ]] || die "'$stock' has an unterminated comment"
	stripped=${stripped%%'<!--'*}${rest#*'-->'}
done
for tag in '<user>' '<fork' '<pidfile>' '<syslog' '<standard_system_servicedirs' '<servicehelper>' '<includedir>'; do
	[[ $stripped != *"$tag"* ]] || die "'$stock' has a $tag element this script cannot remove (it spans lines?)"
done

printf '%s' "$out"
