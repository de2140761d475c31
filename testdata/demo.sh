#!/usr/bin/env bash
# The main job end to end on a fresh machine: build berth, make the offline
# busybox base image, then work on the example project testdata/examples/hello.
#
# Until the builder lands, "work on" means: import the base image into a store,
# show it, save it and load it back, run a container from it, and parse the
# example's Dockerfile. This
# script becomes `berth build -t hello testdata/examples/hello` and
# `berth run --rm hello` as the runner and builder arrive.
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
echo "== berth images"
"$BERTH" images
echo "== berth save busybox | berth load (into a second store)"
"$BERTH" save busybox:latest | "$BERTH" --root "$BERTH_ROOT-copy" load
"$BERTH" --root "$BERTH_ROOT-copy" inspect busybox:latest | grep '"Id"'
echo "== berth run --rm busybox (a real container: own namespaces, docker's capability set)"
"$BERTH" run --rm busybox sh -c 'echo "hello from $(hostname), pid $$, as $(id -un)"'
echo "== berth parse $example/Dockerfile"
"$BERTH" parse "$example/Dockerfile"
