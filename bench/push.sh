#!/usr/bin/env bash
# End-to-end push benchmark: the same images pushed to the distribution registry by hoist,
# skopeo and (when on PATH) crane, in one run, on each kind of data (bench/lib.sh: text,
# random, real), so the ratios compare like with like.
#
#   bash bench/push.sh                          # DATA="text random real" RUNS=3
#   DATA=real RUNS=5 bash bench/push.sh
#   HOIST_FLAGS="--level 6" DATA=text bash bench/push.sh
#
# Per kind and run, each into a fresh, empty registry:
# - cold push of the docker-save tarball (uncompressed layers: every tool compresses;
#   hoist with an empty content cache, skopeo with an empty blob-info cache);
# - re-push of the same tarball into the same registry (hoist with its cache warm,
#   skopeo with its blob-info cache warm; crane has no cache and is not measured);
# - push from an OCI layout (gzip layers: nothing to compress).
# Reported: wall time, the client's CPU (user+system), the registry's CPU meanwhile, peak
# RSS, and the layer bytes each tool left in the registry.
#
# skopeo keeps a host-wide blob-info cache as root (/var/lib/containers/cache): each
# skopeo session runs in a private mount namespace (unshare -m) with a fresh tmpfs
# there, or its "cold" pushes would be cache hits.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

# Extra flags for hoist push (e.g. HOIST_FLAGS="--level 6").
HOIST_FLAGS=${HOIST_FLAGS:-}
BENCH_ENV=${HOIST_FLAGS:+HOIST_FLAGS=\"$HOIST_FLAGS\" }

need skopeo "apt-get install skopeo"
need unshare "util-linux"
need python3 "apt-get install python3"
need_time
need_registry
bench_workdir hoist-push
build_hoist
: >"$W/results"

# fresh_registry: a new, empty registry; sets REG, and SERVERS to its pid.
fresh_registry() {
  kill_servers
  rm -rf "$W/reg"
  start_distribution REG "$W/reg" "delete: {enabled: true}, "
  SERVERS=$REG_PID
}

# skopeo in a private mount namespace with an empty blob-info cache.
skopeo_ns() { "${NO_BLOB_CACHE[@]}" env HOME="$W/skopeo-home" "$@"; }

for kind in $DATA; do
  rm -rf "$W/img"
  make_image "$kind" "$W/img"
  IMG=$W/img/img.tar
  OCI=$W/img/img.oci
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    # hoist: cold (empty cache), then re-push (warm cache)
    fresh_registry
    rm -rf "$W/cache"
    # shellcheck disable=SC2086
    timed "$kind" hoist-cold "$run" env HOIST_CACHE_DIR="$W/cache" "$HOIST" push --quiet $HOIST_FLAGS "docker-archive:$IMG" "$REG/bench/hoist:v1"
    if [ "$run" = 1 ]; then fact "$kind" blobs_hoist "$(registry_layer_bytes "$REG" bench/hoist v1)"; fi
    # shellcheck disable=SC2086
    timed "$kind" hoist-repush "$run" env HOIST_CACHE_DIR="$W/cache" "$HOIST" push --quiet $HOIST_FLAGS "docker-archive:$IMG" "$REG/bench/hoist:v1"

    # skopeo: cold and warm re-push in one namespace (its cache persists between them)
    fresh_registry
    rm -rf "$W/skopeo-home"
    cat >"$W/skopeo-two.sh" <<SH
set -e
/usr/bin/time -f '%e %U %S %M' -o "$W/t1.txt" skopeo copy -q --dest-tls-verify=false docker-archive:$IMG docker://$REG/bench/skopeo:v1
echo \$(awk '{print \$14 + \$15}' /proc/$REG_PID/stat) >"$W/s1.txt"
/usr/bin/time -f '%e %U %S %M' -o "$W/t2.txt" skopeo copy -q --dest-tls-verify=false docker-archive:$IMG docker://$REG/bench/skopeo:v1
SH
    s0=$(server_ticks)
    skopeo_ns sh "$W/skopeo-two.sh" >"$W/out.txt" 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
    s2=$(server_ticks)
    s1=$(cat "$W/s1.txt")
    time_row "$kind" skopeo-cold "$run" "$W/t1.txt" "$s0" "$s1"
    time_row "$kind" skopeo-repush "$run" "$W/t2.txt" "$s1" "$s2"
    if [ "$run" = 1 ]; then fact "$kind" blobs_skopeo "$(registry_layer_bytes "$REG" bench/skopeo v1)"; fi

    if have_crane; then
      fresh_registry
      timed "$kind" crane-cold "$run" crane push --insecure "$IMG" "$REG/bench/crane:v1"
      if [ "$run" = 1 ]; then fact "$kind" blobs_crane "$(registry_layer_bytes "$REG" bench/crane v1)"; fi
    fi

    # from the layout: nothing to compress
    fresh_registry
    rm -rf "$W/cache"
    timed "$kind" hoist-layout "$run" env HOIST_CACHE_DIR="$W/cache" "$HOIST" push --quiet "oci:$OCI:bench" "$REG/bench/layout:v1"
    fresh_registry
    timed "$kind" skopeo-layout "$run" "${NO_BLOB_CACHE[@]}" skopeo copy -q --dest-tls-verify=false "oci:$OCI:bench" "docker://$REG/bench/layout:v1"
    if have_crane; then
      fresh_registry
      timed "$kind" crane-layout "$run" crane push --insecure "$OCI" "$REG/bench/layout:v1"
    fi
    kill_servers
  done
  python3 - "$W/facts" "$kind" >>"$W/facts" <<'PY'
import sys
f = {}
for line in open(sys.argv[1]):
    k, key, v = line.rstrip("\n").split(" ", 2)
    if k == sys.argv[2]:
        f[key] = v
h = int(f['blobs_hoist'])
for peer in ["skopeo", "crane"]:
    if f"blobs_{peer}" in f:
        print(f"{sys.argv[2]} blobs_hoist/{peer} {h / int(f['blobs_' + peer]):.3f}")
PY
done

report "Push: hoist vs skopeo and crane into distribution" \
  "hoist-cold:skopeo-cold hoist-cold:crane-cold hoist-repush:skopeo-repush hoist-layout:skopeo-layout hoist-layout:crane-layout"
