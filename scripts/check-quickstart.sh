#!/usr/bin/env bash
# Proves the README's first command on this machine as a newcomer would meet it: the build
# tools it needs are removed first (when installed and we are root), then scripts/quickstart.sh
# must install them again itself, build, and serve the demo's login page.
#
# CI runs it before the test command, on a machine that has only Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${QUICKSTART_PORT:-18080}
admin=${QUICKSTART_ADMIN_PORT:-19180}

if [ "$(id -u)" -eq 0 ]; then
  present=()
  for package in cmake clang; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" && present+=("$package")
  done
  if [ ${#present[@]} -gt 0 ]; then
    echo "==> removing ${present[*]}: the quickstart must install them itself"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${present[@]}" >/dev/null
  fi
fi
for tool in cmake clang; do
  if command -v "$tool" >/dev/null; then
    echo "note: $tool is still on PATH ($(command -v "$tool")): not installed by apt, left alone"
  fi
done

# The check's own client.
. scripts/lib/packages.sh
ensure_packages "to check the quickstart" curl

log=$(mktemp)
scripts/quickstart.sh --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  pkill -f "guichet demo --listen 127.0.0.1:$port" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

# The first build of the release binary takes minutes on two cores.
deadline=$((SECONDS + 40 * 60))
until page=$(curl -fsS "http://127.0.0.1:$port/.guichet/login" 2>/dev/null); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "quickstart failed:"
    cat "$log"
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "quickstart did not serve the login page in time:"
    tail -50 "$log"
    exit 1
  fi
  sleep 5
done
grep -q 'name="password"' <<<"$page" || { echo "not the login page: $page"; exit 1; }
grep -q "==> installing" "$log" && grep "==> installing" "$log"
for tool in cmake clang; do
  command -v "$tool" >/dev/null || { echo "$tool missing after the quickstart"; exit 1; }
done
echo "quickstart: the demo's login page is served on http://127.0.0.1:$port/.guichet/login"
