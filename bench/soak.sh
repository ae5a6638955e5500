#!/usr/bin/env bash
# A bounded soak of `hoist serve`, in one command:
#
#   bash bench/soak.sh                  # 120 s of load, then the checks (about 3-4 minutes)
#   SECONDS_LOAD=60 CLIENTS=16 bash bench/soak.sh
#
# One registry on a fresh root (127.0.0.1, a free port). CLIENTS hoist processes in loops
# push (12 seeded images over 8 repositories and 6 tags), pull, validate, delete tags and
# delete manifests by digest, all at once; STALLED bad clients of each kind hang on
# (bench/stalled_clients.py: blob readers that read nothing for 15 s at a time, uploaders
# that trickle 1 byte every 5 s, uploaders that send nothing), reconnecting whenever the
# server closes them.
# Half-way, the registry is killed with SIGKILL and restarted on the same root and port.
# Every second the server's RSS and open file descriptors are sampled.
#
# When the load ends, the script checks, and exits 1 if any check fails:
#   - every image the registry still lists validates (`hoist validate docker://...`:
#     every digest, size and diff_id recomputed);
#   - no leaked file descriptors: the restarted server, idle again, holds as many as the
#     first one held idle before any client came;
#   - no upload session directory is left (the restarted server removes what the killed
#     one abandoned once --upload-ttl passes, and failed pushes cancel theirs);
#   - RSS is flat: over the restarted server's life, the median of the last quarter of
#     samples is within 25% (+8 MiB) of the median of the first quarter;
#   - SIGTERM stops the server with exit status 0;
#   - no client operation failed for a reason other than the kill (connection refused or
#     reset while the registry was down) or a concurrent delete (a tag or manifest that
#     another client had just deleted).
# The report (machine, settings, counts, RSS and fd samples) goes to OUT (default
# bench/runs/DATE-soak.md) and is printed. Needs python3; builds hoist (release) unless
# HOIST names a binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SECONDS_LOAD=${SECONDS_LOAD:-120}
CLIENTS=${CLIENTS:-32}
STALLED=${STALLED:-32}
# Short timeouts, so that stalled clients are closed many times within the run, and a
# short upload TTL, so that the sessions the kill abandons expire before the end.
TTL=20
SERVE_FLAGS=(--header-timeout 5s --body-timeout 10s --idle-timeout 15s --upload-ttl "${TTL}s"
  --shutdown-grace 5s)
IMAGES=12

need python3 "apt-get install python3"
if [ -n "${HOIST:-}" ]; then
  [ -x "$HOIST" ] || { echo "$BENCH: HOIST=$HOIST is not an executable" >&2; exit 1; }
else
  build_hoist
fi
bench_workdir hoist-soak
ROOT=$W/root
export HOIST_CACHE_DIR=$W/cache
PORT=$(free_port)
HOST=127.0.0.1:$PORT
SERVER_PID=
SAMPLER_PID=
STALL_PID=
trap 'for p in $SAMPLER_PID $STALL_PID $SERVER_PID; do kill -9 $p 2>/dev/null || true; done; rm -rf "$W"' EXIT

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sessions() { find "$ROOT/uploads" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# start_server LOG: starts `hoist serve` on $HOST and $ROOT, waits for its "listening"
# line, sets SERVER_PID and records it for the sampler.
start_server() {
  "$HOIST" serve --addr "$HOST" --root "$ROOT" "${SERVE_FLAGS[@]}" --log warn \
    >"$1" 2>&1 &
  SERVER_PID=$!
  echo "$SERVER_PID" >"$W/server.pid"
  for _ in $(seq 1 100); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$BENCH: hoist serve did not start:" >&2
  cat "$1" >&2
  exit 1
}

echo "preparing $IMAGES images..." >&2
for s in $(seq 1 $IMAGES); do
  "$HOIST" random --seed "$s" --layers 3 --size 256k --mode text "oci:$W/img/$s" >/dev/null
done
"$HOIST" random --seed 100 --layers 1 --size 16M "oci:$W/img/big" >/dev/null

start_server "$W/serve1.log"
sleep 0.5
FDS_IDLE_BEFORE=$(fds "$SERVER_PID")
RSS_START=$(rss "$SERVER_PID")

# The blob the stalled readers ask for.
"$HOIST" push -q "oci:$W/img/big" "$HOST/soak/big:v1"
BIG_LAYER=$(python3 -c '
import json, sys
idx = json.load(open(sys.argv[1] + "/index.json"))
d = idx["manifests"][0]["digest"].split(":")
m = json.load(open(sys.argv[1] + "/blobs/" + d[0] + "/" + d[1]))
print(m["layers"][0]["digest"])' "$W/img/big")

# The sampler: t, pid, RSS KiB, fds, session dirs; every second until killed.
(
  t0=$(date +%s)
  while :; do
    p=$(cat "$W/server.pid")
    echo "$(($(date +%s) - t0)) $p $(rss "$p") $(fds "$p") $(sessions)"
    sleep 1
  done
) >"$W/samples" &
SAMPLER_PID=$!

# client I: operations in a loop until END; one line per operation in $W/ops.I:
# "OP STATUS message" (STATUS 0 = success).
client() {
  local i=$1 op repo tag seed rc d msg
  local out=$W/ops.$i err=$W/err.$i
  mkdir -p "$W/pull/$i"
  RANDOM=$((i * 7919))
  while [ "$(date +%s)" -lt "$END" ]; do
    repo=soak/r$((RANDOM % 8))
    tag=t$((RANDOM % 6))
    seed=$((RANDOM % IMAGES + 1))
    rc=0
    case $((RANDOM % 10)) in
      0 | 1 | 2 | 3)
        op=push
        "$HOIST" push -q "oci:$W/img/$seed" "$HOST/$repo:$tag" 2>"$err" >/dev/null || rc=$?
        ;;
      4 | 5 | 6)
        op=pull
        "$HOIST" pull -q "$HOST/$repo:$tag" "$W/pull/$i/x.tar" 2>"$err" >/dev/null || rc=$?
        rm -f "$W/pull/$i/x.tar"
        ;;
      7)
        op=validate
        "$HOIST" validate "docker://$HOST/$repo:$tag" 2>"$err" >/dev/null || rc=$?
        ;;
      8)
        op=delete-tag
        "$HOIST" delete "$HOST/$repo:$tag" 2>"$err" >/dev/null || rc=$?
        ;;
      9)
        op=delete-digest
        if d=$("$HOIST" digest "$HOST/$repo:$tag" 2>"$err"); then
          "$HOIST" delete "$HOST/$repo@$d" 2>"$err" >/dev/null || rc=$?
        else
          rc=$?
        fi
        ;;
    esac
    msg=$(head -c 300 "$err" | tr '\n' ' ')
    echo "$op $rc $msg" >>"$out"
  done
}

START=$(date +%s)
END=$((START + SECONDS_LOAD))
echo "load: $CLIENTS clients and $((3 * STALLED)) stalled connections for ${SECONDS_LOAD}s on $HOST..." >&2
python3 bench/stalled_clients.py "$HOST" "/v2/soak/big/blobs/$BIG_LAYER" soak/stalled \
  "$STALLED" "$SECONDS_LOAD" $((SECONDS_LOAD / 2)) >"$W/stalled.txt" 2>&1 &
STALL_PID=$!
CLIENT_PIDS=()
for i in $(seq 1 "$CLIENTS"); do
  client "$i" &
  CLIENT_PIDS+=($!)
done

# Half-way: kill -9 and restart on the same root and port.
sleep $((SECONDS_LOAD / 2))
RSS_AT_KILL=$(rss "$SERVER_PID")
FDS_AT_KILL=$(fds "$SERVER_PID")
SESSIONS_AT_KILL=$(sessions)
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
KILLED_AT=$(($(date +%s) - START))
start_server "$W/serve2.log"
RESTARTED_AT=$(($(date +%s) - START))
SESSIONS_AFTER_RESTART=$(sessions)
echo "killed at ${KILLED_AT}s ($SESSIONS_AT_KILL session dirs), restarted at ${RESTARTED_AT}s" >&2

for p in "${CLIENT_PIDS[@]}"; do wait "$p" || true; done
wait "$STALL_PID" || true
STALL_PID=
LOAD_END=$(($(date +%s) - START))
echo "load over at ${LOAD_END}s; checking..." >&2

# Sessions: the killed server's abandoned ones expire after the TTL (sweeps every TTL/4).
SESSIONS_AT_END=$(sessions)
for _ in $(seq 1 $((TTL * 2 + 20))); do
  [ "$(sessions)" -eq 0 ] && break
  sleep 1
done
SESSIONS_LEFT=$(sessions)
SESSIONS_GONE_AT=$(($(date +%s) - START))

# File descriptors: wait until the server is idle again (its clients are gone).
FDS_IDLE_AFTER=$(fds "$SERVER_PID")
for _ in $(seq 1 30); do
  FDS_IDLE_AFTER=$(fds "$SERVER_PID")
  [ "$FDS_IDLE_AFTER" -le "$FDS_IDLE_BEFORE" ] && break
  sleep 1
done

# Every surviving image validates.
VALID=0
INVALID=()
for repo in $("$HOIST" catalog "$HOST"); do
  for tag in $("$HOIST" ls "$HOST/$repo" 2>/dev/null || true); do
    if "$HOIST" validate "docker://$HOST/$repo:$tag" >/dev/null 2>"$W/validate.err"; then
      VALID=$((VALID + 1))
    else
      INVALID+=("$repo:$tag: $(head -c 300 "$W/validate.err" | tr '\n' ' ')")
    fi
  done
done
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
RSS_END=$(rss "$SERVER_PID")

# SIGTERM drains and exits 0.
kill -TERM "$SERVER_PID"
TERM_RC=0
wait "$SERVER_PID" || TERM_RC=$?
SERVER_PID=

# Operation outcomes. Expected failures: a tag or manifest another client had just deleted
# (404 MANIFEST_UNKNOWN or NAME_UNKNOWN), and the connection refused or cut while the
# registry was down (after the client's retries). Anything else is unexpected.
GONE='MANIFEST_UNKNOWN|NAME_UNKNOWN'
DOWN='onnection refused|onnection reset|connection closed|broken pipe|error sending request'
cat "$W"/ops.* >"$W/ops"
summary=$(awk -v gone="$GONE" -v down="$DOWN" '
  { op=$1; rc=$2; n[op]++
    if (rc == 0) ok[op]++; else if ($0 ~ gone) g[op]++; else if ($0 ~ down) d[op]++; else o[op]++ }
  END { for (op in n) printf "| %s | %d | %d | %d | %d | %d |\n", op, n[op], ok[op], g[op], d[op], o[op] }' "$W/ops" | sort)
UNEXPECTED=$(awk -v gone="$GONE" -v down="$DOWN" '$2 != 0 && $0 !~ gone && $0 !~ down' "$W/ops" | head -20)
DOWN_EXAMPLES=$(awk -v gone="$GONE" -v down="$DOWN" '$2 != 0 && $0 !~ gone && $0 ~ down' "$W/ops" | head -3 | cut -c1-240)
TOTAL_OPS=$(wc -l <"$W/ops")

# RSS over the restarted server's life: first vs last quarter of its samples.
read -r RSS_Q1 RSS_Q4 RSS_MIN RSS_MAX < <(awk -v p="$(cat "$W/server.pid")" '
  $2 == p && $3 > 0 { r[n++] = $3 }
  function med(a, lo, hi,   i, j, t, m, k) { m = 0; for (i = lo; i < hi; i++) b[m++] = a[i]
    for (i = 1; i < m; i++) { t = b[i]; for (j = i - 1; j >= 0 && b[j] > t; j--) b[j+1] = b[j]; b[j+1] = t }
    return b[int(m / 2)] }
  END { q = int(n / 4); if (q < 1) q = 1
    mn = r[0]; mx = r[0]; for (k = 0; k < n; k++) { if (r[k] < mn) mn = r[k]; if (r[k] > mx) mx = r[k] }
    print med(r, 0, q), med(r, n - q, n), mn, mx }' "$W/samples")

fail=()
[ ${#INVALID[@]} -eq 0 ] || fail+=("${#INVALID[@]} images do not validate")
[ "$VALID" -gt 0 ] || fail+=("no image survived to validate")
[ "$FDS_IDLE_AFTER" -le "$FDS_IDLE_BEFORE" ] ||
  fail+=("fds: $FDS_IDLE_AFTER open when idle at the end, $FDS_IDLE_BEFORE at the start")
[ "$SESSIONS_LEFT" -eq 0 ] || fail+=("$SESSIONS_LEFT upload session dirs left")
[ "$RSS_Q4" -le $((RSS_Q1 * 5 / 4 + 8192)) ] ||
  fail+=("RSS grew: median $RSS_Q1 KiB in the first quarter, $RSS_Q4 KiB in the last")
[ "$TERM_RC" -eq 0 ] || fail+=("SIGTERM: exit status $TERM_RC")
[ -z "$UNEXPECTED" ] || fail+=("client operations failed for unexpected reasons")
verdict="PASS"
[ ${#fail[@]} -eq 0 ] || verdict="FAIL: $(IFS=';'; echo "${fail[*]}")"

report() {
  echo "# Soak of hoist serve ($(date -u +%Y-%m-%d\ %H:%M) UTC)"
  echo
  echo "Command: \`SECONDS_LOAD=$SECONDS_LOAD CLIENTS=$CLIENTS STALLED=$STALLED bash bench/soak.sh\`"
  echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr); shared with other work."
  echo "hoist: $("$HOIST" version 2>/dev/null | head -1), binary ${HOIST#"$PWD"/}."
  echo "Server flags: ${SERVE_FLAGS[*]}"
  echo
  echo "**$verdict**"
  echo
  echo "## Load"
  echo "- $CLIENTS hoist clients in loops for ${SECONDS_LOAD}s over $IMAGES images (3 layers of 256 KiB text each), 8 repositories x 6 tags: $TOTAL_OPS operations."
  echo "- $(cat "$W/stalled.txt" 2>/dev/null || echo 'stalled clients: no report')"
  echo "- kill -9 at ${KILLED_AT}s (RSS $RSS_AT_KILL KiB, $FDS_AT_KILL fds, $SESSIONS_AT_KILL upload session dirs); restarted at ${RESTARTED_AT}s with $SESSIONS_AFTER_RESTART session dirs on disk."
  echo
  echo "| operation | count | ok | target deleted by another client | registry down (kill) | other failure |"
  echo "|---|---|---|---|---|---|"
  echo "$summary"
  if [ -n "$DOWN_EXAMPLES" ]; then
    echo
    echo "Failures while the registry was down (first 3):"
    echo '```'
    echo "$DOWN_EXAMPLES"
    echo '```'
  fi
  if [ -n "$UNEXPECTED" ]; then
    echo
    echo "Unexpected failures (first 20):"
    echo '```'
    echo "$UNEXPECTED"
    echo '```'
  fi
  echo
  echo "## Checks"
  echo "- Images validated at the end: $VALID ok, ${#INVALID[@]} failed."
  for v in "${INVALID[@]}"; do echo "  - $v"; done
  echo "- File descriptors of the idle server: $FDS_IDLE_BEFORE before any client (first server), $FDS_IDLE_AFTER after the load (restarted server)."
  echo "- Upload session dirs: $SESSIONS_AT_END when the load ended, $SESSIONS_LEFT left at ${SESSIONS_GONE_AT}s (TTL ${TTL}s)."
  echo "- RSS of the restarted server: median $RSS_Q1 KiB over the first quarter of its samples, $RSS_Q4 KiB over the last; min $RSS_MIN, max $RSS_MAX KiB; $RSS_END KiB at the end. First server: $RSS_START KiB at start, $RSS_AT_KILL KiB when killed."
  echo "- SIGTERM: exit status $TERM_RC."
  echo
  echo "## Samples (every 10 s: seconds since the load started, server pid, RSS KiB, fds, session dirs)"
  echo '```'
  awk 'NR % 10 == 1' "$W/samples"
  echo '```'
}
if [ "$OUT" = - ]; then
  report
else
  mkdir -p "$(dirname "$OUT")"
  report | tee "$OUT"
fi
[ "$verdict" = PASS ]
