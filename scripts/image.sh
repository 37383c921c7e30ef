#!/usr/bin/env bash
# Builds the spaceport image from the top-level Dockerfile on the local Docker
# engine with no registry at all:
#   1. the runtime base: a debootstrapped Debian minbase with git and
#      ca-certificates, imported with `docker import`;
#   2. the build base: a debootstrapped Debian with a C toolchain (ring,
#      bundled SQLite and zstd compile C) and the Rust toolchain this machine
#      builds with (`rustc --print sysroot`, documentation left out), so the
#      image is compiled by the same compiler as the tests;
#   3. a build context of the work tree's files (tracked and untracked, less
#      what git ignores) plus `cargo vendor` output, so the build runs
#      offline.
# Bases are made once per tag (--force-bases remakes them). Prints the build
# time and the image size, then checks each binary's --version in the image.
#
# Usage: scripts/image.sh [--tag TAG] [--profile release|dev] [--force-bases]
#                         [--mirror URL] [--ca FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

tag="spaceport/spaceport:dev"
profile="release"
force=0
suite="bookworm"
mirror="http://deb.debian.org/debian"
ca="/etc/ssl/certs/ca-certificates.crt"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --force-bases) force=1; shift ;;
    --mirror) mirror="$2"; shift 2 ;;
    --ca) ca="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release|dev) ;;
  *) echo "--profile must be release or dev, not '$profile'" >&2; exit 2 ;;
esac

runtime_base="spaceport/debian-minbase:$suite"
sysroot="$(rustc --print sysroot)"
rust_version="$(rustc --version | awk '{print $2}')"
build_base="spaceport/rust-build:$rust_version-$suite"

# rootfs TAG PACKAGES [ENV...]: debootstrap, trust the CA bundle, import.
rootfs() {
  local image="$1" packages="$2"
  shift 2
  if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "== $image exists"
    return
  fi
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }
  local root
  root="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the folder of this call
  trap "rm -rf '$root'" EXIT
  echo "== debootstrap $suite ($packages) for $image"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/dev/null
  if [ -n "$ca" ] && [ -f "$ca" ]; then
    install -m 0644 "$ca" "$root/usr/local/share/ca-certificates/spaceport-extra.crt"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  if [ -n "${ROOTFS_HOOK:-}" ]; then
    "$ROOTFS_HOOK" "$root"
  fi
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/tmp/"*
  local changes=()
  for e in "$@"; do changes+=(--change "ENV $e"); done
  tar -C "$root" -c . | docker import "${changes[@]}" \
    --change "LABEL dev.spaceport.managed=true" - "$image" >/dev/null
  rm -rf "$root"
  trap - EXIT
  echo "== made $image"
}

add_rust() {
  echo "== copying the Rust toolchain $rust_version from $sysroot"
  mkdir -p "$1/usr/local/rust"
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$1/usr/local/rust" -x
}

rootfs "$runtime_base" "ca-certificates,git"
ROOTFS_HOOK=add_rust rootfs "$build_base" "ca-certificates,gcc,libc6-dev,make,pkg-config" \
  "PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "CARGO_HOME=/usr/local/cargo"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
echo "== build context with vendored crates"
# Tracked files deleted in the work tree are left out.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done \
  | tar --null --verbatim-files-from -T - -c | tar -C "$context" -x
mkdir -p "$context/.cargo"
(cd "$context" && cargo vendor --locked --quiet vendor >/dev/null)
cat >"$context/.cargo/config.toml" <<'TOML'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
TOML

# A release build needs several GB in the engine's storage while it runs.
need_gb=12
free_gb=$(df -P --block-size=1G "$(docker info -f '{{.DockerRootDir}}')" | awk 'NR==2 {print $4}')
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "only ${free_gb} GB free for the engine; the build needs about ${need_gb} GB" >&2
  exit 1
fi

echo "== docker build ($profile profile) as $tag"
start=$(date +%s)
DOCKER_BUILDKIT=0 docker build --force-rm \
  --build-arg BUILD_BASE="$build_base" \
  --build-arg RUNTIME_BASE="$runtime_base" \
  --build-arg PROFILE="$profile" \
  -t "$tag" "$context"
seconds=$(( $(date +%s) - start ))
bytes=$(docker image inspect -f '{{.Size}}' "$tag")
echo "== built $tag in ${seconds} s; size $bytes bytes ($(( bytes / 1000000 )) MB)"

# The build stage's intermediate images are not needed again.
docker image prune --force --filter label=dev.spaceport.stage=build >/dev/null

for bin in spaceport spaceport-proxy spaceport-controller; do
  docker run --rm "$tag" "$bin" --version
done
[ "$(docker run --rm "$tag" id -u)" = 1000 ] || { echo "the image does not run as uid 1000" >&2; exit 1; }
echo "== ok"
