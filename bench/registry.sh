#!/usr/bin/env bash
# Push ~500 MiB of incompressible, already-gzipped layers from an OCI layout with skopeo
# (oci: -> docker://) to `hoist serve` and to the distribution registry, in one run, and
# report wall time, throughput and server CPU time (from /proc/PID/stat) for each.
#
#   bash bench/registry.sh            # 10 x 50 MiB layers, 3 rounds each, alternating
#   LAYERS=5 SIZE=100M ROUNDS=1 bash bench/registry.sh
#
# Needs: skopeo, /usr/bin/docker-registry, cargo; root for `unshare -m` (skopeo's blob-info
# cache, host-wide as root, is hidden under a private tmpfs per push, so no run learns from
# another). The image is made with /work/shared/bench/mkimage.py when present, otherwise
# with `hoist random` (same shape: gzip layers of random bytes).
# BENCH_DIR (default: a new temp dir) holds the image and both registries' storage.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LAYERS=${LAYERS:-10}
SIZE=${SIZE:-50M}
ROUNDS=${ROUNDS:-3}
MKIMAGE=${MKIMAGE:-/work/shared/bench/mkimage.py}
DIST=/usr/bin/docker-registry

command -v skopeo >/dev/null || { echo "skopeo not found (apt-get install skopeo)" >&2; exit 1; }
[ -x "$DIST" ] || { echo "$DIST not found (apt-get install docker-registry)" >&2; exit 1; }

build_hoist

WORK=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

IMG=$WORK/img.oci
if [ ! -f "$IMG/index.json" ]; then
  if [ -f "$MKIMAGE" ]; then
    python3 "$MKIMAGE" --layers "$LAYERS" --layer-size "${SIZE}iB" --mode random --seed 1 \
      "$WORK/img.tar" --oci "$IMG" >/dev/null
    rm -f "$WORK/img.tar"
  else
    "$HOIST" random "oci:$IMG:bench" --layers "$LAYERS" --size "$SIZE" --seed 1 >/dev/null
  fi
fi
# The layout's one image, by its ref name (mkimage and hoist random both set one).
REF=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifests"][0]; print(m.get("annotations",{}).get("org.opencontainers.image.ref.name",""))' "$IMG/index.json")
SRC="oci:$IMG${REF:+:$REF}"
BYTES=$(du -sb "$IMG/blobs" | cut -f1)

wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/v2/" && return 0; sleep 0.1; done; echo "no answer on $1" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

start_hoist() {
  local port; port=$(free_port)
  rm -rf "$WORK/hoist-root"
  # The access log (one line per request, as distribution writes) goes to a file.
  "$HOIST" serve --addr "127.0.0.1:$port" --root "$WORK/hoist-root" >/dev/null 2>>"$WORK/hoist-serve.log" &
  SERVER_PID=$!; pids+=("$SERVER_PID"); SERVER_PORT=$port; wait_port "$port"
}
start_distribution() {
  local port; port=$(free_port)
  rm -rf "$WORK/dist-root"; mkdir -p "$WORK/dist-root"
  cat >"$WORK/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/dist-root}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
  "$DIST" serve "$WORK/dist.yml" >/dev/null 2>&1 &
  SERVER_PID=$!; pids+=("$SERVER_PID"); SERVER_PORT=$port; wait_port "$port"
}

push() { # $1: port, $2: repo — skopeo with a private, empty blob-info cache
  "${NO_BLOB_CACHE[@]}" skopeo copy --quiet --dest-tls-verify=false "$SRC" "docker://127.0.0.1:$1/$2:latest"
}

declare -A WALL CPU
measure() { # $1: name, $2: start function; one push to a fresh, empty registry
  "$2"
  local c0 t0 t1 c1
  c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
  push "$SERVER_PORT" bench/img
  t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  WALL[$1]+="$(echo "$t1 - $t0" | bc) "
  CPU[$1]+="$(echo "scale=2; ($c1 - $c0) / $TCK" | bc) "
}

for _ in $(seq "$ROUNDS"); do
  measure hoist start_hoist
  measure distribution start_distribution
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); storage: $(df -T "$WORK" | awk 'NR==2{print $2}') ($WORK)"
echo "image: $SRC, $((BYTES / 1048576)) MiB of blobs; skopeo $(skopeo --version | awk '{print $3}'); $ROUNDS rounds, alternating"
printf '%-13s %10s %12s %14s   %s\n' registry "wall (s)" "MiB/s" "server CPU (s)" "all rounds (wall / cpu)"
for name in hoist distribution; do
  w=$(echo "${WALL[$name]}" | median); c=$(echo "${CPU[$name]}" | median)
  printf '%-13s %10s %12s %14s   %s/ %s\n' "$name" "$w" "$(echo "scale=1; $BYTES / 1048576 / $w" | bc)" "$c" "${WALL[$name]}" "${CPU[$name]}"
done
wh=$(echo "${WALL[hoist]}" | median); wd=$(echo "${WALL[distribution]}" | median)
ch=$(echo "${CPU[hoist]}" | median); cd=$(echo "${CPU[distribution]}" | median)
echo "throughput hoist/distribution: $(echo "scale=2; $wd / $wh" | bc)x; server CPU distribution/hoist: $(echo "scale=2; $cd / $ch" | bc)x"
