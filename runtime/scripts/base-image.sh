#!/usr/bin/env bash
# Builds the local Python base image that generated (gradio, streamlit)
# Spaces start FROM, without any registry: debootstrap a Debian rootfs with
# Python, a virtual environment on PATH and the system packages every
# generated Dockerfile installs, then `docker import` it under one tag.
#
# Idempotent: when the tag exists the script does nothing (pass --force to
# rebuild). The image trusts the CA bundle given with --ca (default: this
# host's bundle), so pip, requests, git and apt work behind a TLS-inspecting
# proxy; pip and requests are pointed at the system bundle through
# PIP_CERT, REQUESTS_CA_BUNDLE and SSL_CERT_FILE because they otherwise read
# their own copy of the public CAs.
#
# Usage: base-image.sh [--tag TAG] [--suite SUITE] [--mirror URL] [--ca FILE] [--force]
set -euo pipefail

tag="spaceport/python-base:bookworm"
suite="bookworm"
mirror="http://deb.debian.org/debian"
ca="/etc/ssl/certs/ca-certificates.crt"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --ca) ca="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists; nothing to do (--force rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

# Keep in step with BASE_APT_PACKAGES in runtime/src/plan/dockerfile.rs: with
# them already in the base, that layer of a generated build only refreshes
# the package lists.
packages="python3,python3-venv,python3-pip,ca-certificates,passwd,git,git-lfs,ffmpeg,libsm6,libxext6,cmake,rsync,libgl1"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "== debootstrap $suite into a temporary folder (a few minutes)"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/dev/null

if [ -n "$ca" ] && [ -f "$ca" ]; then
  echo "== trusting $ca"
  install -m 0644 "$ca" "$root/usr/local/share/ca-certificates/spaceport-extra.crt"
  chroot "$root" update-ca-certificates >/dev/null
fi

echo "== python virtual environment in /opt/venv"
chroot "$root" python3 -m venv /opt/venv
chroot "$root" /opt/venv/bin/python -c 'import sys; print(sys.version)'
# A smaller image: no package lists or caches.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/tmp/"*

bundle=/etc/ssl/certs/ca-certificates.crt
echo "== docker import as $tag"
tar -C "$root" -c . | docker import \
  --change "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV VIRTUAL_ENV=/opt/venv LANG=C.UTF-8" \
  --change "ENV PIP_CERT=$bundle REQUESTS_CA_BUNDLE=$bundle SSL_CERT_FILE=$bundle GIT_SSL_CAINFO=$bundle" \
  --change "LABEL dev.spaceport.managed=true dev.spaceport.base-image=true" \
  --change 'CMD ["python3"]' \
  - "$tag"
echo "== done: $tag"
