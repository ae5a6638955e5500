#!/usr/bin/env bash
# Mirror benchmark: `hoist sync` against `skopeo sync --src docker --dest docker` (one
# call per repository, as skopeo syncs one repository at a time), registry to registry
# on loopback, in one run, on each kind of data (bench/lib.sh).
#
#   bash bench/sync.sh                      # DATA="text random real" RUNS=3
#   DATA=text RUNS=5 REPOS=20 bash bench/sync.sh
#
# The source (a distribution registry) holds REPOS repositories bench/app0.. with TAGS
# tags each; every image is BASE_LAYERS shared base layers of BASE_SIZE (the same in all
# images) plus one layer of its own (OWN_SIZE). Per run and tool, a fresh destination
# registry gets:
#   cold       the whole mirror (hoist: one call for the prefix; skopeo: one per repository)
#   unchanged  the same sync again, nothing changed
# Reported: wall time, the client's CPU, the CPU of both registries, peak RSS; ratios per
# run; the requests each registry answered in run 1 (from their access logs: a count that
# load does not blur). After run 1 every tag's digest at each destination is checked
# against the source.
#
# Nothing is deleted until the bench ends: each kind has its own source and each run its
# own destination directory. On ext4 without a journal (this kind of machine's `/`), the
# kernel does not reuse an inode freed in the last minutes and checks every recently freed
# one each time a file or directory is created, so deleting a destination's ~1,000 files
# and directories before the next run made the registries' CPU for the same requests grow
# run after run (0.38 -> 1.18 CPU-s over 16 syncs; bench/runs/2026-12-05-0640-sync-
# registry-cpu.md). BENCH_TMP=/dev/shm puts everything on tmpfs instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

REPOS=${REPOS:-10}
TAGS=${TAGS:-3}
BASE_LAYERS=${BASE_LAYERS:-2}
BASE_SIZE=${BASE_SIZE:-8MiB}
OWN_SIZE=${OWN_SIZE:-512KiB}
BENCH_ENV="REPOS=$REPOS TAGS=$TAGS BASE_LAYERS=$BASE_LAYERS BASE_SIZE=$BASE_SIZE OWN_SIZE=$OWN_SIZE "

need skopeo "apt-get install skopeo"
need unshare "util-linux"
need python3 "apt-get install python3"
need curl "apt-get install curl"
need_time
need_registry
bench_workdir hoist-sync
# hoist's content cache (append seals its layers there) in the scratch directory
export HOIST_CACHE_DIR=$W/cache
build_hoist
: >"$W/results"

# bytes SIZE: 8MiB -> 8388608.
bytes() { python3 -c "import sys; s=sys.argv[1]; u={'KiB':1<<10,'MiB':1<<20,'GiB':1<<30}; print(next((int(s[:-3])*m for k,m in u.items() if s.endswith(k)), None) or int(s))" "$1"; }

# own_layer KIND DIR SEED: a directory with one file of OWN_SIZE bytes of the data KIND.
own_layer() {
  mkdir -p "$2"
  python3 - "$1" "$2/own.bin" "$3" "$(bytes "$OWN_SIZE")" <<'PY'
import random, sys
kind, path, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
if kind == "random":
    data = r.randbytes(n)
else:  # text, and real's own layers: word-like text
    words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(4096)]
    out = bytearray()
    while len(out) < n:
        out += r.choice(words) + (b"\n" if r.random() < 0.1 else b" ")
    data = bytes(out[:n])
open(path, "wb").write(data)
PY
}

# populate KIND: the base image and REPOS x TAGS images on it, in $SRC.
populate() {
  local kind=$1 base
  case $kind in
    text | random)
      "$HOIST" random "oci:$W/base-$kind.oci:v1" --layers "$BASE_LAYERS" \
        --size "$(bytes "$BASE_SIZE")" --mode "$kind" --seed 1 >/dev/null
      "$HOIST" -q push "oci:$W/base-$kind.oci:v1" "$SRC/base/img:v1" >/dev/null
      fact "$kind" data "base: $BASE_LAYERS x $BASE_SIZE \`hoist random --mode $kind --seed 1\`; own layer per image: $OWN_SIZE of $kind"
      ;;
    real)
      local line layers=() total
      total=$(( $(bytes "$BASE_SIZE") * BASE_LAYERS ))
      line=$(python3 bench/real_image.py "$W/layers-$kind" --size "$total" --layers "$BASE_LAYERS")
      for f in "$W/layers-$kind"/layer-*.tar; do layers+=(--layer "$f"); done
      "$HOIST" -q append scratch "${layers[@]}" -t "docker://$SRC/base/img:v1" >/dev/null
      fact "$kind" data "base: $line; own layer per image: $OWN_SIZE of text"
      ;;
    *) echo "$BENCH: unknown data kind $kind (expected text, random or real)" >&2; exit 1 ;;
  esac
  local i j
  for i in $(seq 0 $((REPOS - 1))); do
    for j in $(seq 1 "$TAGS"); do
      base=$W/own-$kind/$i-$j
      own_layer "$kind" "$base" $((i * 100 + j))
      "$HOIST" -q append "docker://$SRC/base/img:v1" -f "$base" -t "docker://$SRC/bench/app$i:v$j" >/dev/null
    done
  done
  fact "$kind" images "$REPOS repositories x $TAGS tags, $BASE_LAYERS shared base layers"
}

# check_mirror DST: every tag of the source has its digest at DST (exits when not).
check_mirror() {
  local i j want got
  for i in $(seq 0 $((REPOS - 1))); do
    for j in $(seq 1 "$TAGS"); do
      want=$(digest_of "$SRC" "bench/app$i" "v$j")
      got=$(digest_of "$1" "bench/app$i" "v$j")
      [ -n "$want" ] && [ "$want" = "$got" ] || {
        echo "$BENCH: bench/app$i:v$j is $got at $1, $want at the source" >&2; exit 1; }
    done
  done
}

digest_of() {
  curl -fsS -o /dev/null -D - -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' \
    "http://$1/v2/$2/manifests/$3" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}'
}

# requests ROOT: the requests the registry of ROOT answered so far.
requests() { wc -l <"$1/access.log"; }

# skopeo, one call per repository (what `skopeo sync` takes), with an empty blob-info cache.
cat >"$W/skopeo-sync.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
src=$1 dst=$2 repos=$3
for i in $(seq 0 $((repos - 1))); do
  skopeo sync --src docker --dest docker --src-tls-verify=false --dest-tls-verify=false \
    "$src/bench/app$i" "$dst/bench"
done
SH
chmod +x "$W/skopeo-sync.sh"

for kind in $DATA; do
  kill_servers
  src=$W/src-$kind
  start_distribution SRC "$src" "" log
  SRC_PID_KEEP=$SRC_PID
  populate "$kind"
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    for tool in hoist skopeo; do
      dst=$W/dst-$kind-$run-$tool
      start_distribution DST "$dst" "" log
      SERVERS="$SRC_PID_KEEP $DST_PID"
      for pass in cold unchanged; do
        src0=$(requests "$src") dst0=$(requests "$dst")
        case $tool in
          hoist) timed "$kind" "hoist-$pass" "$run" "$HOIST" --quiet sync "$SRC/bench" "$DST/bench" --state "$dst/state.jsonl" ;;
          skopeo) timed "$kind" "skopeo-$pass" "$run" "${NO_BLOB_CACHE[@]}" "$W/skopeo-sync.sh" "$SRC" "$DST" "$REPOS" ;;
        esac
        # (a registry logs a request just after answering it: a moment for the last line)
        [ "$run" = 1 ] && sleep 0.1 && fact "$kind" "requests-$tool-$pass" \
          "source $(($(requests "$src") - src0)), destination $(($(requests "$dst") - dst0)) (run 1)"
      done
      [ "$run" = 1 ] && check_mirror "$DST"
      SERVERS=
      kill "$DST_PID"; wait "$DST_PID" 2>/dev/null || true
      PIDS=("$SRC_PID_KEEP")
    done
  done
done

report "Mirror: hoist sync vs skopeo sync (one call per repository), distribution to a fresh distribution" \
  "hoist-cold:skopeo-cold hoist-unchanged:skopeo-unchanged"
