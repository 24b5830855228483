#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine, then runs
# formatting and lint checks and the whole test suite (unit + end-to-end).
#
#   scripts/test.sh            everything
#   scripts/test.sh -- FILTER  only tests whose name contains FILTER
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the build dependencies of the crates (the same list as the quickstart's, in
# scripts/lib/packages.sh), redis-server, which the test kit starts on an ephemeral loopback
# port, chromium and chromium-driver for the browser tests (SameSite rules on cross-site POSTs),
# and the SimpleSAMLphp IdP of the SAML interop tests (php-xml: its DOMDocument).
. scripts/lib/packages.sh
ensure_packages "to build Guichet and run its tests" "${BUILD_PACKAGES[@]}" redis-server \
  chromium chromium-driver simplesamlphp php-cli php-xml
# The container image test (tests/tests/e2e/image.rs): buildah builds the image from the
# runtime tree without pulling a base image, podman with runc runs it; strip (binutils) for the
# tree.
ensure_packages "to build and run the container image" buildah podman runc binutils
# The distribution's redis-server service is not used; the tests start their own.

# Interop peers nobody here wrote, from their registries: panva/node-oidc-provider (npm) and,
# below, django-cas-server (PyPI).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "==> installing nodejs npm"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
interop=tests/interop/oidc-provider
if [ ! -d "$interop/node_modules/oidc-provider" ] || [ "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]; then
  echo "==> npm ci in $interop"
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
fi

# django-cas-server (PyPI), the independent CAS server of the CAS interop test, in a venv.
cas_interop=tests/interop/django-cas-server
if [ ! -x "$cas_interop/.venv/bin/python" ] || [ "$cas_interop/requirements.txt" -nt "$cas_interop/.venv/.installed" ]; then
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "==> installing python3 python3-venv"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  echo "==> pip install -r $cas_interop/requirements.txt (into $cas_interop/.venv)"
  rm -rf "$cas_interop/.venv"
  python3 -m venv "$cas_interop/.venv"
  "$cas_interop/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$cas_interop/requirements.txt"
  touch "$cas_interop/.venv/.installed"
fi

# helm-python-sdk (Helm's Go SDK, bundled in its wheel) and kubernetes-validate (PyPI), for the
# Helm chart's checks (tests/tests/e2e/helm.rs), in tests/interop/helm/.venv.
scripts/helm-check.sh --setup

filter=()
if [ "${1:-}" = "--" ]; then shift; filter=("$@"); fi

if [ ${#filter[@]} -eq 0 ]; then
  echo "==> cargo fmt --check"
  cargo fmt --all -- --check
  echo "==> cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi
echo "==> building the guichet binary (the CLI tests run it)"
cargo build --quiet --bin guichet
# The container image test ships the release binary (CI's quickstart check built it already:
# then this is a no-op).
echo "==> building the release binary (the container image test ships it)"
cargo build --quiet --release --locked --bin guichet
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace -- "${filter[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The fuzz corpus (fuzz/corpus/), replayed through every fuzz target on stable Rust: a seed
# that once crashed a target fails here if the bug comes back. No nightly, no libFuzzer (the
# fuzzing itself is scripts/fuzz.sh). The fuzz crate is outside the workspace and builds into
# the same target directory; not --locked: its lock file follows the workspace's dependencies.
if [ ${#filter[@]} -eq 0 ]; then
  echo "==> fuzz corpus replay (fuzz/tests/replay.rs)"
  set +e
  cargo test --manifest-path fuzz/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}" --no-default-features 2>&1 | tee -a "$log"
  fuzz_status=${PIPESTATUS[0]}
  set -e
  [ "$fuzz_status" -eq 0 ] || status=$fuzz_status
fi
# One closing line for the whole run (cargo prints one per test binary, doc-tests last).
count() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s+=$1} END {print s+0}'; }
echo
echo "summary: $(count passed) passed, $(count failed) failed"
exit "$status"
