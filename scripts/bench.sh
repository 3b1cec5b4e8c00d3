#!/usr/bin/env bash
# make bench: measure this machine's ceilings and Holdfast's figures against
# them, print a table (figure, value, floor, PASS/FAIL) and, with
# BENCH_JSON=FILE, write the figures as one flat JSON object.
#
# Every figure comes from bench/hf_bench.c (hf-bench), which plays the
# engine (producer + the real dispatcher, durable) and runs the real
# holdfast-aggregator as a child process. docs/benchmarks.md says what each
# figure measures and how.
#
# Exit status: 0 all floors met, 1 a floor failed, 2 a run went wrong
# (data lost, timeout, missing binary).
#
# Environment:
#   HF_BIN            build directory (default build)
#   BENCH_JSON        write the figures there as one flat JSON object
#   BENCH_TMP         parent of the scratch directory (default /tmp; must be
#                     a real disk, not tmpfs: the figures are about fsync)
#   BENCH_REPEAT      runs of each throughput figure, best kept (default 3)
#   BENCH_RAW_N       records per raw LMDB run          (default 3000000)
#   BENCH_ZMQ_N       samples per raw ZeroMQ run         (default 20000000)
#   BENCH_OFFLINE_N   records per offline run            (default 3000000)
#   BENCH_E2E_N       records per end-to-end run         (default 3000000)
#   BENCH_LAT_S       seconds of 4 channels at 1 kHz     (default 10)
#   BENCH_BACKLOG_N   samples buffered before the drain  (default 10000000)
#   BENCH_AGG_S       seconds of each many-engines run   (default 30)
#   BENCH_AGG_ENGINES engines tried first                 (default 256); if the
#                     aggregator keeps up, 1.5x and 2x are tried too (up to
#                     BENCH_AGG_MAX, default 512); if not, half as many, then
#                     half again (down to 16) until one keeps up
#   BENCH_HWSIM_S     seconds of each hwsim rate try      (default 30)
#   BENCH_HWSIM_RATE  try only this total rate (samples/s, 32 channels);
#                     otherwise 100000 first, then x1.5 up to 320000 (32
#                     channels x the method's 10 kHz) while it is sustained;
#                     if 100000 is not, half as much until one is (down to
#                     12500); no new try once BENCH_HWSIM_BUDGET_S (default
#                     180) would be passed
#   BENCH_CUTS        link cuts per availability figure  (default 20)
#   BENCH_WATCHDOG_MS the aggregator's --watchdog-ms there (default 3000)
#   BENCH_KEEP=1      keep the scratch directory (logs, stores)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${HF_BIN:-$root/build}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
hfb=$bin/bench/hf-bench
agg=$bin/aggregator/holdfast-aggregator
for f in "$hfb" "$agg"; do
    [ -x "$f" ] || { echo "bench: missing $f (run 'make' first)" >&2; exit 2; }
done

repeat=${BENCH_REPEAT:-3}
raw_n=${BENCH_RAW_N:-3000000}
zmq_n=${BENCH_ZMQ_N:-20000000}
off_n=${BENCH_OFFLINE_N:-3000000}
e2e_n=${BENCH_E2E_N:-3000000}
lat_s=${BENCH_LAT_S:-10}
backlog_n=${BENCH_BACKLOG_N:-10000000}
agg_s=${BENCH_AGG_S:-30}
agg_first=${BENCH_AGG_ENGINES:-256}
agg_max=${BENCH_AGG_MAX:-512}
cuts=${BENCH_CUTS:-20}
hwsim_s=${BENCH_HWSIM_S:-30}
hwsim_pin=${BENCH_HWSIM_RATE:-}
hwsim_budget=${BENCH_HWSIM_BUDGET_S:-180}
hwsim_cap=320000   # 32 channels x HF_METHOD_RATE_MAX (10 kHz)
wd_ms=${BENCH_WATCHDOG_MS:-3000}

base=${BENCH_TMP:-/tmp}
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
    echo "bench: $base is tmpfs; using $bin instead (the figures need a real disk)" >&2
    base=$bin
fi
dir=$(mktemp -d "$base/holdfast-bench.XXXXXX")

cleanup() {
    local rc=$? p f
    # An hf-bench that died leaves its aggregator's PID file: stop that PID.
    for f in "$dir"/*/aggregator.pid; do
        [ -e "$f" ] || continue
        p=$(cat "$f")
        kill "$p" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $dir" >&2
    else
        rm -rf "$dir"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

results=$dir/results   # "key value" lines from every run
: >"$results"
log=$dir/bench.log

# run NAME ARGS...: one hf-bench run in a fresh scratch directory; its
# "key value" lines are appended to $results, tagged with the run name.
run_no=0
run() {
    local name=$1; shift
    run_no=$((run_no + 1))
    local out=$dir/run$run_no.out
    printf '  %-10s ' "$name" >&2
    local t0=$(date +%s%N)
    if ! "$hfb" "$@" >"$out" 2>>"$log"; then
        echo "FAILED" >&2
        echo "bench: hf-bench $* failed; its log:" >&2
        tail -20 "$log" >&2
        for f in "$dir"/*/aggregator.log; do
            [ -e "$f" ] && { echo "--- $f" >&2; tail -5 "$f" >&2; }
        done
        exit 2
    fi
    printf '%5.1f s\n' "$(( ($(date +%s%N) - t0) / 1000000 ))e-3" >&2
    cat "$out" >>"$results"
    rm -rf "$dir/s$run_no"
}

# best KEY: the highest value of KEY over all runs; last KEY: the last one.
best() { awk -v k="$1" '$1 == k { if (!n++ || $2 > m) m = $2 } END { if (n) print m }' "$results"; }
last() { awk -v k="$1" '$1 == k { v = $2 } END { print v }' "$results"; }

echo "bench: scratch $dir ($(df -h --output=source,fstype "$dir" | tail -1 | tr -s ' '))" >&2
echo "bench: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)" >&2
for i in $(seq 1 "$repeat"); do
    run raw-lmdb raw-lmdb "$dir/s$((run_no + 1))" "$raw_n"
done
for i in $(seq 1 "$repeat"); do
    run raw-zmq raw-zmq "$zmq_n"
done
for i in $(seq 1 "$repeat"); do
    run offline offline "$dir/s$((run_no + 1))" "$off_n"
done
for i in $(seq 1 "$repeat"); do
    run e2e e2e "$agg" "$dir/s$((run_no + 1))" "$e2e_n"
done
run latency latency "$agg" "$dir/s$((run_no + 1))" "$lat_s"
run backlog backlog "$agg" "$dir/s$((run_no + 1))" "$backlog_n"
# Diagnostic: the drain's two durable halves alone, at the link's batch size.
run parts parts "$dir/s$((run_no + 1))" "${BENCH_PARTS_N:-3000000}" 4096
run avail availability "$agg" "$dir/s$((run_no + 1))" "$cuts" "$wd_ms"

# Many engines at 1 kHz: the most engines one aggregator kept up with. Each
# try is a fresh aggregator and store; the script keeps the output of the
# best try that kept up (agg_ok) and of the lowest that did not (agg_nok).
agg_ok='' agg_nok=''
agg_try() {   # agg_try N: 0 if the aggregator kept up with N engines
    run "agg-$1" agg-engines "$agg" "$dir/s$((run_no + 1))" "$1" "$agg_s"
    if [ "$(awk '$1 == "agg_engines_ok" { print $2 }' "$dir/run$run_no.out")" = 1 ]; then
        agg_ok=$dir/run$run_no.out
        return 0
    fi
    [ -z "$agg_nok" ] || [ "$1" -lt "$(awk '$1 == "agg_engines_n" { print $2 }' "$agg_nok")" ] &&
        agg_nok=$dir/run$run_no.out
    return 1
}
if agg_try "$agg_first"; then
    for m in $((agg_first * 3 / 2)) $((agg_first * 2)); do
        [ "$m" -le "$agg_max" ] || break
        agg_try "$m" || break
    done
else
    m=$((agg_first / 2))
    while [ "$m" -ge 16 ]; do
        agg_try "$m" && break
        m=$((m / 2))
    done
fi
aggv() { [ -n "$1" ] && awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# The real engine on hwsim: the highest total sample rate sustained (see
# docs/benchmarks.md). Each try is a fresh aggregator, spool and store; the
# script keeps the output of the best try sustained (hw_ok) and of the
# lowest not sustained (hw_nok).
hw_ok='' hw_nok=''
hw_try() {   # hw_try RATE: 0 if the engine sustained RATE samples/s
    run "hwsim-$1" hwsim "$agg" "$dir/s$((run_no + 1))" "$1" "$hwsim_s"
    local out=$dir/run$run_no.out
    if [ "$(awk '$1 == "hwsim_ok" { print $2 }' "$out")" = 1 ]; then
        hw_ok=$out
        return 0
    fi
    [ -z "$hw_nok" ] || [ "$1" -lt "$(aggv "$hw_nok" hwsim_rate_hz)" ] && hw_nok=$out
    return 1
}
hw_t0=$(date +%s)
hw_fits() { [ $(($(date +%s) - hw_t0 + hwsim_s + 5)) -le "$hwsim_budget" ]; }
if [ -n "$hwsim_pin" ]; then
    hw_try "$hwsim_pin" || true
elif hw_try 100000; then
    r=100000
    while [ "$r" -lt "$hwsim_cap" ] && hw_fits; do
        r=$((r * 3 / 2))
        [ "$r" -le "$hwsim_cap" ] || r=$hwsim_cap
        hw_try "$r" || break
    done
else
    r=50000
    while [ "$r" -ge 12500 ] && hw_fits; do
        hw_try "$r" && break
        r=$((r / 2))
    done
fi

raw_lmdb=$(best raw_lmdb_append_per_s)
raw_zmq=$(best raw_zmq_samples_per_s)
offline=$(best offline_append_per_s)
e2e=$(best e2e_per_s)
drain=$(last drain_10m_s)
rss=$(last engine_peak_rss_mib)
p99=$(last latency_p99_ms)
ctl=$(last control_lane_after_reconnect_ms)
agg_engines=$(aggv "$agg_ok" agg_engines_n || echo 0)
agg_engines=${agg_engines:-0}
avail=$(last availability_detect_ms)
hwsim=$(aggv "$hw_ok" hwsim_rate_hz || echo 0)
hwsim=${hwsim:-0}

fails=0
# row NAME VALUE UNIT OP FLOOR FLOOR_TEXT: one table line; OP is ge/le/lt.
row() {
    local name=$1 value=$2 unit=$3 op=$4 floor=$5 ftext=$6 verdict
    verdict=$(awk -v v="$value" -v f="$floor" -v op="$op" 'BEGIN {
        ok = (op == "ge") ? v >= f : (op == "le") ? v <= f : v < f
        print ok ? "PASS" : "FAIL" }')
    [ "$verdict" = PASS ] || fails=$((fails + 1))
    printf '%-32s %14s %-9s %-30s %s\n' "$name" "$value" "$unit" "$ftext" "$verdict"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }'; }
floor_of() { awk -v r="$1" -v f="$2" 'BEGIN { printf "%.0f", r * f }'; }

echo
printf '%-32s %14s %-9s %-30s %s\n' figure value unit floor verdict
printf '%-32s %14s %-9s %-30s %s\n' raw_lmdb_append_per_s "$raw_lmdb" rec/s "(ceiling)" ""
printf '%-32s %14s %-9s %-30s %s\n' raw_zmq_samples_per_s "$raw_zmq" samples/s "(ceiling)" ""
row offline_append_per_s "$offline" rec/s ge "$(floor_of "$raw_lmdb" 0.35)" \
    ">= 35 % raw ($(ratio "$offline" "$raw_lmdb"))"
row e2e_per_s "$e2e" rec/s ge "$(floor_of "$raw_lmdb" 0.20)" \
    ">= 20 % raw ($(ratio "$e2e" "$raw_lmdb"))"
row drain_10m_s "$drain" s le 10 "<= 10 s"
row engine_peak_rss_mib "$rss" MiB lt 64 "< 64 MiB"
row latency_p99_ms "$p99" ms le 10 "<= 10 ms"
row control_lane_after_reconnect_ms "$ctl" ms le 1000 "<= 1000 ms"
row agg_engines_1khz "$agg_engines" engines ge 256 ">= 256 (4 ch at 1 kHz each)"
row availability_detect_ms "$avail" ms le $((wd_ms + 500)) "<= watchdog $wd_ms + 500 ms"
row hwsim_max_rate_hz "$hwsim" Hz ge 100000 ">= 100000 (sum, 32 ch, ${hwsim_s} s)"

echo
echo "details (not floors):"
for k in raw_lmdb_records raw_zmq_samples offline_records e2e_records e2e_send_s e2e_total_s \
         latency_records latency_p50_ms latency_commit_p50_ms latency_commit_p99_ms latency_p999_ms latency_max_ms latency_late_ticks \
         backlog_records backlog_buffer_s reconnect_after_start_ms drain_after_reconnect_s \
         control_lane_after_start_ms engine_peak_rss_buffering_mib engine_peak_rss_anon_mib \
         engine_peak_rss_file_mib engine_hwm_reset parts_store_commit_per_s \
         parts_spool_read_per_s parts_spool_trim_per_s; do
    printf '  %-32s %s\n' "$k" "$(last "$k")"
done
for k in availability_detect_ms_p90 availability_detect_ms_max availability_detect_ms_min \
         availability_closed_detect_ms availability_closed_detect_ms_p90 \
         availability_closed_detect_ms_max availability_watchdog_ms; do
    printf '  %-32s %s\n' "$k" "$(last "$k")"
done
for f in "$agg_ok" "$agg_nok"; do
    [ -n "$f" ] || continue
    tag=kept_up; [ "$f" = "$agg_nok" ] && tag=not_kept_up
    echo "  many engines, $tag at $(aggv "$f" agg_engines_n) engines:"
    awk '$1 ~ /^agg_engines_/ && $1 != "agg_engines_n" && $1 != "agg_engines_ok" {
        printf "    %-34s %s\n", $1, $2 }' "$f"
done
echo "  many engines, all tries (engines:kept up): $(awk '$1 == "agg_engines_n" { n = $2 }
    $1 == "agg_engines_ok" { printf "%s:%s ", n, $2 }' "$results")"
for f in "$hw_ok" "$hw_nok"; do
    [ -n "$f" ] || continue
    tag=sustained; [ "$f" = "$hw_nok" ] && tag=not_sustained
    echo "  hwsim, $tag at $(aggv "$f" hwsim_rate_hz) samples/s:"
    awk '$1 ~ /^hwsim_/ && $1 != "hwsim_rate_hz" && $1 != "hwsim_ok" {
        printf "    %-34s %s\n", $1, $2 }' "$f"
done
[ "$hwsim" != "$hwsim_cap" ] ||
    echo "  hwsim: $hwsim_cap is the most one method can ask for (32 channels x 10 kHz)"
echo "  hwsim, all tries (rate:sustained:why:late_pct:lag_p99_us): $(awk '
    $1 == "hwsim_rate_hz" { r = $2 } $1 == "hwsim_ok" { o = $2 } $1 == "hwsim_why" { w = $2 }
    $1 == "hwsim_late_pct" { l = $2 }
    $1 == "hwsim_lag_p99_us" { printf "%s:%s:%s:%s:%s ", r, o, w, l, $2 }' "$results")"
for f in cpu io; do
    [ -r /proc/pressure/$f ] &&
        echo "  pressure_$f (avg60, other work slows every figure): $(head -1 /proc/pressure/$f)"
done
echo "  all runs: $(awk '$1 ~ /_per_s$/ && $1 !~ /^(parts|agg)/ { printf "%s=%s ", $1, $2 }' "$results")"

if [ -n "${BENCH_JSON:-}" ]; then
    cat >"$BENCH_JSON" <<EOF
{"raw_lmdb_append_per_s": $raw_lmdb, "raw_zmq_samples_per_s": $raw_zmq, "offline_append_per_s": $offline, "e2e_per_s": $e2e, "drain_10m_s": $drain, "engine_peak_rss_mib": $rss, "latency_p99_ms": $p99, "control_lane_after_reconnect_ms": $ctl, "agg_engines_1khz": $agg_engines, "availability_detect_ms": $avail, "hwsim_max_rate_hz": $hwsim}
EOF
    echo "bench: figures written to $BENCH_JSON" >&2
fi
if [ "$fails" -gt 0 ]; then
    echo "bench: $fails figure(s) below their floor" >&2
    exit 1
fi
echo "bench: all floors met" >&2
