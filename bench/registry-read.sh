#!/usr/bin/env bash
# Read load on `hoist serve`: 32 concurrent clients (wrk, keep-alive) GET a 64 MiB blob over
# and over (throughput), then a manifest by tag (requests per second); server CPU time from
# /proc/PID/stat over each load. With HOIST_B set to a second hoist binary, both are measured
# in the same run, alternating rounds (an A/B of two builds on the same machine and data).
#
#   bash bench/registry-read.sh                               # this tree's release build
#   HOIST_B=/path/to/old/hoist ROUNDS=5 bash bench/registry-read.sh
#
# Needs: wrk, curl, cargo. Data lives in a temp dir under /var/tmp (a disk, not tmpfs),
# removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CONNS=${CONNS:-32}
BLOB_MIB=${BLOB_MIB:-64}

need wrk "apt-get install wrk"
need curl "apt-get install curl"
build_hoist
W=$(mktemp -d /var/tmp/hoist-read.XXXXXX)
PIDS=()
trap 'kill_servers; rm -rf "$W"' EXIT

# The data: one blob of random bytes, a config and a manifest naming them.
head -c "$((BLOB_MIB << 20))" /dev/urandom >"$W/blob"
echo '{"architecture":"amd64","os":"linux"}' >"$W/config"
BLOB_D=sha256:$(sha256sum "$W/blob" | cut -d' ' -f1)
CONF_D=sha256:$(sha256sum "$W/config" | cut -d' ' -f1)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
  "$CONF_D" "$(stat -c %s "$W/config")" "$BLOB_D" "$(stat -c %s "$W/blob")" >"$W/manifest"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# serve NAME BIN: starts BIN on a fresh root, pushes the data; sets PORT and SPID.
serve() {
  rm -rf "$W/root-$1"
  PORT=$(free_port)
  # The access log (a line per request) goes to a file.
  "$2" serve --addr "127.0.0.1:$PORT" --root "$W/root-$1" >/dev/null 2>>"$W/serve-$1.log" &
  SPID=$!
  PIDS+=("$SPID")
  wait_v2 "127.0.0.1:$PORT" || { echo "$BENCH: $2 did not start" >&2; exit 1; }
  local base=http://127.0.0.1:$PORT/v2/bench/read
  curl -fsS -o /dev/null -X POST --data-binary @"$W/blob" -H 'content-type: application/octet-stream' "$base/blobs/uploads/?digest=$BLOB_D"
  curl -fsS -o /dev/null -X POST --data-binary @"$W/config" -H 'content-type: application/octet-stream' "$base/blobs/uploads/?digest=$CONF_D"
  curl -fsS -o /dev/null -X PUT --data-binary @"$W/manifest" -H 'content-type: application/vnd.oci.image.manifest.v1+json' "$base/manifests/latest"
  # Warm the page cache: every round reads the blob from memory, as a busy registry does.
  curl -fsS -o /dev/null "$base/blobs/$BLOB_D"
}

# load URL: runs wrk; prints "requests_per_s server_cpu_s".
load() {
  local c0 c1 rps
  c0=$(cpu_ticks "$SPID")
  rps=$(wrk -t2 -c"$CONNS" -d"${SECS}s" "$1" | awk '/^Requests\/sec:/ {print $2}')
  c1=$(cpu_ticks "$SPID")
  echo "$rps $(echo "scale=2; ($c1 - $c0) / $TCK" | bc)"
}

declare -A BLOB MAN BCPU MCPU
NAMES=(hoist)
declare -A BIN=([hoist]=$HOIST)
if [ -n "${HOIST_B:-}" ]; then NAMES+=(base); BIN[base]=$HOIST_B; fi

for _ in $(seq "$ROUNDS"); do
  for n in "${NAMES[@]}"; do
    serve "$n" "${BIN[$n]}"
    read -r rps cpu < <(load "http://127.0.0.1:$PORT/v2/bench/read/blobs/$BLOB_D")
    BLOB[$n]+="$(echo "scale=2; $rps * $BLOB_MIB / 1024" | bc) "; BCPU[$n]+="$cpu "
    read -r rps cpu < <(load "http://127.0.0.1:$PORT/v2/bench/read/manifests/latest")
    MAN[$n]+="${rps%.*} "; MCPU[$n]+="$cpu "
    kill "$SPID"; wait "$SPID" 2>/dev/null || true
  done
done

stats() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "%s / %s / %s", a[1], a[int((NR+1)/2)], a[NR]}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t2 -c$CONNS -d${SECS}s, $ROUNDS rounds; a ${BLOB_MIB} MiB blob (page cache warm) and a manifest by tag"
printf '%-6s %-28s %-22s %-28s %s\n' build "blob GiB/s (min/med/max)" "server CPU s" "manifest req/s (min/med/max)" "server CPU s"
for n in "${NAMES[@]}"; do
  printf '%-6s %-28s %-22s %-28s %s\n' "$n" "$(echo "${BLOB[$n]}" | stats)" "$(echo "${BCPU[$n]}" | stats)" \
    "$(echo "${MAN[$n]}" | stats)" "$(echo "${MCPU[$n]}" | stats)"
done
echo "binaries: hoist=$HOIST${HOIST_B:+ base=$HOIST_B}"
