#!/usr/bin/env bash
# The main job end to end on a fresh machine: build berth, make the offline
# busybox base image, build the example project testdata/examples/hello with
# `berth build` and run the result with `berth run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static
fi
cargo build --release -p berth-cli
BERTH="$PWD/target/release/berth"
export BERTH_ROOT="${BERTH_ROOT:-$PWD/target/demo-root}"
example=testdata/examples/hello

echo "== make the busybox base image (store: $BERTH_ROOT)"
bash testdata/make-busybox.sh "$BERTH"
echo "== berth build -t hello $example"
"$BERTH" build -t hello "$example"
echo "== berth run --rm hello"
"$BERTH" run --rm hello
echo
echo "== berth build -t hello $example (again: every step from the cache)"
"$BERTH" build -t hello "$example" 2>&1 | grep -E 'CACHED|writing image'
echo "== berth images"
"$BERTH" images
echo "== berth history hello"
"$BERTH" history hello
