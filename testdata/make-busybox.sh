#!/usr/bin/env bash
# Makes the offline base image every test builds on: a busybox root filesystem
# from Debian's busybox-static, imported with `berth import` as busybox:latest.
#
#   testdata/make-busybox.sh [BERTH] [OUT_TARBALL]
#
# BERTH defaults to target/debug/berth; --root/BERTH_ROOT pick the store.
# The tarball is kept (default: $TMPDIR/berth-busybox-rootfs.tar) for tests
# that import it themselves.
set -euo pipefail
BERTH="${1:-target/debug/berth}"
OUT="${2:-${TMPDIR:-/tmp}/berth-busybox-rootfs.tar}"

# Debian's busybox-static: one static binary that runs in any root filesystem.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static >/dev/null
  else
    echo "make-busybox.sh: needs Debian's busybox-static (apt-get install busybox-static)" >&2
    exit 1
  fi
fi
bb=/bin/busybox

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev,var/tmp,home}
cp "$bb" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
ln -s bin "$rootfs/sbin"
mkdir -p "$rootfs/usr"
ln -s ../bin "$rootfs/usr/bin"
ln -s ../bin "$rootfs/usr/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 700 "$rootfs/root"
# Fixed times and owners, and the tarball read from stdin (its path would be
# in the history): the same busybox gives the same image.
find "$rootfs" -exec touch -h -d @0 {} +
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$OUT" .
SOURCE_DATE_EPOCH=0 "$BERTH" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["sh"]' \
  - busybox:latest < "$OUT"
