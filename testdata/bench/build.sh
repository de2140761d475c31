#!/usr/bin/env bash
# Build times of berth side by side with BuildKit (a private dockerd from
# Debian's docker.io on its own socket and data root, DOCKER_BUILDKIT=1) and
# `buildah bud --layers` in one run, on
#   (a) FROM busybox + RUN + CMD,
#   (b) a two-stage build,
#   (c) a context of FILES small files (~SMALL_MB MB) plus one BIG_MB MB file,
#       COPY . /app.
# Each: cold build (cache and images dropped), no-change rebuild, rebuild after
# changing one small file. Medians of RUNS runs; ratios berth/peer.
#
#   testdata/bench/build.sh [WORKDIR]     (as root)
# Env: RUNS (5), FILES (20000), SMALL_MB (200), BIG_MB (500), PEERS
# ("buildkit buildah"; empty for berth alone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-build}"
RUNS="${RUNS:-5}"
FILES="${FILES:-20000}"
SMALL_MB="${SMALL_MB:-200}"
BIG_MB="${BIG_MB:-500}"
PEERS="${PEERS-buildkit buildah}"
source testdata/bench/common.sh
need_root build.sh
[[ " $PEERS " != *" buildah "* ]] || install_missing buildah runc
[[ " $PEERS " != *" buildkit "* ]] || install_missing /usr/bin/docker=docker.io
release_workdir
export BERTH_ROOT="$W/root"
bash testdata/make-busybox.sh "$BERTH" "$W/bb.tar" >/dev/null

# buildah as the lab runs it here: runc, the caller's rlimits, its own store.
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"
cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
cat > "$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$W/cstorage"
runroot = "$W/crun"
EOF
"$BERTH" save -o "$W/busybox.tar" busybox:latest
if [[ " $PEERS " == *" buildah "* ]]; then
  buildah pull -q "docker-archive:$W/busybox.tar" >/dev/null
  buildah tag "$(buildah images -q | head -1)" localhost/busybox:latest
fi

# BuildKit inside a private dockerd; the docker.io package's own client (a
# newer CLI elsewhere on PATH wants the buildx plugin for DOCKER_BUILDKIT=1).
# awk reads dpkg's whole list (grep -m1 would end the pipe early: SIGPIPE).
DOCKER="$(dpkg -L docker.io 2>/dev/null | awk '/\/bin\/docker$/ && !f {print; f=1}')"
[ -n "$DOCKER" ] || DOCKER=docker
export DOCKER_HOST="unix://$W/docker.sock"
stop_dockerd() { [ -f "$W/dockerd.pid" ] && kill "$(cat "$W/dockerd.pid")" 2>/dev/null || true; }
trap stop_dockerd EXIT
if [[ " $PEERS " == *" buildkit "* ]]; then
  nohup dockerd --host "$DOCKER_HOST" --data-root "$W/docker-root" --exec-root "$W/docker-exec" \
    --pidfile "$W/docker.pid" > "$W/dockerd.log" 2>&1 &
  echo $! > "$W/dockerd.pid"
  for _ in $(seq 60); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.5; done
  "$DOCKER" load -i "$W/busybox.tar" >/dev/null
fi

mkdir -p "$W/a" "$W/b" "$W/c/app"
printf 'FROM busybox\nRUN echo built > /built\nCMD ["cat", "/built"]\n' > "$W/a/Dockerfile"
cat > "$W/b/Dockerfile" <<'EOF'
FROM busybox AS build
RUN echo compiled > /artifact
FROM busybox
COPY --from=build /artifact /artifact
CMD ["cat", "/artifact"]
EOF
printf 'FROM busybox\nCOPY . /app\n' > "$W/c/Dockerfile"
per_file=$(( SMALL_MB * 1024 * 1024 / FILES ))
python3 - "$W/c/app" "$FILES" "$per_file" <<'EOF'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
        f.write(os.urandom(size // 2) + bytes(size - size // 2))
EOF
head -c "$((BIG_MB * 1024 * 1024))" /dev/urandom > "$W/c/big.bin"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $t0" | bc; }

build_cmd() { # tool dir tag
  case "$1" in
    berth) echo "$BERTH build -q -t $3 $2" ;;
    buildah) echo "buildah bud --layers -q -t $3 $2" ;;
    buildkit) echo "env DOCKER_BUILDKIT=1 $DOCKER build -q -t $3 $2" ;;
  esac
}
drop_cache() { # tool
  case "$1" in
    # Images (dangling ones too) first, then the cache and GC: nothing of the
    # last build (blobs, snapshots, reusable compressed members, remembered
    # hashes) survives into a cold one.
    berth) "$BERTH" rmi -f bench-a bench-b bench-c >/dev/null 2>&1 || true
           "$BERTH" image prune -f >/dev/null; "$BERTH" builder prune -f >/dev/null ;;
    buildah) buildah rmi -f bench-a bench-b bench-c >/dev/null 2>&1 || true; buildah rmi --prune >/dev/null 2>&1 || true ;;
    buildkit) "$DOCKER" rmi -f bench-a bench-b bench-c >/dev/null 2>&1 || true
              "$DOCKER" image prune -f >/dev/null 2>&1 || true; "$DOCKER" builder prune -af >/dev/null 2>&1 || true ;;
  esac
}

results="$W/results.tsv"
: > "$results"
for case in a b c; do
  for tool in berth $PEERS; do
    cmd=$(build_cmd "$tool" "$W/$case" "bench-$case")
    cold=(); same=(); one=()
    for i in $(seq "$RUNS"); do
      drop_cache "$tool"
      cold+=("$(timed $cmd)")
      same+=("$(timed $cmd)")
      echo "$i-$RANDOM" > "$W/$case/changed.txt"
      one+=("$(timed $cmd)")
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$tool" \
      "$(printf '%s\n' "${cold[@]}" | median)" \
      "$(printf '%s\n' "${same[@]}" | median)" \
      "$(printf '%s\n' "${one[@]}" | median)" >> "$results"
  done
done

echo "case  tool      cold(s)  no-change(s)  one-file(s)"
awk -F'\t' '{printf "(%s)   %-8s %8.3f %12.3f %12.3f\n", $1, $2, $3, $4, $5}' "$results"
for peer in $PEERS; do
  echo "ratios berth/$peer (lower is better):"
  awk -F'\t' -v p="$peer" '
    $2=="berth" {c[$1]=$3; s[$1]=$4; o[$1]=$5}
    $2==p {printf "(%s)   cold %.2fx   no-change %.2fx   one-file %.2fx\n", $1, c[$1]/$3, s[$1]/$4, o[$1]/$5}
  ' "$results"
done
