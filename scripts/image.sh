#!/usr/bin/env bash
# The container image, without a registry: builds the runtime file tree of the image (the one
# the Dockerfile's runtime stage copies in), turns it into an OCI image with buildah
# (`buildah from scratch`: no base image to pull), and runs the image's binary once with podman
# (`guichet check` on the minimal example, read-only root, no network, no capabilities).
# See docs/container.md.
#
#   scripts/image.sh                   binary, tree, image localhost/guichet:VERSION, check
#   scripts/image.sh --tree-only DIR   only the tree, into DIR (the Dockerfile's build stage)
#
# Options:
#   --binary PATH   the guichet binary to ship (default: `cargo build --release --locked
#                   --bin guichet`, which rebuilds only when a source changed)
#   --tree DIR      where the tree is built (default: TARGET/image/rootfs); emptied first
#   --tag NAME      the image's name (default: localhost/guichet:VERSION)
#   --no-check      do not run the image after building it
#
# The tree: /usr/local/bin/guichet (debug info stripped), exactly the shared libraries `ldd`
# resolves for it (with their symlinks, the dynamic loader included), CA certificates,
# /etc/passwd and /etc/group with the nonroot user (65532), /etc/nsswitch.conf, /etc/os-release,
# the Debian package records of what was copied (/var/lib/dpkg/status.d, for image scanners)
# and their copyright files, the example configurations in /usr/share/guichet/examples, an
# empty /etc/guichet (the configuration's mount point) and /tmp (1777, for a tmpfs). Everything
# is owned by root and writable by root only; there is no shell and no other program.
#
# Needs: ldd, dpkg-query, strip (binutils) for the tree; buildah for the image; podman and runc
# to run it (crun, podman's default runtime on Debian 12, refuses hybrid cgroup v1/v2 hosts).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "image.sh: $*" >&2
  exit 1
}

need() { # need COMMAND DEBIAN-PACKAGE WHY
  command -v "$1" >/dev/null || die "$1 not found ($3): install the Debian package $2"
}

tree_only=""
tree=""
binary=""
tag=""
check=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tree-only) tree_only=1; tree="${2:?--tree-only DIR}"; shift 2 ;;
    --tree) tree="${2:?--tree DIR}"; shift 2 ;;
    --binary) binary="${2:?--binary PATH}"; shift 2 ;;
    --tag) tag="${2:?--tag NAME}"; shift 2 ;;
    --no-check) check=""; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

need ldd libc-bin "to list the binary's shared libraries"
need dpkg-query dpkg "to record the Debian packages the libraries come from"
need strip binutils "to strip the binary's debug info"

# ---------------------------------------------------------------------------------------------
# The binary.
if [ -z "$binary" ]; then
  need cargo cargo "to build the binary"
  echo "==> cargo build --release --locked --bin guichet"
  cargo build --release --locked --bin guichet
  target_dir=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
  binary="$target_dir/release/guichet"
fi
[ -x "$binary" ] || die "$binary is not an executable"
if [ -z "$tree" ]; then
  target_dir=${target_dir:-$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)}
  tree="$target_dir/image/rootfs"
fi

# ---------------------------------------------------------------------------------------------
# The tree.
echo "==> runtime tree in $tree"
rm -rf "$tree"
mkdir -p "$tree"
tree=$(cd "$tree" && pwd)

# copy_path PATH: PATH (absolute, on this machine) into the tree at the same place, each
# symbolic link met on the way recreated as it is (/lib -> usr/lib, libxml2.so.2 ->
# libxml2.so.2.9.14, ...), the file it ends on copied.
copy_path() {
  local path="$1" walked="" rest="${1#/}" component target next
  while [ -n "$rest" ]; do
    component="${rest%%/*}"
    if [ "$rest" = "$component" ]; then rest=""; else rest="${rest#*/}"; fi
    walked="$walked/$component"
    if [ -L "$walked" ]; then
      target=$(readlink "$walked")
      if [ ! -L "$tree$walked" ]; then
        mkdir -p "$tree$(dirname "$walked")"
        ln -s "$target" "$tree$walked"
      fi
      case "$target" in
        /*) next="$target" ;;
        *) next="$(dirname "$walked")/$target" ;;
      esac
      [ -n "$rest" ] && next="$next/$rest"
      copy_path "$(realpath -ms "$next")"
      return
    fi
  done
  [ -f "$path" ] || die "$path is not a regular file"
  if [ ! -e "$tree$path" ]; then
    mkdir -p "$tree$(dirname "$path")"
    cp -p "$path" "$tree$path"
  fi
  copied+=("$path")
}

# owner PATH: the Debian package that installed PATH (as dpkg knows it: with or without the
# /usr prefix on a merged-/usr system), or nothing.
owner() {
  local candidate real
  real=$(realpath "$1")
  for candidate in "$1" "$real" "/usr$1" "/usr$real" "${1#/usr}" "${real#/usr}"; do
    case "$candidate" in /*) ;; *) continue ;; esac
    if dpkg-query -S "$candidate" >/dev/null 2>&1; then
      dpkg-query -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1
      return
    fi
  done
}

install -d -m 0755 "$tree/usr/local/bin" "$tree/etc/guichet" "$tree/etc/ssl/certs" \
  "$tree/usr/share/guichet/examples" "$tree/var/lib/dpkg/status.d"
install -d -m 1777 "$tree/tmp"
strip --strip-debug -o "$tree/usr/local/bin/guichet" "$binary"
chmod 0755 "$tree/usr/local/bin/guichet"

# Exactly the libraries the binary loads, and the loader itself.
copied=()
libraries=$(ldd "$binary") || die "ldd $binary failed"
if grep -q "not found" <<<"$libraries"; then
  die "libraries not found on this machine:
$(grep "not found" <<<"$libraries")"
fi
while read -r library; do
  copy_path "$library"
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libraries" | sort -u)

# CA certificates (upstream TLS, Redis TLS, provider discovery), the OS identity for image
# scanners.
[ -f /etc/ssl/certs/ca-certificates.crt ] ||
  die "/etc/ssl/certs/ca-certificates.crt is missing: install the Debian package ca-certificates"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$tree/etc/ssl/certs/ca-certificates.crt"
copy_path /etc/os-release

# The package records (distroless layout: one dpkg status paragraph per package) and licences
# of everything copied from a package.
packages=(ca-certificates)
for file in "${copied[@]}"; do
  package=$(owner "$file")
  if [ -n "$package" ]; then
    packages+=("$package")
  else
    echo "image.sh: warning: $file belongs to no Debian package (not recorded)" >&2
  fi
done
for package in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg-query -s "$package" >"$tree/var/lib/dpkg/status.d/$package"
  if [ -f "/usr/share/doc/$package/copyright" ]; then
    install -d -m 0755 "$tree/usr/share/doc/$package"
    install -m 0644 "/usr/share/doc/$package/copyright" "$tree/usr/share/doc/$package/copyright"
  fi
done

# Users: root and nonroot (the distroless convention: 65532), no login shell (there is none).
cat >"$tree/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
EOF
cat >"$tree/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
# glibc's own files and dns lookups (built into libc.so.6 since 2.34: no module to load).
cat >"$tree/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$tree/etc/passwd" "$tree/etc/group" "$tree/etc/nsswitch.conf"

install -m 0644 examples/*.yaml "$tree/usr/share/guichet/examples/"

# Root's, read-only for everyone else (whatever the umask or the owner of the sources was).
find "$tree" -type d ! -path "$tree/tmp" -exec chmod 0755 {} +
find "$tree" -type f -exec chmod go-w {} +
if [ "$(id -u)" -eq 0 ]; then
  chown -hR 0:0 "$tree"
fi
echo "    $(find "$tree" -type f | wc -l) files, $(du -sh "$tree" | cut -f1)"

[ -n "$tree_only" ] && exit 0

# ---------------------------------------------------------------------------------------------
# The image: the tree on an empty base, configured as the Dockerfile's runtime stage is.
need buildah buildah "to build the image"
version=$("$tree/usr/local/bin/guichet" --version | awk '{print $2}')
tag=${tag:-localhost/guichet:$version}
revision=$(git rev-parse HEAD 2>/dev/null || true)
echo "==> buildah: $tag"
previous=$(buildah images --noheading --quiet "$tag" 2>/dev/null || true)
container=$(buildah from --name "guichet-image-$$" scratch)
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet --chown 0:0 "$container" "$tree" / >/dev/null
buildah config \
  --user 65532:65532 \
  --workingdir /etc/guichet \
  --entrypoint '["/usr/local/bin/guichet"]' \
  --cmd '["run", "--config", "/etc/guichet/guichet.yaml"]' \
  --port 8080/tcp --port 9180/tcp \
  --label org.opencontainers.image.title=guichet \
  --label "org.opencontainers.image.description=Identity-broker reverse proxy: sign-in through CAS, OpenID Connect, FranceConnect and SAML providers, access policies, identity headers" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$container"
buildah commit --quiet --format oci "$container" "$tag" >/dev/null
buildah rm "$container" >/dev/null
trap - EXIT
current=$(buildah images --noheading --quiet "$tag")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  buildah rmi "$previous" >/dev/null 2>&1 || true # the image this tag named before, if unused
fi
echo "    $tag ($current)"

[ -n "$check" ] || exit 0

# ---------------------------------------------------------------------------------------------
# Its binary, run once as the image says (user 65532), on a read-only root with no tmpfs at
# all, no network and no capabilities.
need podman podman "to run the image"
need runc runc "podman's runtime here"
# Resource limits are set explicitly, at most at their current values: podman's defaults for
# root (nofile 1048576, nproc 4194304) need CAP_SYS_RESOURCE, which sandboxed CI machines do not
# give, and podman itself starts the runtime with nproc at most 32768.
nofile=$(ulimit -Sn)
[ "$nofile" = unlimited ] && nofile=65536
nproc=$(ulimit -Su)
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; } && nproc=4096
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
echo "==> podman run $tag check --config examples/minimal.yaml"
podman --runtime runc run --rm --read-only --read-only-tmpfs=false --network none \
  --cap-drop all --security-opt no-new-privileges "${limits[@]}" \
  --workdir /usr/share/guichet "$tag" check --config examples/minimal.yaml
