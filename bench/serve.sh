#!/usr/bin/env bash
# The registry's read path under load: `hoist serve` and the distribution registry, on the
# same disk, each holding the same image, loaded by wrk in one run:
# - blob: CONNS concurrent clients GETting one BLOB_SIZE blob (incompressible) for SECS s;
# - manifest: CONNS concurrent clients GETting the image's manifest for SECS s.
# Reported per server and load: requests/s, MB/s, latency p50/p99 (wrk --latency), the
# server's CPU seconds meanwhile and its peak RSS (VmHWM). With HOIST_B set to another
# hoist binary (an older build, say), it is measured too, as server "hoist-b", in the same
# runs: an A/B of two builds on the same machine and data.
#
#   bash bench/serve.sh                         # RUNS=3 CONNS=32 SECS=10 BLOB_SIZE=64MiB
#   RUNS=1 SECS=5 bash bench/serve.sh
#   HOIST_B=/path/to/old/hoist bash bench/serve.sh
#
# wrk runs on the same cores as the server (as curl clients would): on a 2-core machine
# the client's own CPU is part of the picture. hoist serve runs with --log warn (no
# access log), as distribution runs with its access log disabled; ACCESS_LOG=1 keeps
# hoist's access log on (its default), written to a file, to measure what it costs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=random
source bench/lib.sh

CONNS=${CONNS:-32}
SECS=${SECS:-10}
BLOB_SIZE=${BLOB_SIZE:-64MiB}
ACCESS_LOG=${ACCESS_LOG:-0}
BENCH_ENV="CONNS=$CONNS SECS=$SECS BLOB_SIZE=$BLOB_SIZE ACCESS_LOG=$ACCESS_LOG "
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need_registry
bench_workdir hoist-serve
build_hoist
SERVERS_RUN=(hoist distribution)
if [ -n "${HOIST_B:-}" ]; then
  [ -x "$HOIST_B" ] || { echo "$BENCH: HOIST_B=$HOIST_B is not an executable" >&2; exit 1; }
  SERVERS_RUN+=(hoist-b)
  BENCH_ENV+="HOIST_B=$HOIST_B "
fi

# The image: one incompressible layer of BLOB_SIZE, stored uncompressed (so the blob is
# exactly that big), in an OCI layout.
"$HOIST" random "oci:$W/img.oci:bench" --layers 1 --size "${BLOB_SIZE%iB}" --mode random --compression none --seed 1 >/dev/null
read -r BLOB MANIFEST < <(python3 - "$W/img.oci" <<'PY'
import json, sys
d = sys.argv[1]
desc = json.load(open(d + "/index.json"))["manifests"][0]
m = json.load(open(d + "/blobs/sha256/" + desc["digest"].split(":")[1]))
print(m["layers"][0]["digest"], desc["digest"])
PY
)
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"

# start_hoist VAR ROOT BIN: `BIN serve` on a free loopback port (see start_distribution).
start_hoist() {
  local port
  port=$(free_port)
  local log=warn
  [ "$ACCESS_LOG" = 1 ] && log=info
  "$3" serve --log "$log" --addr "127.0.0.1:$port" --root "$2" >/dev/null 2>>"$W/serve.log" &
  PIDS+=($!)
  printf -v "$1" '%s' "127.0.0.1:$port"
  printf -v "$1_PID" '%s' "$!"
  wait_v2 "127.0.0.1:$port" || { echo "$BENCH: hoist serve on 127.0.0.1:$port did not start" >&2; exit 1; }
}

# load SERVER LABEL URL [HEADER]: one wrk run; appends "SERVER LABEL req/s MB/s p50_ms
# p99_ms cpu_s" to $W/loads.
load() {
  local s0 s1
  s0=$(cpu_ticks "$S_PID")
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency ${4:+-H "$4"} "$3" >"$W/wrk.txt"
  s1=$(cpu_ticks "$S_PID")
  python3 - "$1" "$2" "$(( s1 - s0 ))" "$TCK" "$W/wrk.txt" <<'PY' >>"$W/loads"
import re, sys
server, label, ticks, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = open(sys.argv[5]).read()
def ms(v):
    n, unit = float(re.match(r"[\d.]+", v).group()), re.sub(r"[\d.]+", "", v)
    return n * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
mbs = float(tr.group(1)) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[tr.group(2)]
p50 = ms(re.search(r"50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"99%\s+(\S+)", out).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"{server} {label}: {errors.group(1)} responses were errors")
print(server, label, f"{rps:.1f} {mbs:.0f} {p50:.2f} {p99:.2f} {ticks / tck:.2f}")
PY
}

: >"$W/loads"
: >"$W/rss"
for run in $(seq "$RUNS"); do
  for server in "${SERVERS_RUN[@]}"; do
    echo "run $run/$RUNS: $server" >&2
    kill_servers
    rm -rf "$W/root"
    case $server in
      hoist) start_hoist S "$W/root" "$HOIST" ;;
      hoist-b) start_hoist S "$W/root" "$HOIST_B" ;;
      distribution) start_distribution S "$W/root" ;;
    esac
    "$HOIST" push --no-cache --quiet "oci:$W/img.oci:bench" "$S/bench/img:v1" >/dev/null
    # warm the page cache with one read
    curl -fsS -o /dev/null "http://$S/v2/bench/img/blobs/$BLOB"
    load "$server" blob "http://$S/v2/bench/img/blobs/$BLOB"
    load "$server" manifest "http://$S/v2/bench/img/manifests/v1" "$ACCEPT"
    echo "$server $(awk '/VmHWM/ {print $2}' "/proc/$S_PID/status")" >>"$W/rss"
  done
done
kill_servers

{
  echo "# Registry read path under load: hoist serve vs distribution"
  echo
  echo "Command: \`RUNS=$RUNS ${BENCH_ENV}bash $BENCH\`"
  echo
  machine
  if [ -n "${HOIST_B:-}" ]; then echo "- hoist-b: $HOIST_B ($("$HOIST_B" version 2>/dev/null | head -1 || echo 'version unknown'))"; fi
  echo
  python3 - "$W/loads" "$W/rss" "$CONNS" "$SECS" "$BLOB_SIZE" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    server, label, *v = line.split()
    rows[(label, server)].append([float(x) for x in v])
rss = collections.defaultdict(list)
for line in open(sys.argv[2]):
    server, kib = line.split()
    rss[server].append(int(kib))
conns, secs, size = sys.argv[3], sys.argv[4], sys.argv[5]
mmm = lambda xs: f"{min(xs):.0f} / {statistics.median(xs):.0f} / {max(xs):.0f}"
print(f"{conns} connections (wrk -t2), {secs} s per load, blob of {size}; min / median / max over runs.\n")
print("| load | server | requests/s | MB/s | p50 ms (median) | p99 ms (median) | server CPU s (median) | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
for (label, server), v in rows.items():
    col = lambda i: [x[i] for x in v]
    print(f"| {label} | {server} | {mmm(col(0))} | {mmm(col(1))} | {statistics.median(col(2)):.1f} | "
          f"{statistics.median(col(3)):.1f} | {statistics.median(col(4)):.2f} | {max(rss[server]) / 1024:.0f} |")
print()
for label in ["blob", "manifest"]:
    for other in ["distribution", "hoist-b"]:
        h, d = rows.get((label, "hoist")), rows.get((label, other))
        if h and d:
            r = [a[0] / b[0] for a, b in zip(h, d)]
            print(f"- {label}: hoist / {other} requests/s per run: {min(r):.2f} / {statistics.median(r):.2f} / {max(r):.2f}")
PY
} >"$W/final.md"
cat "$W/final.md"
if [ "$OUT" != - ]; then
  cp "$W/final.md" "$OUT"
  echo "(written to $OUT)" >&2
fi
