# Helpers the end-to-end benchmark scripts share. Sourced (not run) from the repository
# root by bench/*.sh after their `set -euo pipefail` and `cd`:
#
#   source bench/lib.sh
#
# Every script takes the same environment:
#   DATA="text random real"  the data kinds to run (see make_image)
#   RUNS=3                   measurements per tool and kind; reports give min/median/max
#   OUT=bench/runs/DATE-NAME.md  where the report goes (printed too); OUT=- prints only
#   REGISTRY_BIN=/usr/bin/docker-registry  the distribution registry
# Messages name the script that sourced this file (bench/push.sh, ...).

BENCH=bench/$(basename "$0")
BENCH_NAME=$(basename "$0" .sh)
DATA=${DATA:-text random real}
RUNS=${RUNS:-3}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
OUT=${OUT:-bench/runs/$(date -u +%Y-%m-%d-%H%M)-$BENCH_NAME.md}

# need TOOL HINT: exits with "bench/X.sh: TOOL not found (HINT)" unless TOOL is on PATH.
need() { command -v "$1" >/dev/null || { echo "$BENCH: $1 not found ($2)" >&2; exit 1; }; }

# need_time: exits unless /usr/bin/time (GNU time) is installed.
need_time() {
  [ -x /usr/bin/time ] || { echo "$BENCH: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
}

# need_registry: exits unless $REGISTRY_BIN (the distribution registry) is installed.
need_registry() {
  [ -x "$REGISTRY_BIN" ] || { echo "$BENCH: $REGISTRY_BIN not found (apt-get install docker-registry)" >&2; exit 1; }
}

# have_crane: succeeds when crane is on PATH (it is not packaged: used when present).
have_crane() { command -v crane >/dev/null; }

# build_hoist: builds the release binary and sets HOIST to its path.
build_hoist() {
  echo "building hoist (release)..." >&2
  cargo build --release -q -p hoist
  HOIST=$PWD/target/release/hoist
}

# kill_servers: kills every pid in PIDS and waits for them, then empties PIDS.
kill_servers() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}

# bench_workdir PREFIX: makes the scratch dir W=${BENCH_TMP:-/tmp}/PREFIX.XXXXXX, starts
# an empty PIDS list, and on exit kills the servers in PIDS and removes W.
bench_workdir() {
  W=$(mktemp -d "${BENCH_TMP:-/tmp}/$1.XXXXXX")
  PIDS=()
  trap 'kill_servers; rm -rf "$W"' EXIT
}

# free_port: prints a loopback TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_distribution VAR ROOT [STORAGE] [log]: starts $REGISTRY_BIN in the background on a
# free loopback port, with its config in ROOT/config.yml and its storage in ROOT/data (extra
# storage settings in STORAGE, e.g. "delete: {enabled: true}, "); with `log`, its access log
# is on and appended to ROOT/access.log (one line per request answered). Adds its pid to
# PIDS, sets VAR to its address (127.0.0.1:PORT) and VAR_PID to its pid, and waits until it
# answers (exits when it never does).
start_distribution() {
  local root=$2 port off=true out=/dev/null
  if [ "${4:-}" = log ]; then off=false out=$root/access.log; fi
  mkdir -p "$root"
  port=$(free_port)
  cat >"$root/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: $off}}
storage: {filesystem: {rootdirectory: $root/data}, ${3:-}cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:$port}
YML
  "$REGISTRY_BIN" serve "$root/config.yml" >>"$out" 2>/dev/null &
  PIDS+=($!)
  printf -v "$1" '%s' "127.0.0.1:$port"
  printf -v "$1_PID" '%s' "$!"
  wait_v2 "127.0.0.1:$port" || { echo "$BENCH: the registry at 127.0.0.1:$port did not start" >&2; exit 1; }
}

# wait_v2 ADDR: polls http://ADDR/v2/ for up to about 5 s; succeeds once it answers 2xx,
# fails (silently) when it never does.
wait_v2() {
  for _ in $(seq 100); do curl -fsS "http://$1/v2/" >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}

# cpu_ticks PID: user+system clock ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# ---- results ----
# Rows go to $W/results, one per measurement: KIND LABEL RUN WALL_S CPU_S RSS_KIB SERVER_CPU_S
# (CPU: the client's user+system; SERVER_CPU: of the registries named in SERVERS, "-" if none).
# Other facts (blob bytes, ...) go to $W/facts: KIND KEY VALUE.

# timed KIND LABEL RUN CMD...: runs CMD under /usr/bin/time (its stdout in $W/out.txt,
# stderr in $W/err.txt), measuring the CPU the pids in SERVERS use meanwhile; appends a
# row to $W/results; exits when CMD fails. The wall time is read from the nanosecond
# clock (GNU time's %e has 10 ms steps: a fifth of a 50 ms run).
timed() {
  local kind=$1 label=$2 run=$3; shift 3
  local s0 s1 t0 t1
  s0=$(server_ticks)
  m0=$(machine_ticks)
  t0=$(date +%s%N)
  /usr/bin/time -f '%e %U %S %M' -o "$W/time.txt" "$@" >"$W/out.txt" 2>"$W/err.txt" || {
    echo "$BENCH: FAILED: $label ($kind, run $run): $*" >&2; cat "$W/err.txt" >&2; exit 1; }
  t1=$(date +%s%N)
  m1=$(machine_ticks)
  s1=$(server_ticks)
  wall_ns "$W/time.txt" $((t1 - t0))
  time_row "$kind" "$label" "$run" "$W/time.txt" "$s0" "$s1"
  local b0 n0 b1 n1
  read -r b0 n0 <<<"$m0"
  read -r b1 n1 <<<"$m1"
  echo "$kind $label $run $(( (b1 - b0) * 100 / (n1 - n0 > 0 ? n1 - n0 : 1) ))" >>"$W/busy"
}

# machine_ticks: "BUSY TOTAL" clock ticks of all CPUs so far (/proc/stat: busy is all but
# idle and iowait, so processes, the kernel's interrupts and softirqs, and steal).
machine_ticks() {
  awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

# wall_ns TIMEFILE NS: replaces the wall time of a `/usr/bin/time -f '%e ...'` report
# with NS nanoseconds, in seconds to the millisecond.
wall_ns() {
  local wall rest
  read -r wall rest <"$1"
  echo "$(python3 -c "print(f'{$2 / 1e9:.3f}')") $rest" >"$1"
}

# time_row KIND LABEL RUN TIMEFILE S0 S1: appends a row from a `/usr/bin/time -f '%e %U %S %M'`
# report and the server ticks before (S0) and after (S1).
time_row() {
  local srv=-
  [ "$5" != - ] && srv=$(python3 -c "print(f'{($6 - $5) / $TCK:.2f}')")
  read -r wall user sys rss <"$4"
  echo "$1 $2 $3 $wall $(python3 -c "print(f'{$user + $sys:.2f}')") $rss $srv" >>"$W/results"
}

# server_ticks: the CPU ticks of the pids in SERVERS together, or "-" when SERVERS is empty.
server_ticks() {
  [ -z "${SERVERS:-}" ] && { echo -; return; }
  local t=0 p
  for p in $SERVERS; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

# fact KIND KEY VALUE: records a fact for the report.
fact() { echo "$1 $2 $3" >>"$W/facts"; }

# registry_layer_bytes ADDR REPO TAG: prints the sum of the layer sizes of the manifest
# that the registry at ADDR serves for REPO:TAG (OCI or Docker v2).
registry_layer_bytes() {
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$1/v2/$2/manifests/$3" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))'
}

# layout_layer_bytes DIR: the sum of the layer sizes of the one image in the OCI layout DIR.
layout_layer_bytes() {
  python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1]
desc = json.load(open(d + "/index.json"))["manifests"][0]
m = json.load(open(d + "/blobs/sha256/" + desc["digest"].split(":")[1]))
if "manifests" in m:  # an index of one image
    m = json.load(open(d + "/blobs/sha256/" + m["manifests"][0]["digest"].split(":")[1]))
print(sum(l["size"] for l in m["layers"]))
PY
}

# NO_BLOB_CACHE CMD...: as a command prefix ("${NO_BLOB_CACHE[@]}" skopeo ...), runs CMD in
# a private mount namespace with an empty tmpfs over /var/lib/containers/cache, the
# blob-info cache skopeo keeps host-wide as root, so that no run learns from another.
NO_BLOB_CACHE=(unshare -m sh -c 'mkdir -p /var/lib/containers/cache && mount -t tmpfs tmpfs /var/lib/containers/cache && exec "$@"' sh)

# ---- data ----
# The three kinds of data every scenario runs on:
#   text    LAYERS x SIZE of word-like text (`hoist random --mode text`, about 3x gzip)
#   random  LAYERS x SIZE of incompressible bytes (`hoist random --mode random`)
#   real    REAL_SIZE of real files in REAL_LAYERS layers: a sample of this machine's
#           /usr (binaries, libraries, text), fixed order and metadata (bench/real_image.py)
LAYERS=${LAYERS:-10}
SIZE=${SIZE:-50MiB}
REAL_SIZE=${REAL_SIZE:-400MiB}
REAL_LAYERS=${REAL_LAYERS:-6}

# make_image KIND DIR: writes DIR/img.tar (docker-save tarball, uncompressed layers) and
# DIR/img.oci (OCI layout, gzip level 6 layers, image name "bench") of the data KIND, and
# records what it made as facts.
make_image() {
  local kind=$1 dir=$2
  mkdir -p "$dir"
  case $kind in
    text | random)
      echo "making the $kind image ($LAYERS x $SIZE, hoist random)..." >&2
      "$HOIST" random "docker-archive:$dir/img.tar" --layers "$LAYERS" --size "${SIZE%iB}" --mode "$kind" --seed 1 >/dev/null
      fact "$kind" data "$LAYERS x $SIZE, \`hoist random --mode $kind --seed 1\`"
      ;;
    real)
      echo "making the real image ($REAL_SIZE of /usr in $REAL_LAYERS layers)..." >&2
      local line layers=()
      line=$(python3 bench/real_image.py "$dir/layers" --size "$REAL_SIZE" --layers "$REAL_LAYERS")
      for f in "$dir"/layers/layer-*.tar; do layers+=(--layer "$f"); done
      "$HOIST" append --no-cache scratch "${layers[@]}" --compression none -t "docker-archive:$dir/img.tar" >/dev/null
      rm -rf "$dir/layers"
      fact "$kind" data "$line"
      ;;
    *) echo "$BENCH: unknown data kind $kind (expected text, random or real)" >&2; exit 1 ;;
  esac
  "$HOIST" copy --no-cache "docker-archive:$dir/img.tar" "oci:$dir/img.oci:bench" >/dev/null
  fact "$kind" tar_bytes "$(stat -c %s "$dir/img.tar")"
  fact "$kind" layout_blob_bytes "$(layout_layer_bytes "$dir/img.oci")"
}

# ---- report ----
# machine: a markdown description of this machine, the tools and the load.
machine() {
  local fs
  fs=$(df -T "${BENCH_TMP:-/tmp}" | awk 'NR==2 {print $2}')
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); hoist $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates bench || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), ${BENCH_TMP:-/tmp} on $fs"
  echo "- peers: skopeo $(skopeo --version 2>/dev/null | awk '{print $3}'), distribution $("$REGISTRY_BIN" --version 2>/dev/null | awk '{print $3}'), crane $(have_crane && (crane version 2>/dev/null || echo present) || echo 'not on PATH'), pigz $(pigz --version 2>&1 | awk '{print $2}'), zstd $(zstd --version 2>/dev/null | sed -n 's/.* v\([0-9.]*\),.*/\1/p')"
  echo "- load average at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# report TITLE PAIRS: writes the markdown report of $W/results and $W/facts to stdout
# and to $OUT. PAIRS lists "HOIST_LABEL:PEER_LABEL" ratios to give (peer wall / hoist wall
# per run, so >1 means hoist is faster; also the CPU ratio of the medians).
report() {
  local title=$1 pairs=$2 tmp
  tmp=$(mktemp)
  {
    echo "# $title"
    echo
    echo "Command: \`${BENCH_TMP:+BENCH_TMP=$BENCH_TMP }DATA=\"$DATA\" RUNS=$RUNS ${BENCH_ENV:-}bash $BENCH\`"
    echo
    machine
    echo
    python3 - "$W/results" "$W/facts" "$pairs" "$W/busy" <<'PY'
import collections, os, statistics, sys
CORES = os.cpu_count()
rows = collections.defaultdict(dict)  # (kind, label) -> run -> (wall, cpu, rss, srv)
order, kinds = [], []
for line in open(sys.argv[1]):
    kind, label, run, wall, cpu, rss, srv = line.split()
    if (kind, label) not in rows:
        order.append((kind, label))
    if kind not in kinds:
        kinds.append(kind)
    rows[(kind, label)][run] = (float(wall), float(cpu), int(rss), None if srv == "-" else float(srv))
facts = collections.defaultdict(dict)
try:
    for line in open(sys.argv[2]):
        kind, key, value = line.rstrip("\n").split(" ", 2)
        facts[kind][key] = value
except FileNotFoundError:
    pass
pairs = [p.split(":") for p in sys.argv[3].split()]
busy = collections.defaultdict(list)  # (kind, label) -> [% of all CPUs busy, per run]
try:
    for line in open(sys.argv[4]):
        kind, label, run, pct = line.split()
        busy[(kind, label)].append(int(pct))
except FileNotFoundError:
    pass
mmm = lambda xs, d=2: f"{min(xs):.{d}f} / {statistics.median(xs):.{d}f} / {max(xs):.{d}f}"
for kind in kinds:
    print(f"## {kind}\n")
    for k, v in facts[kind].items():
        print(f"- {k}: {v}")
    print()
    print("| measurement | wall s min / median / max | client CPU s (median) | registry CPU s (median) | CPU floor s | wall / floor | machine busy % (median) | peak RSS MiB (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for (k, label) in order:
        if k != kind:
            continue
        r = rows[(k, label)].values()
        srv = [x[3] for x in r if x[3] is not None]
        wall, cpu = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
        reg = statistics.median(srv) if srv else float("nan")
        # The shortest wall time any schedule of this CPU on these cores could have.
        floor = ((cpu + (reg if srv else 0)) / CORES)
        print(f"| {label} | {mmm([x[0] for x in r], 3)} | {cpu:.2f} | {reg:.2f} | {floor:.2f} | "
              f"{wall / floor if floor > 0 else float('nan'):.2f} | "
              f"{statistics.median(busy[(k, label)]) if busy[(k, label)] else float('nan'):.0f} | "
              f"{statistics.median(x[2] for x in r) / 1024:.0f} |".replace("nan", "-"))
    print()
    print(f"CPU floor: (client + registry CPU) / {CORES} cores, the wall time if every core were busy with "
          "them throughout; wall / floor near 1 means CPU-bound, higher means waiting (I/O, latency, other load). "
          "Machine busy: the share of all cores busy meanwhile (any process, the kernel's interrupts and softirqs, "
          "which the per-process CPU leaves out), from /proc/stat.")
    print()
    for h, p in pairs:
        a, b = rows.get((kind, h)), rows.get((kind, p))
        if not a or not b:
            continue
        ratios = [b[run][0] / a[run][0] for run in a if run in b and a[run][0] > 0]
        med = lambda rs, i: statistics.median(x[i] for x in rs.values() if x[i] is not None)
        # CPU ratios of the medians, when the denominator is measurable (ticks are 10 ms)
        ratio = lambda n, d: f"{n / d:.2f}x" if d >= 0.02 else "n/a"
        cpu = f"; client CPU {ratio(med(b, 1), med(a, 1))}"
        if all(x[3] is not None for x in list(a.values()) + list(b.values())):
            cpu += f"; registry CPU {ratio(med(b, 3), med(a, 3))}"
        if ratios:
            print(f"- {p} / {h}, wall, per run: {mmm(ratios)} (min / median / max of {len(ratios)}){cpu}")
    print()
PY
  } >"$tmp"
  cat "$tmp"
  if [ "$OUT" != - ]; then
    mkdir -p "$(dirname "$OUT")"
    cat "$tmp" >"$OUT"
    echo "(written to $OUT)" >&2
  fi
  rm -f "$tmp"
}
