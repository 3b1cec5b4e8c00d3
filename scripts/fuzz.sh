#!/usr/bin/env bash
# Run every libFuzzer target for a while: scripts/fuzz.sh BUILD_DIR SECONDS
# (or FUZZ_RUNS=N scripts/fuzz.sh BUILD_DIR: N executions each)
# Seeds come from tests/fuzz/corpus/<name>/ (read-only); new inputs go to
# BUILD_DIR/corpus/<name>/; a crash is written to BUILD_DIR/crashes/ and
# makes this script fail (turn it into a regression test: docs/testing.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?build dir}
secs=${2:-60}
case $build in /*) ;; *) build=$root/$build ;; esac
mkdir -p "$build/crashes"
# FUZZ_RUNS=N: run each target for N executions instead of SECONDS
# (issue 8's figure: make fuzz FUZZ_RUNS=10000000, ~2-16 min per target)
limit=-max_total_time=$secs
[ -z "${FUZZ_RUNS:-}" ] || limit=-runs=$FUZZ_RUNS
failed=()
for t in frame record control method scenario config; do
    bin=$build/tests/fuzz/fuzz_$t
    work=$build/corpus/$t
    mkdir -p "$work"
    echo "== fuzz_$t (${limit#-})"
    if ! "$bin" $limit -print_final_stats=1 -max_len=65536 \
        -artifact_prefix="$build/crashes/$t-" "$work" "$root/tests/fuzz/corpus/$t" \
        >"$build/fuzz_$t.log" 2>&1; then
        failed+=("$t")
        tail -30 "$build/fuzz_$t.log"
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz_$t.log" | tr '\n' ' '
    echo
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs in $build/crashes)"; exit 1
fi
echo "fuzz: no crash"
