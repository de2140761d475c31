#!/usr/bin/env bash
# The main job end to end on a fresh machine: build berth, then run it on the
# example project in testdata/examples/hello.
#
# Until the builder lands, "run it" means parsing the example's Dockerfile;
# this script grows into `berth build -t hello testdata/examples/hello` and
# `berth run --rm hello` as the store, runner and builder arrive.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p berth-cli
BERTH=target/release/berth
example=testdata/examples/hello

echo "== berth parse $example/Dockerfile"
"$BERTH" parse "$example/Dockerfile"
echo "== berth parse --dump $example/Dockerfile"
"$BERTH" parse --dump "$example/Dockerfile"
