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

RUNS=${RUNS:-3}
LAYERS=${LAYERS:-10}
SIZE=${SIZE:-50MiB}
SEED=${SEED:-1}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
# Extra flags for hoist push (e.g. HOIST_FLAGS="--level 2").
HOIST_FLAGS=${HOIST_FLAGS:-}
W=$(mktemp -d /tmp/hoist-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench/push.sh: $1 not found ($2)" >&2; exit 1; }; }
need skopeo "apt-get install skopeo"
need unshare "util-linux"
[ -x /usr/bin/time ] || { echo "bench/push.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[ -x "$REGISTRY_BIN" ] || { echo "bench/push.sh: $REGISTRY_BIN not found (apt-get install docker-registry)" >&2; exit 1; }

echo "building hoist (release)..." >&2
cargo build --release -q -p hoist
HOIST=$PWD/target/release/hoist

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
  local root; root=$(mktemp -d "$W/reg.XXXXXX")
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$root/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $root/data}, delete: {enabled: true}, cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:$port}
YML
  "$REGISTRY_BIN" serve "$root/config.yml" >/dev/null 2>&1 &
  PIDS+=($!)
  REG=127.0.0.1:$port
  for _ in $(seq 100); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "registry did not start" >&2; exit 1
}
stop_registries() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  rm -rf "$W"/reg.*
}

# timed LABEL CMD...: appends "LABEL wall_s rss_kib" to $W/results
timed() {
  local label=$1; shift
  /usr/bin/time -v -o "$W/time.txt" "$@" >"$W/out.txt" 2>"$W/err.txt" || {
    echo "FAILED: $label" >&2; cat "$W/err.txt" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2,a,":"); if (length(a)==3) print a[1]*3600+a[2]*60+a[3]; else print a[1]*60+a[2]}' "$W/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
  echo "$label $wall $rss" >>"$W/results"
}

# Sum of layer sizes of the manifest at REG/REPO:TAG.
blob_bytes() {
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/$1/manifests/$2" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))'
}

# skopeo in a private mount namespace with an empty blob-info cache for the whole script
skopeo_ns() {
  unshare -m sh -c 'mkdir -p /var/lib/containers/cache && mount -t tmpfs tmpfs /var/lib/containers/cache && mkdir -p '"$W"'/skopeo-home && HOME='"$W"'/skopeo-home exec "$@"' sh "$@"
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
  for pair in "skopeo-cold t1" "skopeo-repush t2"; do
    set -- $pair
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2,a,":"); print a[1]*60+a[2]}' "$W/$2.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/$2.txt")
    echo "$1 $wall $rss" >>"$W/results"
  done
  echo "skopeo-blobs $(blob_bytes bench/skopeo v1) 0" >>"$W/results"
  stop_registries
  start_registry
  skopeo_ns /usr/bin/time -v -o "$W/t3.txt" skopeo copy -q --dest-tls-verify=false "$OCI" "docker://$REG/bench/layout:v1" \
    >"$W/out.txt" 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2,a,":"); print a[1]*60+a[2]}' "$W/t3.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/t3.txt")
  echo "skopeo-layout $wall $rss" >>"$W/results"
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
