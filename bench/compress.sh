#!/usr/bin/env bash
# Compare hoist's layer compression with pigz and zstd -T0 on the same layers, in one run:
# `hoist copy docker-archive:X oci:Y` (gzip level 6 and --fast, zstd) against pigz -6 and
# zstd -3 -T0 over the same uncompressed layer tars, each writing its output to files.
# Prints a markdown table (times, MB/s, output sizes, ratios against the peer) and the
# peak RSS of hoist sealing one big layer.
#
#   bench/compress.sh [LAYERS] [SIZE]        default: 4 layers of 50MiB of text
#   env: RUNS=3 (hyperfine runs), WORK=dir (default a fresh dir in /dev/shm),
#        RSS_SIZE=2GiB (size of the one-layer image for the RSS check; 0 skips it),
#        MODE=text|random
#
# Needs pigz, zstd, hyperfine and python3. Uses /work/shared/bench/mkimage.py when it
# exists (the reference image generator), otherwise `hoist random`.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LAYERS=${1:-4}
SIZE=${2:-50MiB}
RUNS=${RUNS:-3}
MODE=${MODE:-text}
RSS_SIZE=${RSS_SIZE:-2GiB}
for t in pigz zstd hyperfine python3; do
  command -v "$t" >/dev/null || { echo "bench/compress.sh needs $t (apt-get install $t)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench/compress.sh needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

WORK=${WORK:-$(mktemp -d /dev/shm/hoist-bench.XXXXXX)}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

build_hoist

MKIMAGE=/work/shared/bench/mkimage.py
make_image() { # make_image FILE LAYERS SIZE
  if [ -f "$MKIMAGE" ]; then
    python3 "$MKIMAGE" -n "$2" -s "$3" -m "$MODE" --seed 1 "$1" >/dev/null 2>&1
  else
    "$HOIST" random "docker-archive:$1" --layers "$2" --size "$3" --mode "$MODE" --seed 1 >/dev/null
  fi
}

make_image "$WORK/img.tar" "$LAYERS" "$SIZE"
mkdir -p "$WORK/x"
tar -xf "$WORK/img.tar" -C "$WORK/x"
mapfile -t TARS < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
for l in m[0]["Layers"]:
    print(sys.argv[1] + "/" + l)
' "$WORK/x")
BYTES=$(stat -c %s "${TARS[@]}" | awk '{s += $1} END {print s}')

# The peers compress each layer into a file, one layer after another (as a tool that
# drives them would); hoist reads the tarball and writes an OCI layout.
export TARS_LIST="${TARS[*]}"
cat >"$WORK/peer.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
out=$1; shift
i=0
for f in $TARS_LIST; do
  "$@" -c "$f" >"$out/$i"
  i=$((i + 1))
done
SH
chmod +x "$WORK/peer.sh"

W=$WORK
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/h.json" \
  --prepare "rm -rf $W/o-gzip $W/o-fast $W/o-zstd $W/p-gzip $W/p-zstd; mkdir -p $W/p-gzip $W/p-zstd" \
  -n "hoist gzip" "$HOIST --no-cache copy --compression gzip docker-archive:$W/img.tar oci:$W/o-gzip" \
  -n "pigz -6" "$W/peer.sh $W/p-gzip pigz -6 -n" \
  -n "hoist gzip --fast" "$HOIST --no-cache copy --compression gzip --fast docker-archive:$W/img.tar oci:$W/o-fast" \
  -n "hoist zstd" "$HOIST --no-cache copy --compression zstd docker-archive:$W/img.tar oci:$W/o-zstd" \
  -n "zstd -3 -T0" "$W/peer.sh $W/p-zstd zstd -q -3 -T0" \
  >"$WORK/hyperfine.txt"

# hyperfine's --prepare cleared the outputs: make them once more (untimed) for the sizes.
rm -rf "$W/o-gzip" "$W/o-fast" "$W/o-zstd" "$W/p-gzip" "$W/p-zstd"
mkdir -p "$W/p-gzip" "$W/p-zstd"
"$HOIST" --no-cache copy --compression gzip "docker-archive:$W/img.tar" "oci:$W/o-gzip" >/dev/null
"$HOIST" --no-cache copy --compression gzip --fast "docker-archive:$W/img.tar" "oci:$W/o-fast" >/dev/null
"$HOIST" --no-cache copy --compression zstd "docker-archive:$W/img.tar" "oci:$W/o-zstd" >/dev/null
"$W/peer.sh" "$W/p-gzip" pigz -6 -n
"$W/peer.sh" "$W/p-zstd" zstd -q -3 -T0
layer_bytes() { # the layers of the one image in an OCI layout
  python3 -c '
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = idx["manifests"][0]["digest"].split(":")[1]
man = json.load(open(d + "/blobs/sha256/" + m))
print(sum(l["size"] for l in man["layers"]))
' "$1"
}
dir_bytes() { stat -c %s "$1"/* | awk '{s += $1} END {print s}'; }

python3 - "$WORK/h.json" "$BYTES" \
  "$(layer_bytes "$W/o-gzip")" "$(dir_bytes "$W/p-gzip")" \
  "$(layer_bytes "$W/o-fast")" "$(layer_bytes "$W/o-zstd")" "$(dir_bytes "$W/p-zstd")" <<'PY'
import json, sys
h = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
raw = int(sys.argv[2])
size = {
    "hoist gzip": int(sys.argv[3]), "pigz -6": int(sys.argv[4]),
    "hoist gzip --fast": int(sys.argv[5]),
    "hoist zstd": int(sys.argv[6]), "zstd -3 -T0": int(sys.argv[7]),
}
peer = {"hoist gzip": "pigz -6", "hoist gzip --fast": "pigz -6", "hoist zstd": "zstd -3 -T0"}
print(f"input: {raw} bytes of uncompressed layers\n")
print("Wall times suffer when other work shares the cores; CPU (user+sys) is the load-independent")
print("cost. 'vs peer' columns: >1 is better for speed and CPU, <1 is smaller for size.\n")
print("| tool | median wall s | MB/s | CPU s | output bytes | ratio | speed vs peer | CPU vs peer | size vs peer |")
print("|---|---|---|---|---|---|---|---|---|")
cpu = {n: r["user"] + r["system"] for n, r in h.items()}
for name, r in h.items():
    t = r["median"]
    row = f"| {name} | {t:.3f} | {raw / t / 1e6:.0f} | {cpu[name]:.2f} | {size[name]} | {raw / size[name]:.3f} |"
    if name in peer:
        p = peer[name]
        row += f" {h[p]['median'] / t:.2f}x | {cpu[p] / cpu[name]:.2f}x | {size[name] / size[p]:.4f} |"
    else:
        row += " | | |"
    print(row)
PY

if [ "$RSS_SIZE" != 0 ]; then
  make_image "$WORK/big.tar" 1 "$RSS_SIZE"
  echo
  echo "peak RSS, one $RSS_SIZE layer (docker-archive -> oci, --no-cache):"
  for c in gzip zstd; do
    rm -rf "$WORK/big-$c"
    /usr/bin/time -v "$HOIST" --no-cache copy --compression "$c" "docker-archive:$WORK/big.tar" "oci:$WORK/big-$c" \
      2>"$WORK/time-$c.txt" >/dev/null
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$WORK/time-$c.txt")
    wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$WORK/time-$c.txt")
    echo "- $c: $((rss / 1024)) MiB max RSS, wall $wall"
  done
fi
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
