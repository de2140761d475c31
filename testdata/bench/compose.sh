#!/usr/bin/env bash
# `berth compose` against Debian's podman-compose (over Debian's podman), in
# one run, on one 10-service project (busybox, one network, one named
# volume): the median of `up -d` (from nothing) and of `down` (of a project
# that is up). Targets: at most 0.2x podman-compose for both. 5 runs each
# (RUNS=N).
#
#   testdata/bench/compose.sh [WORKDIR]        (as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-compose}"
RUNS="${RUNS:-5}"
source testdata/bench/common.sh
need_root compose.sh
install_missing hyperfine jq podman podman-compose
cargo build --release -p berth-cli -p berth-compose >/dev/null 2>&1
BERTH="$PWD/target/release/berth"
rm -rf "$W"; mkdir -p "$W/bench10"
export BERTH_ROOT="$W/root"
bash testdata/make-busybox.sh "$BERTH" "$W/bb.tar" >/dev/null
source testdata/bench/podman-env.sh
podman import -q "$W/bb.tar" docker.io/library/busybox:latest >/dev/null

{
  echo "services:"
  for i in $(seq 1 10); do
    cat <<SVC
  s$i:
    image: docker.io/library/busybox:latest
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
    volumes:
      - data:/data
SVC
  done
  echo "volumes:"
  echo "  data:"
} > "$W/bench10/compose.yaml"

cleanup() {
  (cd "$W/bench10" && "$BERTH" compose down -v >/dev/null 2>&1) || true
  (cd "$W/bench10" && podman-compose down -v >/dev/null 2>&1) || true
  podman system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
cd "$W/bench10"
hyperfine -N --runs "$RUNS" --export-json "$W/up.json" \
  --prepare "$BERTH compose down -v" -n "berth compose up -d" "$BERTH compose up -d" \
  --prepare "podman-compose down -v" -n "podman-compose up -d" "podman-compose up -d" \
  2>&1 | grep -vE '^\s*$'
hyperfine -N --runs "$RUNS" --export-json "$W/down.json" \
  --prepare "$BERTH compose up -d" -n "berth compose down" "$BERTH compose down" \
  --prepare "podman-compose up -d" -n "podman-compose down" "podman-compose down" \
  2>&1 | grep -vE '^\s*$'
for f in up down; do
  jq -r --arg f "$f" '.results | (.[0].median / .[1].median) as $r |
    "\($f): berth \(.[0].median * 1000 | floor) ms, podman-compose \(.[1].median * 1000 | floor) ms, ratio \($r * 100 | floor / 100)x (target <= 0.2x)"' "$W/$f.json"
done
