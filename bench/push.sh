#!/usr/bin/env bash
# End-to-end push benchmark: the same docker-save tarball (10 layers x 50 MiB of
# compressible text by default) pushed to the distribution registry by hoist, skopeo
# and (when on PATH) crane, in one run, so the ratios compare like with like.
#
#   bash bench/push.sh            # RUNS=3 LAYERS=10 SIZE=50MiB by default
#   RUNS=1 LAYERS=4 SIZE=16MiB bash bench/push.sh
#
# Measures, per tool: cold push (empty registry, empty caches), re-push (every blob
# present; hoist with its content cache, skopeo with its blob-info cache warm), and a
# push from an OCI layout (pre-compressed blobs). Wall time and peak RSS come from
# /usr/bin/time -v; blob sizes from the manifests the registry serves.
#
# skopeo keeps a host-wide blob-info cache as root (/var/lib/containers/cache): each
# skopeo session runs in a private mount namespace (unshare -m) with a fresh tmpfs
# there, or its "cold" pushes would be cache hits.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RUNS=${RUNS:-3}
LAYERS=${LAYERS:-10}
SIZE=${SIZE:-50MiB}
SEED=${SEED:-1}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
# Extra flags for hoist push (e.g. HOIST_FLAGS="--level 2").
HOIST_FLAGS=${HOIST_FLAGS:-}
bench_workdir hoist-bench

need skopeo "apt-get install skopeo"
need unshare "util-linux"
need_time
need_registry

echo "building hoist (release)..." >&2
build_hoist

# ---- the image ----
MK=/work/shared/bench/mkimage.py
if [ -f "$MK" ]; then
  echo "making the image with mkimage.py ($LAYERS x $SIZE text)..." >&2
  python3 "$MK" --layers "$LAYERS" --layer-size "$SIZE" --mode text --seed "$SEED" "$W/img.tar" --oci "$W/img.oci" >&2
  OCI="oci:$W/img.oci"
else
  echo "making the image with hoist random ($LAYERS x $SIZE text)..." >&2
  "$HOIST" random "docker-archive:$W/img.tar" --layers "$LAYERS" --size "${SIZE%iB}" --mode text --seed "$SEED" >/dev/null
  "$HOIST" random "oci:$W/img.oci:bench" --layers "$LAYERS" --size "${SIZE%iB}" --mode text --seed "$SEED" >/dev/null
  OCI="oci:$W/img.oci:bench"
fi
TAR_BYTES=$(stat -c %s "$W/img.tar")

# ---- a fresh distribution registry per measurement ----
REG=""
start_registry() {
  start_distribution REG "$(mktemp -d "$W/reg.XXXXXX")" "delete: {enabled: true}, "
  wait_v2 "$REG" && return
  echo "registry did not start" >&2; exit 1
}
stop_registries() {
  kill_servers
  PIDS=()
  rm -rf "$W"/reg.*
}

# Sum of layer sizes of the manifest at REG/REPO:TAG.
blob_bytes() { registry_layer_bytes "$REG" "$1" "$2"; }

# skopeo in a private mount namespace with an empty blob-info cache for the whole script
skopeo_ns() {
  mkdir -p "$W/skopeo-home"
  "${NO_BLOB_CACHE[@]}" env HOME="$W/skopeo-home" "$@"
}

: >"$W/results"
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS" >&2
  # hoist: cold (empty cache), re-push (warm cache), from the layout
  start_registry
  rm -rf "$W/cache"
  timed hoist-cold env HOIST_CACHE_DIR="$W/cache" "$HOIST" push --quiet $HOIST_FLAGS "docker-archive:$W/img.tar" "$REG/bench/hoist:v1"
  echo "hoist-blobs $(blob_bytes bench/hoist v1) 0" >>"$W/results"
  timed hoist-repush env HOIST_CACHE_DIR="$W/cache" "$HOIST" push --quiet $HOIST_FLAGS "docker-archive:$W/img.tar" "$REG/bench/hoist:v1"
  stop_registries
  start_registry
  timed hoist-layout env HOIST_CACHE_DIR="$W/cache" "$HOIST" push --quiet "$OCI" "$REG/bench/layout:v1"
  stop_registries

  # skopeo: cold and warm re-push in one namespace (its cache persists between them)
  start_registry
  cat >"$W/skopeo-two.sh" <<SH
set -e
/usr/bin/time -v -o "$W/t1.txt" skopeo copy -q --dest-tls-verify=false docker-archive:$W/img.tar docker://$REG/bench/skopeo:v1
/usr/bin/time -v -o "$W/t2.txt" skopeo copy -q --dest-tls-verify=false docker-archive:$W/img.tar docker://$REG/bench/skopeo:v1
SH
  skopeo_ns sh "$W/skopeo-two.sh" >"$W/out.txt" 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
  time_row skopeo-cold "$W/t1.txt"
  time_row skopeo-repush "$W/t2.txt"
  echo "skopeo-blobs $(blob_bytes bench/skopeo v1) 0" >>"$W/results"
  stop_registries
  start_registry
  skopeo_ns /usr/bin/time -v -o "$W/t3.txt" skopeo copy -q --dest-tls-verify=false "$OCI" "docker://$REG/bench/layout:v1" \
    >"$W/out.txt" 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
  time_row skopeo-layout "$W/t3.txt"
  stop_registries

  if command -v crane >/dev/null; then
    start_registry
    timed crane-cold crane push --insecure "$W/img.tar" "$REG/bench/crane:v1"
    stop_registries
    start_registry
    timed crane-layout crane push --insecure "$W/img.oci" "$REG/bench/crane:layout"
    stop_registries
  fi
done

# ---- report: medians ----
python3 - "$W/results" "$TAR_BYTES" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, wall, rss = line.split()
    rows[k].append((float(wall), int(rss)))
tar = int(sys.argv[2])
med = lambda k, i: statistics.median(v[i] for v in rows[k]) if k in rows else None
print(f"image: docker-save tarball {tar/2**20:.0f} MiB; medians of {len(rows['hoist-cold'])} run(s)")
print(f"{'measurement':<16}{'wall s':>9}{'peak RSS MiB':>14}")
for k in ["hoist-cold","skopeo-cold","crane-cold","hoist-repush","skopeo-repush","hoist-layout","skopeo-layout","crane-layout"]:
    if k in rows:
        print(f"{k:<16}{med(k,0):>9.2f}{med(k,1)/1024:>14.1f}")
hb, sb = med("hoist-blobs",0), med("skopeo-blobs",0)
print(f"layer bytes in the registry: hoist {hb/2**20:.1f} MiB, skopeo {sb/2**20:.1f} MiB (hoist/skopeo {hb/sb:.3f})")
def ratio(a, b):
    if a in rows and b in rows:
        print(f"{b} / {a}: {med(b,0)/med(a,0):.2f}x")
ratio("hoist-cold","skopeo-cold"); ratio("hoist-cold","crane-cold")
ratio("hoist-repush","skopeo-repush"); ratio("hoist-layout","skopeo-layout"); ratio("hoist-layout","crane-layout")
PY
