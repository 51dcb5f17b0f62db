#!/usr/bin/env bash
# Installs what `make fuzz` needs beyond what the tests need: cargo-fuzz, at
# a pinned version, and the C++ compiler that libfuzzer-sys builds libFuzzer
# with. `make test` never runs this.
#
# cargo-fuzz asks for a nightly toolchain (-Z sanitizer flags); the fuzz
# crate is built with RUSTC_BOOTSTRAP=1 on the stable one instead (see
# scripts/fuzz.sh), so no second toolchain is needed.
#
# Usage: scripts/fuzz-deps.sh
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.1

here=$(dirname -- "${BASH_SOURCE[0]}")
bash "$here/install-deps.sh" g++

cargo=${CARGO:-cargo}
if ! installed=$("$cargo" fuzz --version 2>/dev/null) || [[ $installed != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
	echo "fuzz-deps.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
	"$cargo" install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" ||
		{ echo "fuzz-deps.sh: cargo install cargo-fuzz@$CARGO_FUZZ_VERSION failed" >&2; exit 1; }
fi
"$cargo" fuzz --version >/dev/null 2>&1 || { echo "fuzz-deps.sh: cargo fuzz does not run after the install" >&2; exit 1; }
