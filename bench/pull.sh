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

RUNS=${RUNS:-5}
LAYERS=${LAYERS:-10}
SIZE=${SIZE:-50MiB}
SEED=${SEED:-1}
JOBS=${JOBS:-4}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
W=$(mktemp -d /tmp/hoist-pullbench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench/pull.sh: $1 not found ($2)" >&2; exit 1; }; }
need skopeo "apt-get install skopeo"
need curl "apt-get install curl"
need unshare "util-linux"
[ -x /usr/bin/time ] || { echo "bench/pull.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[ -x "$REGISTRY_BIN" ] || { echo "bench/pull.sh: $REGISTRY_BIN not found (apt-get install docker-registry)" >&2; exit 1; }

echo "building hoist (release)..." >&2
cargo build --release -q -p hoist
HOIST=$PWD/target/release/hoist

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
root=$W/reg
mkdir -p "$root"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$root/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $root/data}, cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:$port}
YML
"$REGISTRY_BIN" serve "$root/config.yml" >/dev/null 2>&1 &
PIDS+=($!)
REG=127.0.0.1:$port
for _ in $(seq 100); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
# a second registry, for registry-to-registry copies (streamed: no mount possible)
root2=$W/reg2
mkdir -p "$root2"
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s#$root/data#$root2/data#" -e "s#127.0.0.1:$port#127.0.0.1:$port2#" "$root/config.yml" >"$root2/config.yml"
"$REGISTRY_BIN" serve "$root2/config.yml" >/dev/null 2>&1 &
PIDS+=($!)
REG2=127.0.0.1:$port2
for _ in $(seq 100); do curl -fsS "http://$REG2/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
skopeo --insecure-policy copy -q --dest-tls-verify=false "$OCI" "docker://$REG/bench/pull:v1" >&2
BLOB_BYTES=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
  "http://$REG/v2/bench/pull/manifests/v1" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))')

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
  timed skopeo-copy unshare -m sh -c 'mkdir -p /var/lib/containers/cache && mount -t tmpfs tmpfs /var/lib/containers/cache && exec "$@"' sh \
    skopeo --insecure-policy copy -q --src-tls-verify=false --dest-tls-verify=false \
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
