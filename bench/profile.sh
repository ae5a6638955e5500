#!/usr/bin/env bash
# Where the CPU goes, per process, when the registry does most of the work: a push from an
# OCI layout (nothing to compress) and a registry-to-registry copy, by hoist and by crane
# (skopeo too with PEERS=skopeo), each into a fresh distribution registry, under `perf
# record`. For every process (client, registry, source registry) it reports CPU seconds,
# the kernel's share, and the functions that take the most samples (Go functions of the
# stripped registry binary resolved with `go tool addr2line` when Go is installed).
#
#   bash bench/profile.sh                       # DATA=text SCENARIOS="layout copy"
#   DATA=real SCENARIOS=copy bash bench/profile.sh
#
# The question it answers: can any client be much faster than another here, or is the
# registry's CPU the floor? On C cores, no client can finish before (registry CPU) / C.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-text}
source bench/lib.sh

SCENARIOS=${SCENARIOS:-layout copy}
PEERS=${PEERS:-crane}
TOP=${TOP:-8}
BENCH_ENV="SCENARIOS=\"$SCENARIOS\" PEERS=\"$PEERS\" "
need perf "apt-get install linux-perf"
need python3 "apt-get install python3"
need_registry
bench_workdir hoist-profile
build_hoist

# summarize NAME PERFDATA TICKS: one markdown block for a recorded process.
summarize() {
  perf script -i "$2" -F ip,sym,dso 2>/dev/null | python3 -c "$SUMMARY_PY" "$1" "$3" "$TCK" "$TOP" "$REGISTRY_BIN"
}
# The summary program (perf script lines on stdin).
SUMMARY_PY=$(cat <<'PY'
import collections, re, shutil, subprocess, sys
name, ticks, tck, top, registry = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
count, unresolved = collections.Counter(), collections.Counter()
kernel = total = 0
for line in sys.stdin:
    m = re.match(r"\s*([0-9a-f]+)\s+(.*)\s+\((.*)\)\s*$", line)
    if not m:
        continue
    ip, sym, dso = m.groups()
    total += 1
    if dso == "[kernel.kallsyms]":
        kernel += 1
        count["[k] " + sym] += 1
    elif sym == "[unknown]" and dso == registry:
        unresolved[int(ip, 16)] += 1
    else:
        count[sym if sym != "[unknown]" else f"? ({dso.rsplit('/', 1)[-1]})"] += 1
if unresolved and shutil.which("go"):
    addrs = list(unresolved)
    out = subprocess.run(["go", "tool", "addr2line", registry], input="".join(f"0x{a:x}\n" for a in addrs),
                         capture_output=True, text=True).stdout.splitlines()
    for a, fn in zip(addrs, out[0::2]):
        count[fn] += unresolved[a]
else:
    for a, n in unresolved.items():
        count["? (registry)"] += n
cpu = ticks / tck
print(f"### {name}: {cpu:.2f} CPU-s, kernel {100 * kernel / max(total, 1):.0f}%\n")
for fn, n in count.most_common(top):
    print(f"- {100 * n / max(total, 1):.1f}% {fn}")
print()
PY
)

# run_profiled NAME CMD...: CMD under perf record, the registries in REGS recorded too;
# appends the summaries to $W/report.md.
run_profiled() {
  local name=$1; shift
  local pp=() p i=0 t0=() c
  for p in $REGS; do
    perf record -q -o "$W/reg$i.data" -p "$p" >/dev/null 2>&1 &
    pp+=($!)
    t0+=("$(cpu_ticks "$p")")
    i=$((i + 1))
  done
  sleep 0.5
  /usr/bin/time -f '%e %U %S' -o "$W/time.txt" perf record -q -o "$W/client.data" "$@" >/dev/null 2>"$W/err.txt" || {
    echo "$BENCH: FAILED: $name: $*" >&2; cat "$W/err.txt" >&2; exit 1; }
  read -r wall user sys <"$W/time.txt"
  {
    echo "## $kind, $scenario: $name (wall ${wall} s)"
    echo
  } >>"$W/report.md"
  c=$(python3 -c "print(round(($user + $sys) * $TCK))")
  summarize "$name (client)" "$W/client.data" "$c" >>"$W/report.md"
  i=0
  for p in $REGS; do
    kill -INT "${pp[$i]}"; wait "${pp[$i]}" 2>/dev/null || true
    summarize "${ROLES[$i]}" "$W/reg$i.data" "$(( $(cpu_ticks "$p") - ${t0[$i]} ))" >>"$W/report.md"
    i=$((i + 1))
  done
}

: >"$W/report.md"
for kind in $DATA; do
  rm -rf "$W/img"
  make_image "$kind" "$W/img"
  for scenario in $SCENARIOS; do
    for tool in hoist $PEERS; do
      [ "$tool" = crane ] && ! have_crane && continue
      kill_servers
      rm -rf "$W/dst" "$W/src" "$W/hcache"
      start_distribution DST "$W/dst"
      case $scenario in
        layout)
          REGS=$DST_PID; ROLES=(registry)
          case $tool in
            hoist) run_profiled hoist "$HOIST" push --no-cache --quiet "oci:$W/img/img.oci:bench" "$DST/bench/img:v1" ;;
            crane) run_profiled crane crane push --insecure "$W/img/img.oci" "$DST/bench/img:v1" ;;
            skopeo) run_profiled skopeo "${NO_BLOB_CACHE[@]}" skopeo copy -q --dest-tls-verify=false "oci:$W/img/img.oci:bench" "docker://$DST/bench/img:v1" ;;
          esac
          ;;
        copy)
          start_distribution SRC "$W/src"
          "$HOIST" push --no-cache --quiet "oci:$W/img/img.oci:bench" "$SRC/bench/img:v1" >/dev/null
          "$HOIST" pull --no-cache --quiet "$SRC/bench/img:v1" "oci:$W/warm" >/dev/null
          rm -rf "$W/warm"
          REGS="$SRC_PID $DST_PID"; ROLES=("source registry" "destination registry")
          case $tool in
            hoist) run_profiled hoist env HOIST_CACHE_DIR="$W/hcache" "$HOIST" copy "docker://$SRC/bench/img:v1" "docker://$DST/bench/img:v1" ;;
            crane) run_profiled crane crane copy --insecure "$SRC/bench/img:v1" "$DST/bench/img:v1" ;;
            skopeo) run_profiled skopeo "${NO_BLOB_CACHE[@]}" skopeo --insecure-policy copy -q --src-tls-verify=false \
              --dest-tls-verify=false "docker://$SRC/bench/img:v1" "docker://$DST/bench/img:v1" ;;
          esac
          ;;
        *) echo "$BENCH: unknown scenario $scenario (layout, copy)" >&2; exit 1 ;;
      esac
    done
  done
done
kill_servers

{
  echo "# Profiles: where the CPU goes in a push from a layout and a registry-to-registry copy"
  echo
  echo "Command: \`DATA=\"$DATA\" ${BENCH_ENV}bash $BENCH\`"
  echo
  machine
  echo
  echo "Client CPU from /usr/bin/time (user+system), registries' from /proc/PID/stat; shares from"
  echo "perf samples of each process (one run each, perf attached: absolute times are inflated)."
  echo
  cat "$W/report.md"
} >"$W/final.md"
cat "$W/final.md"
if [ "$OUT" != - ]; then
  cp "$W/final.md" "$OUT"
  echo "(written to $OUT)" >&2
fi
