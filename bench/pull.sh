#!/usr/bin/env bash
# End-to-end pull benchmark: the 500 MiB test image (10 layers x 50 MiB of text, about
# 146 MB gzip) in the distribution registry, pulled into an OCI layout by hoist, skopeo
# and (when on PATH) crane, in one run, so the ratios compare like with like.
#
#   bash bench/pull.sh                      # RUNS=5 LAYERS=10 SIZE=50MiB
#   RUNS=1 LAYERS=4 SIZE=16MiB bash bench/pull.sh
#
# Each pull goes to a fresh directory; runs alternate between the tools. hoist runs with
# a fresh content cache (pulled layers are hard-linked into it) and verifies every byte
# (size and sha256 of every blob, as it streams). Wall time and peak RSS come from
# /usr/bin/time -v. Also measured: a registry-to-registry copy of the same image to a
# second distribution registry (hoist copy vs skopeo copy). The image is pushed once, by skopeo, from mkimage.py's OCI layout
# (or hoist random when mkimage.py is not there).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RUNS=${RUNS:-5}
LAYERS=${LAYERS:-10}
SIZE=${SIZE:-50MiB}
SEED=${SEED:-1}
JOBS=${JOBS:-4}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
bench_workdir hoist-pullbench

need skopeo "apt-get install skopeo"
need curl "apt-get install curl"
need unshare "util-linux"
need_time
need_registry

echo "building hoist (release)..." >&2
build_hoist

# ---- the image, as an OCI layout ----
MK=/work/shared/bench/mkimage.py
if [ -f "$MK" ]; then
  echo "making the image with mkimage.py ($LAYERS x $SIZE text)..." >&2
  python3 "$MK" -q --layers "$LAYERS" --layer-size "$SIZE" --mode text --seed "$SEED" - --oci "$W/img.oci" >&2
  OCI="oci:$W/img.oci"
else
  echo "making the image with hoist random ($LAYERS x $SIZE text)..." >&2
  "$HOIST" random "oci:$W/img.oci:bench" --layers "$LAYERS" --size "${SIZE%iB}" --mode text --seed "$SEED" >/dev/null
  OCI="oci:$W/img.oci:bench"
fi

# ---- one distribution registry, the image pushed once ----
start_distribution REG "$W/reg"
wait_v2 "$REG" || true
# a second registry, for registry-to-registry copies (streamed: no mount possible)
start_distribution REG2 "$W/reg2"
wait_v2 "$REG2" || true
skopeo --insecure-policy copy -q --dest-tls-verify=false "$OCI" "docker://$REG/bench/pull:v1" >&2
BLOB_BYTES=$(registry_layer_bytes "$REG" bench/pull v1)

: >"$W/results"
# one warm-up pull each (page cache of the registry's blobs), not counted
"$HOIST" --no-cache pull "$REG/bench/pull:v1" "oci:$W/warm" >/dev/null; rm -rf "$W/warm"
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS" >&2
  rm -rf "$W/h" "$W/hc" "$W/s" "$W/c" "$W/cache"
  timed hoist env HOIST_CACHE_DIR="$W/cache" "$HOIST" pull --jobs "$JOBS" "$REG/bench/pull:v1" "oci:$W/h"
  timed hoist-nocache "$HOIST" --no-cache pull --jobs "$JOBS" "$REG/bench/pull:v1" "oci:$W/hc"
  timed skopeo skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$REG/bench/pull:v1" "oci:$W/s:v1"
  # registry to registry, a new repository each run (every blob streamed through)
  timed hoist-copy "$HOIST" --no-cache copy "docker://$REG/bench/pull:v1" "docker://$REG2/bench/copy$run:v1"
  # skopeo's blob-info cache (host-wide as root) would remember the previous run's
  # destination and mount from it: each skopeo copy gets an empty one (private tmpfs).
  timed skopeo-copy "${NO_BLOB_CACHE[@]}" skopeo --insecure-policy copy -q --src-tls-verify=false --dest-tls-verify=false \
    "docker://$REG/bench/pull:v1" "docker://$REG2/bench/skopeo$run:v1"
  if command -v crane >/dev/null; then
    timed crane crane pull --insecure --format oci "$REG/bench/pull:v1" "$W/c"
  fi
done
# the last pulls are checked: hoist's layout validates, and has skopeo's manifest digest
"$HOIST" validate "oci:$W/h" >&2
[ "$("$HOIST" digest "oci:$W/h:v1")" = "$("$HOIST" digest "oci:$W/s:v1")" ] || { echo "digests differ" >&2; exit 1; }

# ---- report: medians ----
python3 - "$W/results" "$BLOB_BYTES" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, wall, rss = line.split()
    rows[k].append((float(wall), int(rss)))
blob = int(sys.argv[2])
med = lambda k, i: statistics.median(v[i] for v in rows[k])
print(f"image: {blob/1e6:.0f} MB of layers in the registry; medians of {len(rows['hoist'])} run(s)")
print(f"{'tool':<16}{'wall s':>9}{'MB/s':>9}{'peak RSS MiB':>14}")
for k in ["hoist", "hoist-nocache", "skopeo", "crane", "hoist-copy", "skopeo-copy"]:
    if k in rows:
        print(f"{k:<16}{med(k,0):>9.2f}{blob/1e6/med(k,0):>9.0f}{med(k,1)/1024:>14.1f}")
for other in ["skopeo", "crane"]:
    if other in rows:
        print(f"{other} / hoist: {med(other,0)/med('hoist',0):.2f}x")
if "skopeo-copy" in rows:
    print(f"registry to registry, skopeo / hoist: {med('skopeo-copy',0)/med('hoist-copy',0):.2f}x")
PY
