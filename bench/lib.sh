# Helpers the end-to-end benchmark scripts share. Sourced (not run) from the repository
# root by bench/*.sh after their `set -euo pipefail` and `cd`:
#
#   source bench/lib.sh
#
# Messages name the script that sourced this file (bench/push.sh, ...).

BENCH=bench/$(basename "$0")

# need TOOL HINT: exits with "bench/X.sh: TOOL not found (HINT)" unless TOOL is on PATH.
need() { command -v "$1" >/dev/null || { echo "$BENCH: $1 not found ($2)" >&2; exit 1; }; }

# need_time: exits unless /usr/bin/time (GNU time, for -v) is installed.
need_time() {
  [ -x /usr/bin/time ] || { echo "$BENCH: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
}

# need_registry: exits unless $REGISTRY_BIN (the distribution registry) is installed.
need_registry() {
  [ -x "$REGISTRY_BIN" ] || { echo "$BENCH: $REGISTRY_BIN not found (apt-get install docker-registry)" >&2; exit 1; }
}

# build_hoist: builds the release binary and sets HOIST to its path.
build_hoist() {
  cargo build --release -q -p hoist
  HOIST=$PWD/target/release/hoist
}

# kill_servers: kills every pid in PIDS and waits for them (PIDS is left as it was).
kill_servers() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# bench_workdir PREFIX: makes the scratch dir W=/tmp/PREFIX.XXXXXX, starts an empty PIDS
# list, and on exit kills the servers in PIDS and removes W.
bench_workdir() {
  W=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap 'kill_servers; rm -rf "$W"' EXIT
}

# free_port: prints a loopback TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_distribution VAR ROOT [STORAGE]: starts $REGISTRY_BIN in the background on a free
# loopback port, with its config in ROOT/config.yml and its storage in ROOT/data (extra
# storage settings in STORAGE, e.g. "delete: {enabled: true}, "); adds its pid to PIDS and
# sets VAR to its address (127.0.0.1:PORT). Does not wait for it: see wait_v2.
start_distribution() {
  local root=$2 port
  mkdir -p "$root"
  port=$(free_port)
  cat >"$root/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $root/data}, ${3:-}cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:$port}
YML
  "$REGISTRY_BIN" serve "$root/config.yml" >/dev/null 2>&1 &
  PIDS+=($!)
  printf -v "$1" '%s' "127.0.0.1:$port"
}

# wait_v2 ADDR: polls http://ADDR/v2/ for up to about 5 s; succeeds once it answers 2xx,
# fails (silently) when it never does.
wait_v2() {
  for _ in $(seq 100); do curl -fsS "http://$1/v2/" >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}

# time_row LABEL FILE: appends "LABEL wall_s rss_kib" to $W/results, from the
# `/usr/bin/time -v` report in FILE.
time_row() {
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2,a,":"); if (length(a)==3) print a[1]*3600+a[2]*60+a[3]; else print a[1]*60+a[2]}' "$2")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$2")
  echo "$1 $wall $rss" >>"$W/results"
}

# timed LABEL CMD...: runs CMD under /usr/bin/time -v (its output in $W/out.txt and
# $W/err.txt) and appends "LABEL wall_s rss_kib" to $W/results; exits when CMD fails.
timed() {
  local label=$1; shift
  /usr/bin/time -v -o "$W/time.txt" "$@" >"$W/out.txt" 2>"$W/err.txt" || {
    echo "FAILED: $label" >&2; cat "$W/err.txt" >&2; exit 1; }
  time_row "$label" "$W/time.txt"
}

# registry_layer_bytes ADDR REPO TAG: prints the sum of the layer sizes of the manifest
# that the registry at ADDR serves for REPO:TAG (OCI or Docker v2).
registry_layer_bytes() {
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$1/v2/$2/manifests/$3" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))'
}

# NO_BLOB_CACHE CMD...: as a command prefix ("${NO_BLOB_CACHE[@]}" skopeo ...), runs CMD in
# a private mount namespace with an empty tmpfs over /var/lib/containers/cache, the
# blob-info cache skopeo keeps host-wide as root, so that no run learns from another.
NO_BLOB_CACHE=(unshare -m sh -c 'mkdir -p /var/lib/containers/cache && mount -t tmpfs tmpfs /var/lib/containers/cache && exec "$@"' sh)
