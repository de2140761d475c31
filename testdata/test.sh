#!/usr/bin/env bash
# Runs every check and test of the workspace, from a clean clone.
# Installs what the tests need first (apt packages when run as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# System packages the test suite uses. Kept in one place so CI and a fresh
# machine install the same set.
APT_PACKAGES=(ca-certificates busybox-static skopeo umoci tar gzip bzip2 xz-utils zstd docker-registry apache2-utils openssl runc slirp4netns curl bsdutils iproute2 uidmap docker.io netavark aardvark-dns iptables python3-docker docker-compose)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi
# Rootless containers reach out through slirp4netns, which opens the tun
# device as the user: Debian's udev rule makes it 0666; some sandboxes leave
# it 0600.
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then
  chmod 0666 /dev/net/tun || true
fi
# The API's SDK clients from PyPI, on the python3 of PATH (Debian's
# python3-docker 5 and docker-compose use /usr/bin/python3), and the
# Kubernetes schema check `compose convert` is tested with.
if ! python3 -c 'import docker, testcontainers, httpx, kubernetes_validate, sys; sys.exit(not docker.__version__.startswith("7."))' 2>/dev/null; then
  python3 -m pip install -q "docker>=7,<8" testcontainers httpx kubernetes-validate
fi
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

# The conformance corpus lives beside the checkout (../shared/conformance).
if [ -z "${BERTH_CONFORMANCE:-}" ] && [ ! -d ../shared/conformance ]; then
  echo "test.sh: ../shared/conformance is missing; set BERTH_CONFORMANCE to its path" >&2
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Every test binary runs, so one failure does not hide the rest.
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
# One closing line for the whole suite (the last cargo line is a doc-test run).
echo
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

# The differential check: every build case built with berth and with
# BuildKit (Debian's docker.io, a private dockerd without bridge or iptables
# rules), compared file by file; differences that are the peer's age are
# listed in testdata/conformance/peer-age.tsv. Needs root (CI runs as root).
if [ "$(id -u)" = 0 ]; then
  echo "== differential build check against BuildKit"
  bash testdata/conformance/diff.sh target/debug/berth
else
  echo "== differential build check skipped: dockerd needs root"
fi
