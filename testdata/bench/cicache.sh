#!/usr/bin/env bash
# A CI job's rebuild on a fresh machine, with the build cache from a local
# registry: berth (`--cache-to/--cache-from type=registry`) side by side with
# BuildKit (a private dockerd from Debian's docker.io 20.10, DOCKER_BUILDKIT=1,
# `BUILDKIT_INLINE_CACHE=1` and `--cache-from`) on the same project and the
# same registry (Debian's docker-registry on 127.0.0.1).
#
# The project: FROM a Debian bookworm base (debootstrap from the package
# mirror, pushed to the registry), RUN apt-get install (from the mirror),
# COPY of FILES small files, a RUN over them. Every "fresh machine" is an
# empty store (berth: a new root; dockerd: every image and the build cache
# pruned), so the base image too comes from the registry each time.
#
# Reported, medians of RUNS runs: each tool's cold build (no cache), its
# rebuild from the registry cache, and the ratios berth/BuildKit and
# berth-cached/berth-cold.
#
#   testdata/bench/cicache.sh [WORKDIR]     (as root)
# Env: RUNS (3), FILES (20000), PEERS ("buildkit"; empty for berth alone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. testdata/bench/common.sh
need_root cicache.sh
W="${1:-${TMPDIR:-/tmp}/berth-bench-cicache}"
RUNS="${RUNS:-3}"
FILES="${FILES:-20000}"
PEERS="${PEERS-buildkit}"
install_missing docker-registry debootstrap bc
[[ " $PEERS " != *" buildkit "* ]] || install_missing /usr/bin/docker=docker.io
release_workdir

# The registry.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG="127.0.0.1:$PORT"
cat > "$W/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: $REG, secret: bench}
EOF
docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
REG_PID=$!
# awk reads dpkg's whole list (grep -m1 would end the pipe early: SIGPIPE).
DOCKER="$(dpkg -L docker.io 2>/dev/null | awk '/\/bin\/docker$/ && !f {print; f=1}')"
[ -n "$DOCKER" ] || DOCKER=docker
export DOCKER_HOST="unix://$W/docker.sock"
cleanup() {
  [ -f "$W/dockerd.pid" ] && kill "$(cat "$W/dockerd.pid")" 2>/dev/null || true
  kill "$REG_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

# The base image, into the registry (once, from berth's store).
SEED="$W/seed-root"
BERTH_ROOT="$SEED" bash testdata/make-debian.sh "$BERTH" >/dev/null
"$BERTH" --root "$SEED" tag debian:bookworm "$REG/debian:bookworm"
"$BERTH" --root "$SEED" push "$REG/debian:bookworm" >/dev/null

# The project.
P="$W/project"
mkdir -p "$P/app"
cat > "$P/Dockerfile" <<EOF
FROM $REG/debian:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends jq file && rm -rf /var/lib/apt/lists/*
COPY app /app
RUN find /app -type f | wc -l > /app-count && jq --version > /jq-version
CMD ["cat", "/app-count"]
EOF
python3 - "$P/app" "$FILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 200:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"file {i}\n" * 40)
EOF

if [[ " $PEERS " == *" buildkit "* ]]; then
  nohup dockerd --host "$DOCKER_HOST" --data-root "$W/docker-root" --exec-root "$W/docker-exec" \
    --pidfile "$W/docker.pid" > "$W/dockerd.log" 2>&1 &
  echo $! > "$W/dockerd.pid"
  for _ in $(seq 60); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.5; done
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@" >"$W/last.log" 2>&1 || { cat "$W/last.log" >&2; exit 1; }; echo "$(now) - $t0" | bc; }

fresh_berth() { rm -rf "$W/berth-root"; }
fresh_docker() {
  "$DOCKER" system prune -af >/dev/null 2>&1 || true
  "$DOCKER" builder prune -af >/dev/null 2>&1 || true
}
berth_build() { "$BERTH" --root "$W/berth-root" build -q "$@" "$P"; }
bk_build() { env DOCKER_BUILDKIT=1 "$DOCKER" build -q "$@" "$P"; }

# The cache each tool's CI would leave: built once, exported.
fresh_berth
ref_id=$(berth_build -t "$REG/app:berth" --push --cache-to "type=registry,ref=$REG/cicache:berth,mode=max" | grep -o 'sha256:[0-9a-f]*' | tail -1)
if [[ " $PEERS " == *" buildkit "* ]]; then
  fresh_docker
  bk_build -t "$REG/app:buildkit" --build-arg BUILDKIT_INLINE_CACHE=1 >/dev/null
  "$DOCKER" push "$REG/app:buildkit" >/dev/null
fi

results="$W/results.tsv"
: > "$results"
cold=(); cached=()
for i in $(seq "$RUNS"); do
  fresh_berth; cold+=("$(timed berth_build -t bench-app)")
  fresh_berth; cached+=("$(timed berth_build -t bench-app --cache-from "type=registry,ref=$REG/cicache:berth")")
  # A rebuild from the cache gives the exporting build's image (no RUN ran).
  grep -q "$ref_id" "$W/last.log" || { echo "cicache.sh: the cached rebuild gave another image" >&2; cat "$W/last.log" >&2; exit 1; }
done
printf 'berth\t%s\t%s\n' "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${cached[@]}" | median)" >> "$results"
if [[ " $PEERS " == *" buildkit "* ]]; then
  cold=(); cached=()
  for i in $(seq "$RUNS"); do
    fresh_docker; cold+=("$(timed bk_build -t bench-app)")
    fresh_docker; cached+=("$(timed bk_build -t bench-app --cache-from "$REG/app:buildkit")")
  done
  printf 'buildkit\t%s\t%s\n' "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${cached[@]}" | median)" >> "$results"
fi
echo "fresh machine, FILES=$FILES, medians of $RUNS runs"
echo "tool      cold(s)  from-registry-cache(s)"
awk -F'\t' '{printf "%-9s %7.2f %12.2f\n", $1, $2, $3}' "$results"
awk -F'\t' '$1=="berth" {printf "berth cached/cold: %.2fx\n", $3/$2}' "$results"
for peer in $PEERS; do
  awk -F'\t' -v p="$peer" '
    $1=="berth" {c=$2; k=$3}
    $1==p {printf "ratios berth/%s (lower is better): cold %.2fx   from cache %.2fx\n", p, c/$2, k/$3}
  ' "$results"
done
