#!/usr/bin/env bash
# Layer writing, side by side in one run: berth's LayerWriter (gzip, zstd)
# against `tar -c | gzip -6` and `tar -c | zstd -3 -T0` of the same tree:
# 20,000 small files (~200 MB of base64 text) plus one 500 MB random file.
# Prints MB/s, peak memory and the ratio to the peer pipeline.
#
# berth fsyncs every blob before it is visible; a third row times the zstd
# pipeline with its output fsynced too, since on a slow disk the sync, not the
# compression, bounds both.
#
#   testdata/bench/layer.sh [WORKDIR]
#   SMALL=1: a 10x smaller tree; RUNS=N: runs per tool (default 3); ONLY=gzip|zstd
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W="${1:-${TMPDIR:-/tmp}/berth-bench-layer}"
mkdir -p "$W"
command -v zstd >/dev/null || { echo "needs zstd (apt-get install zstd)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

files=20000; big_mb=500
if [ "${SMALL:-0}" = 1 ]; then files=2000; big_mb=50; fi
tree="$W/tree-$files"
if [ ! -d "$tree" ]; then
  echo "making the tree ($files small files + ${big_mb} MB file) in $tree" >&2
  mkdir -p "$tree/small"
  python3 - "$tree/small" "$files" <<'PY'
import base64, os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
r = random.Random(1)
for i in range(n):
    sub = os.path.join(d, f"d{i % 200:03d}")
    os.makedirs(sub, exist_ok=True)
    size = r.randint(1024, 19 * 1024)
    with open(os.path.join(sub, f"f{i:05d}.txt"), "wb") as f:
        f.write(base64.b64encode(r.randbytes(size * 3 // 4)))
PY
  head -c "$((big_mb * 1024 * 1024))" /dev/urandom > "$tree/big.bin"
fi
bytes=$(du -sb "$tree" | cut -f1)
mb=$(python3 -c "print($bytes/1e6)")
cargo build --release -p berth-store --example write_layer >/dev/null 2>&1
bin=target/release/examples/write_layer
sync

RUNS="${RUNS:-3}"
run() { # name command...  (one timed run; dirty pages flushed before, not timed)
  local name="$1"; shift
  rm -rf "$W/store" "$W/out.tgz" "$W/out.tzst"
  sync
  local out
  out=$( { /usr/bin/time -f "TIME %e %M" "$@" >/dev/null; } 2>&1 | grep '^TIME' )
  echo "$name|$(echo "$out" | cut -d' ' -f2)|$(echo "$out" | cut -d' ' -f3)" >> "$W/results"
}

: > "$W/results"
echo "tree: $(python3 -c "print(round($mb))") MB, $files small files + one ${big_mb} MB file; $(nproc) cores; median of $RUNS runs, interleaved"
ONLY="${ONLY:-gzip zstd}"
for _ in $(seq "$RUNS"); do
  if [[ " $ONLY " == *" gzip "* ]]; then
    run "berth layer gzip"          "$bin" "$tree" "$W/store" gzip
    run "tar -c | gzip -6"          bash -c "tar -C '$tree' -cf - . | gzip -6 > '$W/out.tgz'"
  fi
  if [[ " $ONLY " == *" zstd "* ]]; then
    run "berth layer zstd"          "$bin" "$tree" "$W/store" zstd
    run "tar -c | zstd -3 -T0"      bash -c "tar -C '$tree' -cf - . | zstd -3 -T0 -q > '$W/out.tzst'"
    # The same with the output made durable, as berth's blob is (fsync).
    run "tar | zstd -T0 + fsync"    bash -c "tar -C '$tree' -cf - . | zstd -3 -T0 -q > '$W/out.tzst' && sync '$W/out.tzst'"
  fi
done
python3 - "$W/results" "$mb" <<'PY'
import statistics, sys
mb = float(sys.argv[2])
rows = {}
for line in open(sys.argv[1]).read().splitlines():
    name, secs, kb = line.rsplit("|", 2)
    rows.setdefault(name, []).append((float(secs), int(kb)))
med = {}
for name, runs in rows.items():
    secs = statistics.median(r[0] for r in runs)
    peak = max(r[1] for r in runs) / 1024
    med[name] = secs
    print(f"{name:<24} {secs:7.2f} s  {mb / secs:7.1f} MB/s  peak {peak:6.1f} MB  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")
if 'berth layer gzip' in med:
    print(f"gzip: berth is {med['tar -c | gzip -6'] / med['berth layer gzip']:.2f}x tar|gzip -6")
if 'berth layer zstd' in med:
    print(f"zstd: berth is {med['tar -c | zstd -3 -T0'] / med['berth layer zstd']:.2f}x tar|zstd -3 -T0")
    print(f"zstd: berth is {med['tar | zstd -T0 + fsync'] / med['berth layer zstd']:.2f}x tar|zstd -3 -T0 with its output fsynced")
PY
rm -rf "$W/store" "$W/out.tgz" "$W/out.tzst"
