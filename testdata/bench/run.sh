#!/usr/bin/env bash
# Container start-to-exit latency of `true` in the busybox image, side by side
# in one run: berth's runtime and `runc run` on one bundle of the image,
# `berth run --rm` (image to exit: overlay, record, supervisor) with
# `--network none`, on the default bridge, on a user-defined network (both
# through netavark) and with slirp4netns; `podman run --rm` on its default
# network (netavark, with the settings ../shared/lab gives this machine), and
# `unshare -mpfnui chroot ROOTFS true` as the floor. runc's bundle has a
# network namespace with loopback only: `--network none` is the same spec.
# 100 runs each (RUNS=N).
#
#   testdata/bench/run.sh [WORKDIR]        (as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-run}"
RUNS="${RUNS:-100}"
source testdata/bench/common.sh
need_root run.sh
install_missing runc hyperfine umoci jq podman \
  /usr/lib/podman/netavark=netavark /usr/lib/podman/aardvark-dns=aardvark-dns
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

# podman beside berth, set up alike for every benchmark.
source testdata/bench/podman-env.sh
podman import -q "$W/bb.tar" localhost/busybox:latest >/dev/null
podman run --rm localhost/busybox:latest true
"$BERTH" network create bench >/dev/null
# The store's default bridge outlives it (no command removes a default
# network, and the next run deletes the store): its link goes with the run.
links_before="$(ip -br link | awk '/^berth/ { print $1 }')"
drop_new_links() {
  for l in $(ip -br link | awk '/^berth/ { print $1 }'); do
    grep -qx "$l" <<<"$links_before" || ip link del "$l" 2>/dev/null || true
  done
}
trap '"$BERTH" network rm bench >/dev/null 2>&1 || true; podman system reset -f >/dev/null 2>&1 || true; drop_new_links' EXIT

# The setup above deleted thousands of files (the last run's folder). On an
# ext4 without a journal (this machine's root) a new inode steps over every
# inode deleted in the last minute (five more while its inode table is not
# written back): every contender starts on a settled file system.
sync
sleep 61
# hyperfine runs one command's runs after the other's: the contenders that
# are compared run next to each other (runc between berth's runtime and
# berth's run), before podman's heavy runs change the machine's state.
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$W/run.json" \
  -n "berth runtime" "$BERTH __runtime $W/bundle/config.json" \
  -n "runc run" "runc run -b $W/bundle bench-$$" \
  -n "berth run --rm" "$BERTH run --rm --network none busybox true" \
  -n "unshare+chroot (floor)" "unshare -mpfnui --fork chroot $W/bundle/rootfs /bin/true" \
  -n "berth run --rm (bridge)" "$BERTH run --rm busybox true" \
  -n "berth run --rm (user network)" "$BERTH run --rm --network bench busybox true" \
  -n "berth run --rm (slirp4netns)" "$BERTH run --rm --network slirp4netns busybox true" \
  -n "podman run --rm" "podman run --rm localhost/busybox:latest true" 2>&1 | grep -vE '^\s*$'
jq -r '.results[] | "\(.command)\t\(.median*1000)"' "$W/run.json" | awk -F'\t' '
  { ms[$1] = $2; printf "%-30s median %.1f ms\n", $1, $2 }
  END {
    printf "runtime, same bundle: berth/runc %.2fx, berth/floor %.2fx\n", ms["berth runtime"] / ms["runc run"], ms["berth runtime"] / ms["unshare+chroot (floor)"]
    printf "berth run --rm (image to exit): berth/runc %.2fx, berth/floor %.2fx\n", ms["berth run --rm"] / ms["runc run"], ms["berth run --rm"] / ms["unshare+chroot (floor)"]
    printf "bridge: berth/podman %.2fx, %+.1f ms over --network none\n", ms["berth run --rm (bridge)"] / ms["podman run --rm"], ms["berth run --rm (bridge)"] - ms["berth run --rm"]
    printf "user network: berth/podman %.2fx, %+.1f ms over --network none\n", ms["berth run --rm (user network)"] / ms["podman run --rm"], ms["berth run --rm (user network)"] - ms["berth run --rm"]
  }'
