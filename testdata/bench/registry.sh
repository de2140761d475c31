#!/usr/bin/env bash
# Push and pull times of berth side by side with `skopeo copy` in one run,
# against Debian's docker-registry on 127.0.0.1 (emptied before every push):
#   large:  FROM busybox + COPY of FILES small files (~SMALL_MB MB) and one
#           BIG_MB MB file (the builder benchmark's large context), one layer;
#   layers: the same bytes in 10 COPY layers.
# push: berth push vs skopeo copy oci:<berth's store> docker://...
# pull: berth pull into an empty store (layers unpacked into snapshots too)
#       vs skopeo copy docker://... oci:<empty dir> (no unpacking).
# Plus a second berth push of the same image (every blob answered by HEAD),
# and peak RSS of berth's push and pull. Medians of RUNS runs.
#
#   testdata/bench/registry.sh [WORKDIR]     (as root)
# Env: RUNS (3), FILES (20000), SMALL_MB (200), BIG_MB (500)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-registry}"
RUNS="${RUNS:-3}"
FILES="${FILES:-20000}"
SMALL_MB="${SMALL_MB:-200}"
BIG_MB="${BIG_MB:-500}"
[ "$(id -u)" = 0 ] || { echo "registry.sh: needs root (builds and registry)" >&2; exit 1; }
need=()
for p in docker-registry skopeo; do command -v "$p" >/dev/null || need+=("$p"); done
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release -p berth-cli >/dev/null 2>&1
BERTH="$PWD/target/release/berth"
awk -v w="$W" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
# Nothing is deleted while the bench runs (an earlier run's files are moved
# aside and deleted at the end): ext4 without a journal, as this machine's
# root, will not reuse an inode freed in the last 60-300 s and scans past
# each one, so a pull right after `rm -rf` of the last pull's 20,000 files
# pays seconds of inode allocation no real pull does.
TRASH="$W.trash.$$"
[ -e "$W" ] && mv "$W" "$TRASH"
mkdir -p "$W"
export BERTH_ROOT="$W/root" BERTH_CONFIG="$W/berth.json" DOCKER_CONFIG="$W/docker"
unset BERTH_REGISTRY_MIRRORS
bash testdata/make-busybox.sh "$BERTH" "$W/bb.tar" >/dev/null

# The images.
per_file=$(( SMALL_MB * 1024 * 1024 / FILES ))
mkdir -p "$W/large/app" "$W/layers"
python3 - "$W/large/app" "$FILES" "$per_file" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"d{i % 10}", f"s{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
        f.write(os.urandom(size // 2) + bytes(size - size // 2))
PY
for i in $(seq 0 9); do
  head -c "$((BIG_MB * 1024 * 1024 / 10))" /dev/urandom > "$W/large/app/d$i/big.bin"
done
printf 'FROM busybox\nCOPY app /app\n' > "$W/large/Dockerfile"
{ echo "FROM busybox"; for i in $(seq 0 9); do echo "COPY app/d$i /app/d$i"; done; } > "$W/large/Dockerfile.layers"
"$BERTH" build -q -t bench/large "$W/large" >/dev/null
"$BERTH" build -q -t bench/layers -f "$W/large/Dockerfile.layers" "$W/large" >/dev/null
size_mb() { "$BERTH" inspect "$1" | python3 -c 'import json,sys; i=json.load(sys.stdin)[0]; print(round(i["Size"]/1e6))'; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG="127.0.0.1:$PORT"
cat > "$W/registry.yml" <<YML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $W/registry}
  delete: {enabled: true}
http:
  addr: $REG
  secret: bench
YML
REG_PID=
start_registry() {
  rm -rf "$W/registry"
  docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && return; sleep 0.05; done
  echo "registry did not start" >&2; exit 1
}
stop_registry() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true; REG_PID=; }
finish() { stop_registry; rm -rf "$TRASH"; }
trap finish EXIT

# Before each pull: the page cache emptied, then the registry's storage read
# back in. Every pull starts from the same memory (free pages to fill, the
# registry's blobs cached) instead of from whatever the runs before left:
# on a machine whose memory is full of earlier runs' files each new page
# costs a reclaim first, and which run pays for that is chance.
settle() {
  sync
  echo 3 > /proc/sys/vm/drop_caches
  find "$W/registry" -type f -exec cat {} + > /dev/null
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Seconds and peak RSS (MB) of a command: "secs mb".
measure() {
  local t0 t1
  # Earlier runs' dirty pages are written back first, not during this one.
  sync
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$W/rss" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc) $(( $(tail -1 "$W/rss") / 1024 ))"
}

results="$W/results.tsv"; : > "$results"
for img in large layers; do
  src="bench/$img:latest"
  bp=(); bp2=(); sp=(); bl=(); sl=(); bpm=0; blm=0
  for run in $(seq "$RUNS"); do
    start_registry
    "$BERTH" tag "$src" "$REG/bench/$img:1"
    read -r t m < <(measure "$BERTH" push -q "$REG/bench/$img:1"); bp+=("$t"); (( m > bpm )) && bpm=$m
    read -r t _ < <(measure "$BERTH" push -q "$REG/bench/$img:1"); bp2+=("$t")
    settle
    read -r t m < <(measure env BERTH_ROOT="$W/pull-$img-$run" "$BERTH" pull -q "$REG/bench/$img:1"); bl+=("$t"); (( m > blm )) && blm=$m
    stop_registry
    start_registry
    read -r t _ < <(measure skopeo copy -q --dest-tls-verify=false "oci:$BERTH_ROOT:docker.io/$src" "docker://$REG/bench/$img:1"); sp+=("$t")
    settle
    read -r t _ < <(measure skopeo copy -q --src-tls-verify=false "docker://$REG/bench/$img:1" "oci:$W/skopeo-pull-$img-$run:x"); sl+=("$t")
    stop_registry
    "$BERTH" rmi "$REG/bench/$img:1" >/dev/null
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$img" "$(size_mb "$src")" \
    "$(printf '%s\n' "${bp[@]}" | median)" "$(printf '%s\n' "${sp[@]}" | median)" \
    "$(printf '%s\n' "${bp2[@]}" | median)" \
    "$(printf '%s\n' "${bl[@]}" | median)" "$(printf '%s\n' "${sl[@]}" | median)" \
    "$bpm" "$blm" >> "$results"
done

echo "image   MB    berth push  skopeo push  ratio   2nd push   berth pull  skopeo pull  ratio   peak MB push/pull"
awk -F'\t' '{printf "%-7s %5d %10.2fs %11.2fs %6.2fx %9.3fs %10.2fs %11.2fs %6.2fx   %d / %d\n",
  $1, $2, $3, $4, $4/$3, $5, $6, $7, $7/$6, $8, $9}' "$results"
echo "(ratio = skopeo time / berth time: above 1 means berth is faster)"
