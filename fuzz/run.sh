#!/usr/bin/env bash
# Run each fuzz target for a bounded time and print the executions per target:
#   bash fuzz/run.sh [SECONDS]            (default 60 s per target)
#   TARGETS="reference range" bash fuzz/run.sh 30
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Seeds come from
# fuzz/seeds/TARGET, the growing corpus lives in fuzz/corpus/TARGET (not committed), and a
# crash leaves its input in fuzz/artifacts/TARGET/ (reproduce with
# `cargo +nightly fuzz run -O -a TARGET fuzz/artifacts/TARGET/crash-...`). Every crash found
# becomes a fixed bug and a regression test in the normal test suite.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
read -r -a targets <<< "${TARGETS:-reference manifest tarball range challenge router}"

# -a: debug assertions and overflow checks on, so that an arithmetic overflow is a crash
# (cargo fuzz turns them off with -O).
cargo +nightly fuzz build -O -a
failed=()
summary=()
mkdir -p artifacts logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -d "seeds/$t" ]; then
        cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    fi
    log="logs/$t.log"
    max_len=4096
    [ "$t" = tarball ] && max_len=65536
    # Targets that make a registry per input: metrics-util's histogram buckets do not free
    # their blocks when dropped undrained (no Drop for AtomicBucket), which LeakSanitizer
    # reports; a running registry drains them on upkeep.
    leaks=1
    case "$t" in router | range) leaks=0 ;; esac
    set +e
    ASAN_OPTIONS="detect_leaks=$leaks" cargo +nightly fuzz run -O -a "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -max_len="$max_len" \
        -rss_limit_mb=2048 -timeout=10 -detect_leaks="$leaks" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        summary+=("$(printf '%-10s %12s executions in %ss, corpus %s inputs, no crash' "$t" "${execs:-?}" "$secs" "$corpus")")
    else
        failed+=("$t")
        summary+=("$(printf '%-10s %12s executions, CRASHED (exit %s): see fuzz/%s and fuzz/artifacts/%s/' "$t" "${execs:-?}" "$rc" "$log" "$t")")
    fi
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
