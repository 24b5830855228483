#!/usr/bin/env bash
# Checks of the Helm chart helm/guichet, for chart developers: the ones the test suite runs
# (tests/tests/e2e/helm.rs), from the command line. For the chart's defaults and every values
# file of helm/guichet/ci (or the values you give): values.schema.json, `helm lint --strict`,
# the offline render, every object validated in strict mode against the Kubernetes API schemas
# of the oldest (1.30) and newest supported versions, cross-object consistency, and the real
# `guichet check` on the Guichet configuration the chart renders. Then the README's table of
# values against values.schema.json and values.yaml.
#
#   scripts/helm-check.sh                        all of the above
#   scripts/helm-check.sh -f my.yaml [--set K=V]  one set of values (helm's -f and --set)
#   scripts/helm-check.sh --template [-f my.yaml] print the rendered manifests (after the checks)
#   scripts/helm-check.sh --write-readme         regenerate the README's table of values
#   scripts/helm-check.sh --setup                only install the tools (the test command runs this)
#
# Helm is the real Go SDK, from the helm-python-sdk wheel (PyPI) that bundles it, and the
# schemas come with kubernetes-validate (PyPI): both go into tests/interop/helm/.venv, created
# here from tests/interop/helm/requirements.txt when missing or older than it (python3-venv is
# installed with apt if needed). Nothing else is downloaded, and nothing at all once the venv
# exists. The guichet binary is built with cargo unless GUICHET names one.
set -euo pipefail
cd "$(dirname "$0")/.."

interop=tests/interop/helm
venv="$interop/.venv"

setup() {
  if [ -x "$venv/bin/python" ] && [ ! "$interop/requirements.txt" -nt "$venv/.installed" ]; then
    return 0
  fi
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "==> installing python3 python3-venv (for the Helm chart's checks) with apt-get"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  echo "==> pip install -r $interop/requirements.txt (into $venv)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$interop/requirements.txt"
  touch "$venv/.installed"
}

mode=check
values=()
while [ $# -gt 0 ]; do
  case "$1" in
    --setup) mode=setup ;;
    --template) mode=template ;;
    --write-readme) mode=readme ;;
    -f|--values) values+=(-f "$2"); shift ;;
    --set) values+=(--set "$2"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

setup
[ "$mode" = setup ] && exit 0
driver=("$venv/bin/python" "$interop/helm_check.py")

if [ "$mode" = readme ]; then
  exec "${driver[@]}" values-table --write helm/guichet/README.md
fi

guichet="${GUICHET:-}"
if [ -z "$guichet" ]; then
  echo "==> cargo build --bin guichet" >&2
  cargo build --quiet --bin guichet
  guichet="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/guichet"
fi

if [ "$mode" = template ]; then
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  "${driver[@]}" check --guichet "$guichet" --out "$out" "${values[@]}" >&2
  cat "$out"
  exit 0
fi

status=0
if [ ${#values[@]} -gt 0 ]; then
  "${driver[@]}" check --guichet "$guichet" "${values[@]}" || status=1
else
  "${driver[@]}" check --guichet "$guichet" || status=1
  for file in helm/guichet/ci/*-values.yaml; do
    "${driver[@]}" check --guichet "$guichet" -f "$file" || status=1
  done
  "${driver[@]}" values-table --check helm/guichet/README.md || status=1
fi
exit $status
