#!/usr/bin/env bash
# Build prerequisites on a fresh Debian 12 machine (as root): a C toolchain and what ISA-L's
# bundled source needs to build (nasm, autoconf, automake, libtool, make). Rust itself is
# expected (rustup). Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v make >/dev/null || need+=(make)
command -v nasm >/dev/null || need+=(nasm)
command -v autoconf >/dev/null || need+=(autoconf)
command -v automake >/dev/null || need+=(automake)
command -v libtoolize >/dev/null || need+=(libtool)
# Extra packages from the caller (scripts/test.sh adds the test peers).
need+=("$@")
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
