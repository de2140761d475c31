#!/usr/bin/env bash
# Container start-to-exit latency of `true` in the busybox image, side by side
# in one run: berth's runtime and `runc run` on one bundle of the image,
# `berth run --rm` (image to exit: overlay, record, supervisor), and
# `unshare -mpfnui chroot ROOTFS true` as the floor. runc's bundle has a
# network namespace with loopback only: `--network none` is the same spec;
# berth's default also connects slirp4netns (outbound access) and is shown too. 100 runs each (RUNS=N).
#
#   testdata/bench/run.sh [WORKDIR]        (as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-run}"
RUNS="${RUNS:-100}"
[ "$(id -u)" = 0 ] || { echo "run.sh: containers need root" >&2; exit 1; }
missing=()
for t in runc hyperfine umoci jq; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release -p berth-cli >/dev/null 2>&1
BERTH="$PWD/target/release/berth"
rm -rf "$W"; mkdir -p "$W"
export BERTH_ROOT="$W/root"
bash testdata/make-busybox.sh "$BERTH" "$W/bb.tar" >/dev/null

# The same image as a runc bundle, unpacked by umoci from berth's own store.
umoci unpack --image "$BERTH_ROOT:docker.io/library/busybox:latest" "$W/bundle" >/dev/null
# berth's runtime mounts no cgroup filesystem (umoci's spec asks for one):
# both runtimes get the same spec without it.
jq '.process.args = ["true"] | .process.terminal = false | .mounts |= map(select(.type != "cgroup"))' \
  "$W/bundle/config.json" > "$W/config.json"
mv "$W/config.json" "$W/bundle/config.json"

hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$W/run.json" \
  -n "berth runtime" "$BERTH __runtime $W/bundle/config.json" \
  -n "berth run --rm" "$BERTH run --rm --network none busybox true" \
  -n "berth run --rm (slirp4netns)" "$BERTH run --rm busybox true" \
  -n "runc run" "runc run -b $W/bundle bench-$$" \
  -n "unshare+chroot (floor)" "unshare -mpfnui --fork chroot $W/bundle/rootfs /bin/true" 2>&1 | grep -vE '^\s*$'
jq -r '.results[] | "\(.command)\t\(.median*1000)"' "$W/run.json" | awk -F'\t' '
  { ms[$1] = $2; printf "%-30s median %.1f ms\n", $1, $2 }
  END {
    printf "runtime, same bundle: berth/runc %.2fx, berth/floor %.2fx\n", ms["berth runtime"] / ms["runc run"], ms["berth runtime"] / ms["unshare+chroot (floor)"]
    printf "berth run --rm (image to exit): berth/runc %.2fx, berth/floor %.2fx\n", ms["berth run --rm"] / ms["runc run"], ms["berth run --rm"] / ms["unshare+chroot (floor)"]
  }'
