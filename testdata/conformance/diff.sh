#!/usr/bin/env bash
# Builds every build case with berth and with BuildKit (a private dockerd of
# Debian's docker.io, 20.10) from the same busybox tarball and prints how the
# images differ (diff.py says what is compared). Exit code 1 when a
# difference is berth's; the ones known to be the peer's age are listed in
# peer-age.tsv and printed apart.
#
#   testdata/conformance/diff.sh [BERTH] [-- diff.py options, e.g. --only copy]
#
# DIFF_DEBIAN=1 also builds the cases under testdata/conformance/debian/ on a
# Debian bookworm base made by testdata/make-debian.sh (debootstrap from the
# machine's package mirror; RUN steps reach that mirror): slow, not run in CI.
#
# The dockerd runs with its own roots under $DIFF_WORK (default
# /tmp/berth-diff-dockerd), without a bridge or iptables rules (so the machine's
# network is left as it is: RUN steps use the host network on both sides), and
# is stopped on exit. DOCKER_HOST set in the environment uses that engine instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BERTH=target/debug/berth
if [ $# -gt 0 ] && [ "$1" != "--" ]; then BERTH="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
BERTH="$(realpath "$BERTH")"
W="${DIFF_WORK:-/tmp/berth-diff-dockerd}"

if [ "$(id -u)" = 0 ] && ! dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q "install ok installed"; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null
fi
# The package's own client (a newer docker CLI elsewhere on PATH needs buildx).
DOCKER="$(dpkg -L docker.io 2>/dev/null | awk '/\/bin\/docker$/ && !f {print; f=1}')"
DOCKER="${DOCKER:-docker}"

mkdir -p "$W"
started=
stop_dockerd() {
  [ -n "$started" ] || return 0
  kill "$(cat "$W/pid")" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$(cat "$W/pid")" 2>/dev/null || break; sleep 0.5; done
  for m in $(awk -v p="$W/" '$2 ~ "^"p {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$W/root" "$W/exec" "$W/berth-root"
}
trap stop_dockerd EXIT
if [ -z "${DOCKER_HOST:-}" ]; then
  export DOCKER_HOST="unix://$W/docker.sock"
  dockerd --host "$DOCKER_HOST" --data-root "$W/root" --exec-root "$W/exec" \
    --pidfile "$W/docker.pid" --bridge=none --iptables=false --ip-forward=false \
    --ip-masq=false > "$W/dockerd.log" 2>&1 &
  echo $! > "$W/pid"
  started=1
  for _ in $(seq 1 120); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.5; done
  "$DOCKER" version >/dev/null || { echo "diff.sh: dockerd did not start, see $W/dockerd.log" >&2; exit 1; }
fi

# The same base on both sides: berth imports the tarball make-busybox.sh
# makes, docker imports the same tarball with the same changes.
ROOT="$W/berth-root"
rm -rf "$ROOT"
TARBALL="$W/busybox-rootfs.tar"
BERTH_ROOT="$ROOT" bash testdata/make-busybox.sh "$BERTH" "$TARBALL" >/dev/null
"$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["sh"]' "$TARBALL" busybox:latest >/dev/null

dirs=(testdata/build testdata/conformance/cases)
bases=(--base busybox:latest)
if [ "${DIFF_DEBIAN:-0}" = 1 ]; then
  DEB_TARBALL="${DIFF_DEBIAN_TARBALL:-${TMPDIR:-/tmp}/berth-debian-rootfs.tar}"
  BERTH_ROOT="$ROOT" bash testdata/make-debian.sh "$BERTH" "$DEB_TARBALL" >/dev/null
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$DEB_TARBALL" debian:bookworm >/dev/null
  dirs+=(testdata/conformance/debian)
  bases+=(--base debian:bookworm)
fi

python3 testdata/conformance/diff.py --berth "$BERTH" --berth-root "$ROOT" --docker "$DOCKER" \
  "${bases[@]}" "$@" "${dirs[@]}"
