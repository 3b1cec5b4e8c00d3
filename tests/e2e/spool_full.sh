#!/usr/bin/env bash
# spool_full.sh - ctest e2e_spool_full: the engine's spool fills up while the
# aggregator is down; nothing may crash, corrupt or vanish unannounced.
#
# Cases (each with its own engine id and spool, one aggregator store):
#   disk          the spool lives on a 3 MiB ext4 filesystem (a loop-mounted
#                 image in the work dir) and the disk itself fills (ENOSPC),
#                 far below the spool's own bound. Needs root and loop
#                 devices; skipped (with the reason) otherwise. Default flags.
#   bound-block, bound-decimate, bound-drop-oldest
#                 --spool-max-bytes B --full-policy P: the spool's own bound,
#                 B = HF_E2E_SPOOL_BOUND, default 1048576 (the smallest the
#                 flag accepts). Run only if holdfast-engine --help lists both flags
#                 (the full-spool policies of the dispatcher issue).
# If no case can run, the test exits 77 (SKIP_RETURN_CODE in CMake).
#
# Each case:
#   1. With the aggregator down the engine runs a method that produces about
#      twice what fits; the aggregator stays down until the method's run time
#      is over. Asserted: the engine stays alive (no crash); for "disk", that
#      the dispatcher reported the full disk. Printed: CPU and log lines the
#      engine spent while full.
#   2. The aggregator comes back on the same endpoints. Asserted: the engine
#      drains within 30 s and exits 0 with its run completed, without flooding its log
#      (> 64 MiB is a failure); the export holds per lane exactly
#      1..committed, each once, no content duplicate, missing seqs only
#      inside ranges announced by gap records; samples stored + dropped ==
#      samples taken, the data lane's gap counts add up to "dropped";
#      block drops nothing; disk (its bound is the filesystem), decimate and
#      drop-oldest dropped something and
#      stored the spool-full alarm (code 1001).
#   3. A second engine reopens the same spool (same flags, aggregator up) and
#      runs tests/e2e/short.method. Asserted: the spool opens (it is valid,
#      same epoch), that run completes, and the store holds 1..committed
#      again: the sequence went on across the full episode. If step 2's
#      engine never drained, it is SIGKILLed first and step 3 still runs, to
#      tell "stuck" from "lost data"; the case fails either way.
#
# TODO(dispatcher issue): while full with the aggregator down, the block
# policy and the disk case should neither spin nor flood the log; today the
# figures are printed, not asserted. The summary's dropped=/gaps= fields are
# used when present (absent: taken as 0).
#
# Environment: HF_E2E_CASES (space-separated subset of the cases above),
# HF_E2E_SPOOL_BOUND (bytes, bound cases), HF_BIN, HF_E2E_KEEP (see lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S_LOG_MAX=$(( 64 << 20 ))   # bytes: an engine log past this is a flood
cases=${HF_E2E_CASES:-disk bound-block bound-decimate bound-drop-oldest}

# ---- which cases can run -------------------------------------------------
help=$("$E2E_ENG" --help 2>&1 || true)
bound_reason=
if ! grep -q -- "--spool-max-bytes" <<<"$help" || ! grep -q -- "--full-policy" <<<"$help"; then
    bound_reason="holdfast-engine has no --spool-max-bytes/--full-policy yet"
fi

e2e_init spool_full
disk_reason=
if [[ " $cases " == *" disk "* ]] && ! e2e_small_fs 3M; then
    disk_reason=$E2E_FS_REASON
fi
mnt=$E2E_FS_MNT

run_cases=()
for c in $cases; do
    case $c in
    disk) [ -z "$disk_reason" ] && run_cases+=("$c") || say "case disk SKIPPED: $disk_reason" ;;
    bound-*) [ -z "$bound_reason" ] && run_cases+=("$c") || say "case $c SKIPPED: $bound_reason" ;;
    *) fail "unknown case '$c'" ;;
    esac
done
if [ ${#run_cases[@]} -eq 0 ]; then
    say "SKIPPED: no case can run here"
    exit 77
fi

e2e_agg_start "$E2E_DIR/store" "$E2E_DIR/aggregator.log"
engines_ep=$AGG_ENGINES
control_ep=$AGG_CONTROL
e2e_agg_stop

# s_cpu_ticks PID: user+system clock ticks the process has used.
s_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
s_full_logged() { grep -qE "commit failed|No space left|spool full|HF_EFULL" "$1" 2>/dev/null; }
s_ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

failed_cases=()
# s_case NAME SPOOL METHOD RUN_MS FLAGS...: one scenario (see the header).
# Returns 1 on any failure (the reasons are printed).
s_case() {
    local name=$1 spool=$2 method=$3 run_ms=$4
    shift 4
    local id="full-$name" d="$E2E_DIR/$name" ok=1
    mkdir -p "$d"
    say "== case $name: spool $spool, flags: ${*:-none}; aggregator down"
    local t0
    t0=$(date +%s%N)
    : >"$d/engine.log"
    "$E2E_ENG" --id "$id" --connect "$engines_ep" --spool "$spool" --method "$method" \
        --drain-timeout 60000 --summary "$d/summary" "$@" >"$d/engine.out" 2>"$d/engine.log" &
    local eng=$!
    e2e_track "$eng"

    # 1. full, aggregator down, until the run's time is over (+1 s)
    local full_at=-
    while [ "$(s_ms "$t0")" -lt $(( run_ms + 1000 )) ]; do
        if e2e_dead "$eng"; then
            wait "$eng" && E2E_RC=0 || E2E_RC=$?
            tail -5 "$d/engine.log"
            say "case $name: the engine exited (rc=$E2E_RC) while the aggregator was down"
            return 1
        fi
        if [ "$full_at" = - ] && s_full_logged "$d/engine.log"; then
            full_at=$(s_ms "$t0")
            say "spool reported full after ${full_at} ms (data.mdb $(stat -c %s "$spool/data.mdb")" \
                "bytes); CPU so far $(( $(s_cpu_ticks "$eng") * 1000 / $(getconf CLK_TCK) )) ms"
        fi
        [ "$(stat -c %s "$d/engine.log")" -le "$S_LOG_MAX" ] ||
            { say "case $name: engine log flood (> $S_LOG_MAX bytes) while full"; ok=0; break; }
        sleep 0.05
    done
    say "aggregator down for $(s_ms "$t0") ms: engine alive, CPU" \
        "$(( $(s_cpu_ticks "$eng") * 1000 / $(getconf CLK_TCK) )) ms, $(wc -l <"$d/engine.log")" \
        "log lines (not asserted)"
    if [ "$name" = disk ] && [ "$full_at" = - ]; then
        say "case $name: the disk never reported full"; ok=0
    fi

    # 2. the aggregator returns: drain, exit 0, check the store
    e2e_agg_start "$E2E_DIR/store" "$E2E_DIR/aggregator.log" "$engines_ep" "$control_ep"
    local t1 wrc=0
    t1=$(date +%s%N)
    e2e_wait_exit_log "$eng" 30 "$d/engine.log" "$S_LOG_MAX" || wrc=$?
    local drained=0 summary=
    case $wrc in
    0)
        if [ "$E2E_RC" -eq 0 ] && [ -s "$d/summary" ]; then
            drained=1
            summary=$(cat "$d/summary")
            say "drained in $(s_ms "$t1") ms: $summary"
        else
            tail -5 "$d/engine.log"
            say "case $name: engine exit status $E2E_RC after the aggregator returned"; ok=0
        fi
        ;;
    1) say "case $name: engine STUCK: not done 30 s after the aggregator returned"; ok=0 ;;
    2) say "case $name: engine log FLOOD (> $S_LOG_MAX bytes) after the aggregator returned"; ok=0 ;;
    esac
    if [ $drained -eq 0 ]; then
        head -c 2000000 "$d/engine.log" | sed "s/^[^ ]* //" | sort | uniq -c | sort -rn |
            head -5 | cut -c1-220 | sed 's/^/      /'
        if e2e_alive "$eng"; then
            say "SIGKILL the stuck engine pid=$eng, then check its spool by reopening it"
            { kill -KILL "$eng"; e2e_wait_exit "$eng" 10; } 2>/dev/null || true
        fi
        # a flooded log would fill the disk of the kept work dir: keep its head
        if [ "$(stat -c %s "$d/engine.log")" -gt "$S_LOG_MAX" ]; then
            head -c 4000000 "$d/engine.log" >"$d/engine.log.head"
            rm -f "$d/engine.log"
        fi
    else
        "$E2E_CLI" --control "$AGG_CONTROL" export --engine "$id" --format jsonl \
            --out "$d/export.jsonl" 2>/dev/null
        [ "$(kv "$summary" state)" = completed ] || { say "run not completed"; ok=0; }
        e2e_check_export "$d/export.jsonl" "$(kv "$summary" committed_control)" \
            "$(kv "$summary" committed_data)" || ok=0
        local chk=$d/export.jsonl.check run line stored taken dropped gapsum alarms
        run=$(kv "$summary" run)
        line=$(grep -E "^run $run " "$chk" || true)
        [[ $line == *" final=completed"* ]] || { say "run $run not stored as completed"; ok=0; }
        stored=$(sed -nE 's/.* samples=([0-9]+) .*/\1/p' <<<"$line")
        taken=$(kv "$summary" samples)
        dropped=$(kv "$summary" dropped)
        dropped=${dropped:-0}
        gapsum=$(awk '/^gap lane=data /{for(i=1;i<=NF;i++) if($i ~ /^count=/) s+=substr($i,7)} END{print s+0}' "$chk")
        alarms=$(grep -c '"kind":"alarm".*"code":1001' "$d/export.jsonl" || true)
        say "samples taken=$taken stored=${stored:-?} dropped=$dropped data-gap-count=$gapsum" \
            "spool-full alarms=$alarms"
        [ "${stored:-x}" = $(( taken - dropped )) ] ||
            { say "stored samples != taken - dropped: lost without announcement"; ok=0; }
        [ "$gapsum" -eq "$dropped" ] ||
            { say "gap records announce $gapsum dropped samples, the engine dropped $dropped"; ok=0; }
        case $name in
        bound-block)
            [ "$dropped" -eq 0 ] || { say "$name must drop nothing"; ok=0; }
            ;;
        # disk: a full filesystem is the spool's bound (it reserves its map
        # on disk), so the default policy (decimate) applies there too.
        *)
            [ "$dropped" -gt 0 ] || { say "$name: the bound was never hit (dropped=0)"; ok=0; }
            [ "$alarms" -gt 0 ] || { say "$name: no spool-full alarm (code 1001) stored"; ok=0; }
            ;;
        esac
        if [ "$name" = bound-block ]; then
            s_full_logged "$d/engine.log" || { say "bound-block: the bound was never hit"; ok=0; }
        fi
    fi

    # 3. the spool reopens (valid) and its sequence goes on
    "$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$spool" \
        --method "$E2E_HERE/short.method" --drain-timeout 30000 --summary "$d/summary2" "$@" \
        >"$d/engine2.out" 2>"$d/engine2.log" &
    local eng2=$!
    e2e_track "$eng2"
    : >>"$d/engine2.log"
    wrc=0
    e2e_wait_exit_log "$eng2" 60 "$d/engine2.log" "$S_LOG_MAX" || wrc=$?
    if [ $wrc -ne 0 ] || [ "$E2E_RC" -ne 0 ] || [ ! -s "$d/summary2" ]; then
        tail -5 "$d/engine2.log"
        case $wrc in
        1) say "case $name: the engine on the reopened spool is STUCK (60 s)" ;;
        2) say "case $name: the engine on the reopened spool FLOODS its log (> $S_LOG_MAX bytes)"
           head -c 2000000 "$d/engine2.log" | sed "s/^[^ ]* //" | sort | uniq -c | sort -rn |
               head -5 | cut -c1-220 | sed 's/^/      /'
           head -c 4000000 "$d/engine2.log" >"$d/engine2.log.head"
           rm -f "$d/engine2.log" ;;
        *) say "case $name: the engine on the reopened spool failed (rc=$E2E_RC)" ;;
        esac
        e2e_agg_stop
        return 1
    fi
    local summary2
    summary2=$(cat "$d/summary2")
    say "reopened: $summary2"
    grep -q "spool: open dir=$spool reopened" "$d/engine2.log" ||
        { say "the second engine did not reopen the existing spool"; ok=0; }
    [ $drained -eq 0 ] || [ "$(kv "$summary2" epoch)" = "$(kv "$summary" epoch)" ] ||
        { say "the spool got a new epoch"; ok=0; }
    "$E2E_CLI" --control "$AGG_CONTROL" export --engine "$id" --format jsonl \
        --out "$d/export2.jsonl" 2>/dev/null
    e2e_check_export "$d/export2.jsonl" "$(kv "$summary2" committed_control)" \
        "$(kv "$summary2" committed_data)" || ok=0
    grep -qE "^run $(kv "$summary2" run) .* final=completed" "$d/export2.jsonl.check" ||
        { say "the run on the reopened spool is not stored as completed"; ok=0; }
    e2e_agg_stop
    [ $ok -eq 1 ] || return 1
    say "case $name: OK"
}

for c in "${run_cases[@]}"; do
    rc=0
    case $c in
    disk) s_case disk "$mnt/spool" "$E2E_HERE/spool-full.method" 8000 || rc=1 ;;
    bound-*)
        s_case "$c" "$E2E_DIR/spool-$c" "$E2E_HERE/spool-bound.method" 4000 \
            --spool-max-bytes "${HF_E2E_SPOOL_BOUND:-1048576}" --full-policy "${c#bound-}" || rc=1
        ;;
    esac
    [ $rc -eq 0 ] || failed_cases+=("$c")
done
[ ${#failed_cases[@]} -eq 0 ] || fail "cases failed: ${failed_cases[*]} (ran: ${run_cases[*]})"
say "OK: cases ${run_cases[*]}"
