#!/usr/bin/env bash
# Layer compression: hoist against pigz and zstd -T0 on the same layers, in one run, on
# each kind of data (bench/lib.sh). hoist runs `hoist copy --no-cache --compression C
# docker-archive:X oci:Y` (reading the tarball, both sha256, writing a layout); the peers
# compress each layer tar to a file, one after another (as a tool driving them would).
#
#   bash bench/compress.sh                      # DATA="text random real" RUNS=3 LAYERS=4
#   DATA=text RUNS=5 bash bench/compress.sh
#
# Pairs: hoist gzip (level 6, the default at rest) vs pigz -6; hoist gzip --level 1 (the
# push default) vs pigz -1; hoist zstd (level 3) vs zstd -3 -T0. Also hoist --fast (igzip;
# bytes depend on the CPU family). Work files live in BENCH_TMP (default /dev/shm, so
# that no tool waits for the disk: hoist fsyncs layout blobs). RSS_SIZE=2GiB adds the peak
# RSS of sealing one layer that big (0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${LAYERS:-4}
BENCH_TMP=${BENCH_TMP:-/dev/shm}
source bench/lib.sh

RSS_SIZE=${RSS_SIZE:-0}
BENCH_ENV="LAYERS=$LAYERS RSS_SIZE=$RSS_SIZE "
need pigz "apt-get install pigz"
need zstd "apt-get install zstd"
need python3 "apt-get install python3"
need_time
bench_workdir hoist-compress
build_hoist
: >"$W/results"

# peer OUTDIR CMD...: CMD -c LAYER > OUTDIR/i for each layer tar in TARS.
cat >"$W/peer.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
out=$1; shift
mkdir -p "$out"
i=0
for f in $TARS_LIST; do
  "$@" -c "$f" >"$out/$i"
  i=$((i + 1))
done
SH
chmod +x "$W/peer.sh"
dir_bytes() { stat -c %s "$1"/* | awk '{s += $1} END {print s}'; }

for kind in $DATA; do
  rm -rf "$W/img" "$W/x"
  make_image "$kind" "$W/img"
  rm -rf "$W/img/img.oci"
  mkdir -p "$W/x"
  tar -xf "$W/img/img.tar" -C "$W/x"
  TARS_LIST=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
print(" ".join(sys.argv[1] + "/" + l for l in m[0]["Layers"]))' "$W/x")
  export TARS_LIST
  # shellcheck disable=SC2086
  fact "$kind" layer_bytes "$(stat -c %s $TARS_LIST | awk '{s += $1} END {print s}')"
  IMG=$W/img/img.tar
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    for t in hoist-gzip pigz-6 hoist-gzip-1 pigz-1 hoist-fast hoist-zstd zstd-3; do
      rm -rf "$W/o"
      case $t in
        hoist-gzip) timed "$kind" "$t" "$run" "$HOIST" copy --no-cache --compression gzip "docker-archive:$IMG" "oci:$W/o" ;;
        hoist-gzip-1) timed "$kind" "$t" "$run" "$HOIST" copy --no-cache --compression gzip --level 1 "docker-archive:$IMG" "oci:$W/o" ;;
        hoist-fast) timed "$kind" "$t" "$run" "$HOIST" copy --no-cache --compression gzip --fast "docker-archive:$IMG" "oci:$W/o" ;;
        hoist-zstd) timed "$kind" "$t" "$run" "$HOIST" copy --no-cache --compression zstd "docker-archive:$IMG" "oci:$W/o" ;;
        pigz-6) timed "$kind" "$t" "$run" "$W/peer.sh" "$W/o" pigz -6 -n ;;
        pigz-1) timed "$kind" "$t" "$run" "$W/peer.sh" "$W/o" pigz -1 -n ;;
        zstd-3) timed "$kind" "$t" "$run" "$W/peer.sh" "$W/o" zstd -q -3 -T0 ;;
      esac
      if [ "$run" = 1 ]; then
        case $t in
          hoist-*) fact "$kind" "bytes_$t" "$(layout_layer_bytes "$W/o")" ;;
          *) fact "$kind" "bytes_$t" "$(dir_bytes "$W/o")" ;;
        esac
      fi
    done
  done
  python3 - "$W/facts" "$kind" >>"$W/facts" <<'PY'
import sys
f = {}
for line in open(sys.argv[1]):
    k, key, v = line.rstrip("\n").split(" ", 2)
    if k == sys.argv[2]:
        f[key] = v
for h, p in [("hoist-gzip", "pigz-6"), ("hoist-gzip-1", "pigz-1"), ("hoist-fast", "pigz-1"), ("hoist-zstd", "zstd-3")]:
    print(f"{sys.argv[2]} size_{h}/{p} {int(f['bytes_' + h]) / int(f['bytes_' + p]):.4f}")
PY
  rm -rf "$W/x" "$W/o"
done

if [ "$RSS_SIZE" != 0 ]; then
  "$HOIST" random "docker-archive:$W/big.tar" --layers 1 --size "${RSS_SIZE%iB}" --mode text --seed 1 >/dev/null
  for c in gzip zstd; do
    rm -rf "$W/o"
    timed rss "hoist-$c-one-$RSS_SIZE-layer" 1 "$HOIST" copy --no-cache --compression "$c" "docker-archive:$W/big.tar" "oci:$W/o"
  done
fi

report "Layer compression: hoist vs pigz and zstd on the same layers" \
  "hoist-gzip:pigz-6 hoist-gzip-1:pigz-1 hoist-fast:pigz-1 hoist-zstd:zstd-3"
