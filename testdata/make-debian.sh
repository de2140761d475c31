#!/usr/bin/env bash
# Makes a Debian bookworm base image offline from the machine's package
# mirror: `debootstrap --variant=minbase`, downloaded packages and apt lists
# removed, packed with numeric owners in name order, imported with
# `berth import` as debian:bookworm.
#
#   testdata/make-debian.sh [BERTH] [OUT_TARBALL]
#
# BERTH defaults to target/debug/berth; --root/BERTH_ROOT pick the store.
# The tarball (default: $TMPDIR/berth-debian-rootfs.tar) is kept and reused,
# since debootstrap takes a minute or two; delete it to make a fresh one.
set -euo pipefail
BERTH="${1:-target/debug/berth}"
OUT="${2:-${TMPDIR:-/tmp}/berth-debian-rootfs.tar}"

if [ ! -s "$OUT" ]; then
  if ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
    else
      echo "make-debian.sh: needs debootstrap (apt-get install debootstrap), as root" >&2
      exit 1
    fi
  fi
  # The bookworm mirror apt already uses (deb822 sources, else sources.list).
  mirror="$(awk '/^URIs:/{u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [ -n "$mirror" ] || { echo "make-debian.sh: no bookworm mirror in the apt sources" >&2; exit 1; }
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log" "$rootfs"/var/cache/apt/archives/*.deb
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  # The host's resolver and name files are the runtime's, not the image's.
  rm -f "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
  tar --numeric-owner --sort=name -C "$rootfs" -cf "$OUT.part" .
  mv "$OUT.part" "$OUT"
fi
"$BERTH" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  - debian:bookworm < "$OUT"
