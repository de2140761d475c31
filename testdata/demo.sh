#!/usr/bin/env bash
# The main job end to end on a fresh machine: build berth, make the offline
# busybox base image, build the example project testdata/examples/hello with
# `berth build` and run the result with `berth run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
for p in busybox-static docker-registry; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
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

if command -v docker-registry >/dev/null; then
  # A local registry on 127.0.0.1: push what was built, pull it into an
  # empty store and run it from there.
  reg_dir="$(mktemp -d)"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$reg_dir/data" "$port" > "$reg_dir/config.yml"
  docker-registry serve "$reg_dir/config.yml" > "$reg_dir/log" 2>&1 &
  reg_pid=$!
  trap 'kill $reg_pid 2>/dev/null; rm -rf "$reg_dir"' EXIT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  echo "== berth push 127.0.0.1:$port/demo/hello"
  "$BERTH" tag hello "127.0.0.1:$port/demo/hello"
  "$BERTH" push "127.0.0.1:$port/demo/hello"
  echo "== berth pull into an empty store, then run it"
  pulled="$(mktemp -d)"
  BERTH_ROOT="$pulled" "$BERTH" pull "127.0.0.1:$port/demo/hello"
  BERTH_ROOT="$pulled" "$BERTH" run --rm "127.0.0.1:$port/demo/hello"
  rm -rf "$pulled"
fi
