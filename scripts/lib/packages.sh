# Shared by the README's two commands (scripts/quickstart.sh, scripts/test.sh): installs the
# Debian packages that are missing, saying which before it does, as root or through sudo.
#
#   . scripts/lib/packages.sh
#   ensure_packages "why they are needed" package...

# The build dependencies of the `guichet` binary: pingora's zlib-ng (cmake), bindgen (clang),
# OpenSSL, and libxml2 + xmlsec for SAML signatures.
BUILD_PACKAGES=(cmake pkg-config clang libclang-dev libssl-dev libxml2-dev libxmlsec1-dev)

ensure_packages() {
  local why="$1"
  shift
  local missing=()
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "error: missing ${missing[*]} ($why), and this is not a Debian-like system: install them yourself" >&2
    return 1
  fi
  echo "==> installing ${missing[*]} ($why) with apt-get"
  local sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "error: installing ${missing[*]} needs root (run as root, or install sudo)" >&2
      return 1
    fi
    sudo_cmd="sudo"
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
