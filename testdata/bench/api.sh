#!/usr/bin/env bash
# The Engine API service against the direct CLI and against podman's
# service, in one run, with one client (Debian's docker CLI 20.10):
#   - `docker run --rm busybox true` through berth's socket, against
#     `berth run --rm busybox true` (target: at most 15 ms more), and against
#     the same docker command through `podman system service` (target: at
#     most 0.3x). All with `--network none`: the API is measured, not the
#     network setup (testdata/bench/run.sh measures that).
#   - the client's own floor: `docker ps -q` through berth's socket (a ping
#     and one request, answered in well under a millisecond).
#   - requests per second of `GET /containers/json` with 100 containers,
#     berth's service against podman's (curl, 8 connections in parallel).
# 50 runs each (RUNS=N).
#
#   testdata/bench/api.sh [WORKDIR]        (as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-api}"
RUNS="${RUNS:-50}"
source testdata/bench/common.sh
need_root api.sh
install_missing hyperfine jq podman curl bc /usr/bin/docker=docker.io
DOCKER=/usr/bin/docker
cargo build --release -p berth-cli -p berth-api >/dev/null 2>&1
BERTH="$PWD/target/release/berth"
rm -rf "$W"; mkdir -p "$W"
export BERTH_ROOT="$W/root"
bash testdata/make-busybox.sh "$BERTH" "$W/bb.tar" >/dev/null

# podman beside berth, set up alike for every benchmark.
source testdata/bench/podman-env.sh
podman import -q "$W/bb.tar" docker.io/library/busybox:latest >/dev/null

"$BERTH" system service --time 0 "unix://$W/berth.sock" 2> "$W/berth-service.log" &
BPID=$!
podman system service --time 0 "unix://$W/podman.sock" 2> "$W/podman-service.log" &
PPID_=$!
cleanup() {
  kill "$BPID" "$PPID_" 2>/dev/null || true
  wait 2>/dev/null || true
  "$BERTH" rm -f $("$BERTH" ps -aq) >/dev/null 2>&1 || true
  podman system reset -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
for s in berth podman; do
  for _ in $(seq 1 100); do
    curl -sf --unix-socket "$W/$s.sock" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.2
  done
done

hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$W/api.json" \
  -n "berth run --rm" "$BERTH run --rm --network none busybox true" \
  -n "docker run --rm (berth's socket)" "env DOCKER_HOST=unix://$W/berth.sock $DOCKER run --rm --network none busybox true" \
  -n "docker run --rm (podman's socket)" "env DOCKER_HOST=unix://$W/podman.sock $DOCKER run --rm --network none busybox true" \
  -n "docker ps -q (berth's socket)" "env DOCKER_HOST=unix://$W/berth.sock $DOCKER ps -q" \
  2>&1 | grep -vE '^\s*$'

# 100 containers in each, then GET /containers/json?all=1 as fast as curl
# asks it, 8 at a time over kept connections.
for i in $(seq 1 100); do
  DOCKER_HOST="unix://$W/berth.sock" $DOCKER create --network none busybox true >/dev/null
  DOCKER_HOST="unix://$W/podman.sock" $DOCKER create --network none busybox true >/dev/null
done
N=400
rps() {
  local start end
  start=$(date +%s.%N)
  curl -s --no-progress-meter --parallel --parallel-max 8 --unix-socket "$W/$1.sock" -o /dev/null \
    "http://d/v1.41/containers/json?all=1&n=[1-$N]"
  end=$(date +%s.%N)
  echo "$N / ($end - $start)" | bc -l
}
BR=$(rps berth); PR=$(rps podman)

jq -r '.results[] | "\(.command)\t\(.median*1000)"' "$W/api.json" | awk -F'\t' -v br="$BR" -v pr="$PR" '
  { ms[$1] = $2; printf "%-36s median %.1f ms\n", $1, $2 }
  END {
    d = ms["docker run --rm (berth'"'"'s socket)"]; p = ms["docker run --rm (podman'"'"'s socket)"]
    printf "through the API: %+.1f ms over berth run --rm (target <= 15 ms)\n", d - ms["berth run --rm"]
    printf "the client alone: docker ps -q (a ping and one request) %.1f ms\n", ms["docker ps -q (berth'"'"'s socket)"]
    printf "against podman'"'"'s service: %.2fx (target <= 0.3x)\n", d / p
    printf "GET /containers/json, 100 containers: berth %.0f req/s, podman %.0f req/s (%.2fx)\n", br, pr, br / pr
  }'
