#!/usr/bin/env bash
# docker's networking introduction, as written, with berth: a database on an
# internal network, a web front end on another, then connected to both.
# Checks that frontend-app reaches "database" by name on 3306 and that
# database reaches nothing outside. Needs root, netavark and the package
# mirror (for the images' RUN steps).
#
#   testdata/examples/networks/run.sh [BERTH]
#
# --root/BERTH_ROOT pick the store; the Debian base is made if missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BERTH="$(realpath "${1:-target/debug/berth}")"
berth() { "$BERTH" "$@"; }

cleanup() {
  berth rm -f database frontend-app >/dev/null 2>&1 || true
  berth network rm frontend localhost >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

if ! berth image inspect debian:bookworm >/dev/null 2>&1; then
  bash "$here/../../make-debian.sh" "$BERTH" >/dev/null
fi
berth build -q -t mariadb-image "$here/mariadb" >/dev/null
berth build -q -t nginx-image "$here/nginx" >/dev/null

# The demo, as docker's documentation writes it.
berth network create frontend
berth network create localhost --internal
berth run -d --name database --network localhost -e MYSQL_ROOT_PASSWORD=P4ssW0rd0! mariadb-image
berth run -d --name frontend-app --network frontend nginx-image
berth network connect localhost frontend-app

# frontend-app reaches "database" by name on 3306 (the server needs a few
# seconds for its first start).
ok=
for _ in $(seq 120); do
  if berth exec frontend-app mariadb -h database -uroot -pP4ssW0rd0! -N -e 'SELECT 1' 2>/dev/null | grep -qx 1; then
    ok=1
    break
  fi
  sleep 0.5
done
if [ -z "$ok" ]; then
  berth logs database >&2 || true
  echo "networks example: frontend-app cannot reach database on 3306" >&2
  exit 1
fi
echo "frontend-app reaches database:3306"

# database has no route out; frontend-app has one. The mirror the images
# were built from stands for "outside".
mirror_host="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
[ -n "$mirror_host" ] || mirror_host="$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)"
mirror_host="${mirror_host#*://}"; mirror_host="${mirror_host%%/*}"; mirror_host="${mirror_host%%:*}"
mirror_ip="$(getent ahostsv4 "$mirror_host" | awk '{print $1; exit}')"
has_default_route() { berth exec "$1" awk '$2=="00000000"{found=1} END{exit !found}' /proc/net/route; }
reaches_mirror() { berth exec "$1" timeout 5 bash -c "exec 3<>/dev/tcp/$mirror_ip/80" 2>/dev/null; }
if has_default_route database; then
  echo "networks example: database has a default route" >&2
  exit 1
fi
if reaches_mirror database; then
  echo "networks example: database reaches $mirror_host" >&2
  exit 1
fi
has_default_route frontend-app || { echo "networks example: frontend-app has no route out" >&2; exit 1; }
reaches_mirror frontend-app || { echo "networks example: frontend-app cannot reach $mirror_host" >&2; exit 1; }
echo "database reaches nothing outside; frontend-app reaches $mirror_host"
