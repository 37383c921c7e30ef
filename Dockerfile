# The spaceport image: the three binaries of the workspace (`spaceport`,
# `spaceport-proxy`, `spaceport-controller`) on a minimal Debian with git and
# the CA bundle, running as uid 1000. The Helm chart runs every component
# from it, and Space pods run `spaceport cache fill` from it.
#
#   docker build -t spaceport/spaceport .
#
# Both bases are build arguments. Where no registry can be reached,
# scripts/image.sh makes them locally (debootstrap, the host's Rust
# toolchain) and vendors the crates into the build context.

ARG BUILD_BASE=rust:1-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
# release: the shipped profile (fat LTO, one codegen unit).
ARG PROFILE=release
WORKDIR /src
COPY . .
# A context with vendored crates (vendor/ and .cargo/config.toml, as
# scripts/image.sh makes it) builds offline; otherwise crates.io is used.
RUN set -eu; \
    offline=""; if [ -d vendor ]; then offline="--offline"; fi; \
    cargo build --profile "$PROFILE" --locked $offline \
      --bin spaceport --bin spaceport-proxy --bin spaceport-controller; \
    dir="target/$PROFILE"; if [ "$PROFILE" = dev ]; then dir=target/debug; fi; \
    mkdir -p /out; \
    cp "$dir/spaceport" "$dir/spaceport-proxy" "$dir/spaceport-controller" /out/; \
    rm -rf target vendor
LABEL dev.spaceport.stage=build

FROM ${RUNTIME_BASE}
# git: the hub and the controller clone and serve repos; ca-certificates:
# TLS to git hosts, registries and model hubs. A base that has them already
# (the locally made one) needs no package index.
RUN if ! command -v git >/dev/null || [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && echo 'spaceport:x:1000:1000:spaceport:/home/spaceport:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'spaceport:x:1000:' >> /etc/group \
 && mkdir -p /home/spaceport /data \
 && chown 1000:1000 /home/spaceport /data
COPY --from=build /out/ /usr/local/bin/
ENV HOME=/home/spaceport
WORKDIR /home/spaceport
USER 1000:1000
LABEL org.opencontainers.image.title="spaceport" \
      org.opencontainers.image.source="https://github.com/spaceport-dev/spaceport" \
      org.opencontainers.image.licenses="Apache-2.0"
CMD ["spaceport", "--help"]
