#!/usr/bin/env bash
# The README's first command: on a Debian machine with only the Rust toolchain, installs the
# missing build packages (saying which first), builds Guichet and starts the demo.
#
#   scripts/quickstart.sh                 the demo on http://127.0.0.1:8080/
#   scripts/quickstart.sh --listen ADDR   any option of `guichet demo`
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/packages.sh
ensure_packages "to build Guichet" "${BUILD_PACKAGES[@]}"
echo "==> building and starting the demo (the first build takes several minutes)"
exec cargo run --release --quiet --bin guichet -- demo "$@"
