# The Guichet container image (docs/container.md). Build it where Docker Hub is reachable:
#
#   docker build -t guichet .
#   buildah bud --layers -t guichet .          (or podman build -t guichet .)
#
# The runtime image is the tree scripts/image.sh builds, on an empty base: the guichet binary,
# exactly the shared libraries it loads (glibc, OpenSSL, libxml2, xmlsec...), CA certificates,
# the nonroot user (65532) and the example configurations; no shell, no package manager. CI,
# which cannot pull base images, builds the same tree with the same script and checks it
# (scripts/image.sh, tests/tests/e2e/image.rs).

ARG RUST_VERSION=1.95

# Dependency skeleton: the manifests, the lock file and every Rust file emptied. It changes only
# when a manifest or the list of source files does, so the dependency build below stays cached
# while the sources change.
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS skeleton
WORKDIR /src
COPY . .
RUN find . -type f ! -name Cargo.toml ! -name Cargo.lock ! -name '*.rs' -delete \
 && find . -type f -name '*.rs' -exec truncate -s 0 {} + \
 && echo 'fn main() {}' > gateway/src/main.rs

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# The build's C dependencies (pingora's zlib-ng: cmake; bindgen: clang; OpenSSL; libxml2 and
# xmlsec for SAML), upgraded: the runtime image ships this stage's shared libraries.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake pkg-config clang libclang-dev libssl-dev libxml2-dev libxmlsec1-dev \
      ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY --from=skeleton /src/ ./
RUN cargo build --release --locked --bin guichet
COPY . .
# The sources are touched so that cargo rebuilds the workspace's crates over the skeleton's.
RUN find . -name '*.rs' -not -path './target/*' -exec touch {} + \
 && cargo build --release --locked --bin guichet \
 && target/release/guichet --version | grep -q '^guichet ' \
 && scripts/image.sh --tree-only /rootfs --binary target/release/guichet

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
COPY --from=build /rootfs/ /
USER 65532:65532
WORKDIR /etc/guichet
EXPOSE 8080 9180
ENTRYPOINT ["/usr/local/bin/guichet"]
CMD ["run", "--config", "/etc/guichet/guichet.yaml"]
LABEL org.opencontainers.image.title="guichet" \
      org.opencontainers.image.description="Identity-broker reverse proxy: sign-in through CAS, OpenID Connect, FranceConnect and SAML providers, access policies, identity headers" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
