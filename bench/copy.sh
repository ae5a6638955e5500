#!/usr/bin/env bash
# Registry-to-registry copy benchmark: an image in one distribution registry copied to
# another, fresh and empty one (no blob there, no mount possible) by hoist, skopeo and
# (when on PATH) crane, in one run, on each kind of data (bench/lib.sh).
#
#   bash bench/copy.sh                          # DATA="text random real" RUNS=3
#   DATA=text RUNS=5 bash bench/copy.sh
#
# The image is pushed once to the source registry (by hoist, gzip level 6 from the
# layout) and read once untimed (the source's blobs in the page cache). Each copy then
# goes to a new destination registry. Reported: wall time, the client's CPU, the CPU of
# both registries meanwhile (the source serves every byte, the destination hashes and
# stores it), peak RSS. One more line per kind: hoist's repeat copy into another
# repository of the same destination registry (every blob mounted).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need skopeo "apt-get install skopeo"
need unshare "util-linux"
need python3 "apt-get install python3"
need_time
need_registry
bench_workdir hoist-copy
build_hoist
: >"$W/results"

for kind in $DATA; do
  kill_servers
  rm -rf "$W/img" "$W/src"
  make_image "$kind" "$W/img"
  start_distribution SRC "$W/src"
  SRC_PID_KEEP=$SRC_PID
  "$HOIST" push --no-cache --quiet "oci:$W/img/img.oci:bench" "$SRC/bench/img:v1" >/dev/null
  "$HOIST" pull --no-cache --quiet "$SRC/bench/img:v1" "oci:$W/warm" >/dev/null
  rm -rf "$W/warm"
  fact "$kind" blobs_in_source "$(registry_layer_bytes "$SRC" bench/img v1)"
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    for tool in hoist skopeo crane; do
      [ "$tool" = crane ] && ! have_crane && continue
      rm -rf "$W/dst"
      start_distribution DST "$W/dst"
      SERVERS="$SRC_PID_KEEP $DST_PID"
      d0=$(cpu_ticks "$DST_PID")
      case $tool in
        hoist) timed "$kind" hoist "$run" env HOIST_CACHE_DIR="$W/hcache" "$HOIST" copy "docker://$SRC/bench/img:v1" "docker://$DST/bench/copy:v1" ;;
        # skopeo's blob-info cache (host-wide as root) would remember an earlier
        # destination: each copy gets an empty one (private tmpfs).
        skopeo) timed "$kind" skopeo "$run" "${NO_BLOB_CACHE[@]}" skopeo --insecure-policy copy -q \
          --src-tls-verify=false --dest-tls-verify=false "docker://$SRC/bench/img:v1" "docker://$DST/bench/copy:v1" ;;
        crane) timed "$kind" crane "$run" crane copy --insecure "$SRC/bench/img:v1" "$DST/bench/copy:v1" ;;
      esac
      echo "$kind $tool $(( $(cpu_ticks "$DST_PID") - d0 ))" >>"$W/dst-ticks"
      if [ "$run" = 1 ] && [ "$tool" = hoist ]; then
        # the same copy again, into another repository of the same destination: hoist
        # remembers (in its cache directory) where it pushed each blob, and mounts
        timed "$kind" hoist-mount "$run" env HOIST_CACHE_DIR="$W/hcache" "$HOIST" copy "docker://$SRC/bench/img:v1" "docker://$DST/bench/again:v1"
      fi
      rm -rf "$W/hcache"
      SERVERS=
      kill "$DST_PID"; wait "$DST_PID" 2>/dev/null || true
      PIDS=("$SRC_PID_KEEP")
    done
  done
  python3 - "$W/dst-ticks" "$kind" "$TCK" >>"$W/facts" <<'PY'
import collections, statistics, sys
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kind, tool, ticks = line.split()
    if kind == sys.argv[2]:
        t[tool].append(int(ticks) / int(sys.argv[3]))
for tool, v in t.items():
    print(f"{sys.argv[2]} destination_registry_cpu_s_{tool} {statistics.median(v):.2f} (median; the rest of the registry CPU is the source's)")
PY
done

report "Registry to registry copy: hoist vs skopeo and crane, distribution to a fresh distribution" \
  "hoist:skopeo hoist:crane"
