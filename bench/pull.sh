#!/usr/bin/env bash
# End-to-end pull benchmark: an image in the distribution registry pulled into an OCI
# layout by hoist, skopeo and (when on PATH) crane, in one run, on each kind of data
# (bench/lib.sh), so the ratios compare like with like.
#
#   bash bench/pull.sh                          # DATA="text random real" RUNS=3
#   DATA=text RUNS=5 JOBS=4 bash bench/pull.sh
#
# The image is pushed once (by hoist, gzip level 6 from the layout) and pulled once
# untimed (its blobs in the page cache). Each pull goes to a fresh directory. hoist runs
# with a fresh content cache (pulled layers are hard-linked into it) and without one; it
# verifies every byte (size and sha256 of every blob, as it streams). The last pulls are
# checked: hoist's layout validates and has skopeo's manifest digest.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

JOBS=${JOBS:-4}
BENCH_ENV="JOBS=$JOBS "

need skopeo "apt-get install skopeo"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need_time
need_registry
bench_workdir hoist-pull
build_hoist
: >"$W/results"

for kind in $DATA; do
  kill_servers
  rm -rf "$W/img" "$W/reg"
  make_image "$kind" "$W/img"
  start_distribution REG "$W/reg"
  SERVERS=$REG_PID
  "$HOIST" push --no-cache --quiet "oci:$W/img/img.oci:bench" "$REG/bench/pull:v1" >/dev/null
  fact "$kind" blobs_in_registry "$(registry_layer_bytes "$REG" bench/pull v1)"
  "$HOIST" pull --no-cache --quiet "$REG/bench/pull:v1" "oci:$W/warm" >/dev/null
  rm -rf "$W/warm"
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    rm -rf "$W/h" "$W/hc" "$W/s" "$W/c" "$W/cache"
    timed "$kind" hoist "$run" env HOIST_CACHE_DIR="$W/cache" "$HOIST" pull --jobs "$JOBS" "$REG/bench/pull:v1" "oci:$W/h"
    timed "$kind" hoist-nocache "$run" "$HOIST" pull --no-cache --jobs "$JOBS" "$REG/bench/pull:v1" "oci:$W/hc"
    timed "$kind" skopeo "$run" skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$REG/bench/pull:v1" "oci:$W/s:v1"
    if have_crane; then
      timed "$kind" crane "$run" crane pull --insecure --format oci "$REG/bench/pull:v1" "$W/c"
    fi
  done
  "$HOIST" validate "oci:$W/h" >&2
  [ "$("$HOIST" digest "oci:$W/h:v1")" = "$("$HOIST" digest "oci:$W/s:v1")" ] || { echo "$BENCH: hoist and skopeo pulled other digests" >&2; exit 1; }
done

report "Pull to an OCI layout: hoist vs skopeo and crane, from distribution" \
  "hoist:skopeo hoist:crane hoist-nocache:skopeo"
