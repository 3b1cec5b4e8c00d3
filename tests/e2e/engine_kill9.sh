#!/usr/bin/env bash
# engine_kill9.sh - ctest e2e_engine_kill9: the engine is SIGKILLed at random
# moments and restarted on the same spool, again and again; nothing it
# committed may be lost or stored twice.
#
# One aggregator stays up. An engine runs tests/e2e/kill9.method on one
# spool; HF_KILLS times (default 20) it is killed with SIGKILL at a random
# moment and started again on the same spool (each start begins a new run and
# continues the spool's sequence). Moments are drawn from a seeded RNG:
#   - early (1 in 4): 0-150 ms after exec, often before or during the first
#     group commit or while LMDB opens;
#   - mid-run (3 in 4): once the aggregator lists the new run, then 0-700 ms
#     more, while records are being committed, streamed and trimmed.
# The last engine runs its method to the end and drains (exit 0). Then, from
# the aggregator's JSONL export:
#   - per lane the seqs are exactly 1..N, each once, N = the final engine
#     summary's committed_control / committed_data (all acked);
#   - no content duplicate (the same record under two seqs);
#   - one epoch (the spool was never recreated), and within a lane run ids
#     only go up with seq (each run continued the spool's sequence);
#   - every run with records has its run_started stored, including every run
#     killed mid-run; the final run is completed with all its samples.
#   - no run but the final one is left "running": a run the engine was
#     killed in ends "interrupted (engine restarted)" once the restarted
#     engine's records arrive (the aggregator reconciles).
#
# Environment: HF_SEED (replay a sequence of kill moments; printed at start),
# HF_KILLS (default 20), HF_BIN, HF_E2E_KEEP (see lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init engine_kill9

kills=${HF_KILLS:-20}
seed=${HF_SEED:-$(( $(date +%s%N) / 1000 % 1000000 ))}
RANDOM=$seed
say "seed=$seed kills=$kills (replay the same kill moments with HF_SEED=$seed)"
method=$E2E_HERE/kill9.method
spool=$E2E_DIR/spool
id=kill9

e2e_agg_start "$E2E_DIR/store" "$E2E_DIR/aggregator.log"
say "aggregator pid=$AGG_PID engines=$AGG_ENGINES control=$AGG_CONTROL"

# s_engine_start N: engine number N on the shared spool; sets ENG_PID.
s_engine_start() {
    "$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$spool" --method "$method" \
        --seed "$1" --summary "$E2E_DIR/summary.$1" \
        >"$E2E_DIR/engine.$1.out" 2>"$E2E_DIR/engine.$1.log" &
    ENG_PID=$!
    e2e_track "$ENG_PID"
}

# s_run_id N: the run id engine N logged when it started its run, or "".
s_run_id() {
    sed -nE 's/.* engine=[^ ]+ run=([0-9]+) method=.* started$/\1/p' "$E2E_DIR/engine.$1.log" |
        head -1
}
s_has_run_id() { [ -n "$(s_run_id "$1")" ]; }
# s_agg_has_run RUN: the aggregator lists RUN for our engine.
s_agg_has_run() {
    "$E2E_CLI" --control "$AGG_CONTROL" runs --engine "$id" 2>/dev/null | grep -q " $1 "
}
s_sleep_ms() { sleep "$(printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )))"; }

killed_mid=()     # runs killed after the aggregator had them: run_started must be stored
killed_early=()   # runs killed early whose id was logged (may have no record at all)
early_no_id=0     # engines killed before they had even logged a run id
t_kills=$(date +%s)
for i in $(seq 1 "$kills"); do
    s_engine_start "$i"
    mode=mid
    if [ $(( RANDOM % 4 )) -eq 0 ]; then
        mode=early
        delay=$(( RANDOM % 150 ))
        s_sleep_ms "$delay"
    else
        delay=$(( RANDOM % 700 ))
        e2e_wait_until 20 s_has_run_id "$i" ||
            { tail -5 "$E2E_DIR/engine.$i.log"; fail "engine $i logged no run start in 20 s"; }
        rid=$(s_run_id "$i")
        e2e_wait_until 20 s_agg_has_run "$rid" ||
            fail "the aggregator did not list run $rid of engine $i within 20 s"
        s_sleep_ms "$delay"
    fi
    if e2e_dead "$ENG_PID"; then
        wait "$ENG_PID" && rc=0 || rc=$?
        tail -5 "$E2E_DIR/engine.$i.log"
        fail "engine $i ($mode) exited by itself (rc=$rc) before it was killed"
    fi
    # (stderr off: bash would report the SIGKILL of its child as noise)
    { kill -KILL "$ENG_PID"; e2e_wait_exit "$ENG_PID" 10; } 2>/dev/null ||
        fail "engine $i pid=$ENG_PID survived SIGKILL for 10 s"
    [ "$E2E_RC" -eq 137 ] || fail "engine $i: exit status $E2E_RC after SIGKILL (want 137)"
    rid=$(s_run_id "$i")
    if [ "$mode" = mid ]; then
        killed_mid+=("$rid")
    elif [ -n "$rid" ]; then
        killed_early+=("$rid")
    else
        early_no_id=$(( early_no_id + 1 ))
    fi
    say "kill $i/$kills: $mode +${delay} ms run=${rid:--}"
done
t_kills=$(( $(date +%s) - t_kills ))
say "$kills kills in ${t_kills} s (mid-run ${#killed_mid[@]}, early ${#killed_early[@]}" \
    "+ $early_no_id before a run id); the last engine now runs to completion"

final_n=$(( kills + 1 ))
s_engine_start "$final_n"
e2e_wait_exit "$ENG_PID" 90 || fail "the final engine did not exit within 90 s"
[ "$E2E_RC" -eq 0 ] || { tail -20 "$E2E_DIR/engine.$final_n.log"; fail "final engine exit status $E2E_RC"; }
[ -s "$E2E_DIR/summary.$final_n" ] || fail "the final engine wrote no summary"
summary=$(cat "$E2E_DIR/summary.$final_n")
say "final engine: $summary"
final_run=$(kv "$summary" run)
e2e_alive "$AGG_PID" || fail "the aggregator died during the test (see aggregator.log)"

"$E2E_CLI" --control "$AGG_CONTROL" export --engine "$id" --format jsonl \
    --out "$E2E_DIR/export.jsonl" >/dev/null
"$E2E_CLI" --control "$AGG_CONTROL" runs --engine "$id" >"$E2E_DIR/runs.txt"
say "checking $(wc -l <"$E2E_DIR/export.jsonl") exported records"

ok=1
[ "$(kv "$summary" state)" = completed ] || { say "final run state is not completed"; ok=0; }
for l in control data; do
    [ "$(kv "$summary" "committed_$l")" = "$(kv "$summary" "acked_$l")" ] ||
        { say "lane $l: committed != acked in the final summary"; ok=0; }
done
e2e_check_export "$E2E_DIR/export.jsonl" "$(kv "$summary" committed_control)" \
    "$(kv "$summary" committed_data)" || ok=0
chk=$E2E_DIR/export.jsonl.check
epoch=$(grep -m1 -oE '"epoch":"[0-9a-f]+"' "$E2E_DIR/export.jsonl" | cut -d'"' -f4)
[ "$epoch" = "$(kv "$summary" epoch)" ] ||
    { say "export epoch $epoch != the spool's epoch $(kv "$summary" epoch)"; ok=0; }
# Every run with records begins with its run_started.
if grep -E '^run ' "$chk" | grep -v ' started=1 '; then
    say "the runs above have records but no run_started"; ok=0
fi
for r in "${killed_mid[@]}"; do
    grep -qE "^run $r .* started=1 " "$chk" ||
        { say "run $r was killed mid-run but its run_started is not stored"; ok=0; }
done
line=$(grep -E "^run $final_run " "$chk" || true)
[ -n "$line" ] || { say "final run $final_run not in the store"; ok=0; }
[[ $line == *" final=completed"* ]] || { say "final run not completed: $line"; ok=0; }
[[ $line == *" samples=$(kv "$summary" samples) "* ]] ||
    { say "final run: stored samples differ from the summary's: $line"; ok=0; }
runs_stored=$(grep -c '^run ' "$chk")
[ "$runs_stored" -le "$final_n" ] || { say "$runs_stored runs stored, only $final_n started"; ok=0; }

echo "    runs stored: $runs_stored of $final_n started (as the aggregator shows them):"
sed 's/^/      /' "$E2E_DIR/runs.txt"
still_open=$(awk -v f="$final_run" '$2 ~ /^[0-9]+$/ && $2 != f && ($3 == "running" || $3 == "paused")' \
    "$E2E_DIR/runs.txt" | wc -l)
[ "$still_open" -eq 0 ] ||
    { say "$still_open killed run(s) still shown running: not reconciled"; ok=0; }
if [ "$ok" -ne 1 ]; then
    fail "seed=$seed: see above (replay with HF_SEED=$seed HF_KILLS=$kills)"
fi
say "OK: $kills SIGKILLs, nothing lost, nothing duplicated, no gap, final run completed"
