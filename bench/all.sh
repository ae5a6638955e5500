#!/usr/bin/env bash
# Every end-to-end benchmark, one after another, on every kind of data: the official
# figures in one command (serve.sh, the read path, loads one incompressible blob and a
# manifest). Each script writes its report to bench/runs/ (see bench/lib.sh).
#
#   bash bench/all.sh                           # RUNS=3 DATA="text random real"
#   RUNS=5 bash bench/all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for s in push copy pull compress registry serve; do
  echo "== bench/$s.sh" >&2
  bash "bench/$s.sh"
done
