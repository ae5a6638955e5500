#!/usr/bin/env bash
# The registry's write path: the same OCI layout (gzip layers) pushed by skopeo to
# `hoist serve` and to the distribution registry, in one run, on each kind of data
# (bench/lib.sh); reports wall time and the server's CPU (from /proc/PID/stat).
#
#   bash bench/registry.sh                      # DATA="text random real" RUNS=3
#   DATA=random RUNS=5 bash bench/registry.sh
#
# Each push goes to a fresh, empty server. skopeo's blob-info cache (host-wide as root)
# is hidden under a private tmpfs per push (unshare -m), so no run learns from another.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need skopeo "apt-get install skopeo"
need unshare "util-linux"
need python3 "apt-get install python3"
need_time
need_registry
bench_workdir hoist-registry
build_hoist
: >"$W/results"

# start_hoist VAR ROOT: `hoist serve` on a free loopback port (see start_distribution).
start_hoist() {
  local port
  port=$(free_port)
  # The access log (one line per request, as distribution writes) goes to a file.
  "$HOIST" serve --addr "127.0.0.1:$port" --root "$2" >/dev/null 2>>"$W/hoist-serve.log" &
  PIDS+=($!)
  printf -v "$1" '%s' "127.0.0.1:$port"
  printf -v "$1_PID" '%s' "$!"
  wait_v2 "127.0.0.1:$port" || { echo "$BENCH: hoist serve on 127.0.0.1:$port did not start" >&2; exit 1; }
}

for kind in $DATA; do
  rm -rf "$W/img"
  make_image "$kind" "$W/img"
  rm -f "$W/img/img.tar"
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    for server in hoist distribution; do
      kill_servers
      rm -rf "$W/root"
      if [ $server = hoist ]; then start_hoist S "$W/root"; else start_distribution S "$W/root" "delete: {enabled: true}, "; fi
      SERVERS=$S_PID
      timed "$kind" "skopeo-to-$server" "$run" "${NO_BLOB_CACHE[@]}" skopeo copy -q --dest-tls-verify=false \
        "oci:$W/img/img.oci:bench" "docker://$S/bench/img:v1"
      SERVERS=
    done
  done
  kill_servers
done

report "Registry write path: skopeo pushing a layout to hoist serve and to distribution" \
  "skopeo-to-hoist:skopeo-to-distribution"
