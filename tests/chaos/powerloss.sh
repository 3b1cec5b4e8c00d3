#!/usr/bin/env bash
# powerloss.sh - ctest chaos_powerloss: power loss, not only kill -9. The
# LD_PRELOAD shim tests/chaos/powerloss.c makes every write since the file's
# last fsync/fdatasync vanish, then exits 137 (HF_POWERLOSS_MODE=sync: the
# trigger arms it and the power goes at the next sync that has unsynced
# writes before it: a commit's pages written, not yet durable).
#
# Cases (HF_PL_CASES selects; all by default):
#   engine      an engine runs tests/chaos/chaos.method under the shim (its
#               spool watched); HF_PL_LOSSES (4) times, at a random moment of
#               the run, power loss, restart on the same spool. A last engine
#               runs without the shim to the end and drains. Checked: the
#               spool opens every time (same epoch); per lane the store holds
#               exactly 1..committed once each; the final run has all its
#               samples (a spool that lost a committed record would reuse
#               its seq, and the aggregator would skip the new record as a
#               duplicate); every power-lost run ends "interrupted".
#   aggregator  the aggregator runs under the shim (its store watched) while
#               an engine streams tests/chaos/long.method (8 s);
#               HF_PL_LOSSES times, power loss, restart on the same store and
#               endpoints. Checked: the store opens every time; the engine
#               ends with committed == acked and the store holds exactly
#               1..committed per lane (a record the aggregator acked and then
#               lost would be missing: the engine trimmed it); run completed
#               with all its samples.
#   control     the check can fail: an engine with --relaxed (no fsync per
#               commit) loses power once; the store must then NOT check out
#               (its spool forgets what it sent, a new epoch or reused
#               seqs). Passing this case means the checker caught it.
#
# Environment: HF_BIN, HF_POWERLOSS_LIB (the shim; default
# $HF_BIN/tests/chaos/libhf_powerloss.so), HF_SEED, HF_PL_LOSSES,
# HF_PL_CASES, HF_E2E_KEEP (see tests/e2e/lib.sh).
set -euo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
CH_HERE=$(cd "$(dirname "$0")" && pwd)
SHIM=${HF_POWERLOSS_LIB:-$E2E_BIN/tests/chaos/libhf_powerloss.so}
[ -f "$SHIM" ] || { echo "powerloss: no shim at $SHIM (build target hf_powerloss; not built with HF_SANITIZE)"; exit 77; }
e2e_init powerloss
seed=${HF_SEED:-$(( $(date +%s%N) / 1000 % 1000000 ))}
RANDOM=$seed
losses=${HF_PL_LOSSES:-4}
cases=${HF_PL_CASES:-engine aggregator control}
say "seed=$seed losses=$losses cases: $cases (replay the moments with HF_SEED=$seed)"
ok=1
s_sleep_ms() { sleep "$(printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )))"; }
cli() { "$E2E_CLI" --control "$AGG_CONTROL" --timeout 5000 "$@"; }

# s_agg DIR LOG [SHIM]: (re)start an aggregator on DIR, same endpoints as
# before if AGG_ENGINES is set; under the shim if SHIM given.
s_agg() {
    local dir=$1 log=$2 shim=${3:-} before=0
    [ -f "$log" ] && before=$(grep -c "listening engines=" "$log" || true)
    if [ -n "$shim" ]; then
        LD_PRELOAD=$shim HF_POWERLOSS_MODE=sync HF_POWERLOSS_LOG=1 HF_POWERLOSS_MATCH="$dir/" \
            "$E2E_AGG" --bind "${AGG_ENGINES:-tcp://127.0.0.1:*}" \
            --control "${AGG_CONTROL:-tcp://127.0.0.1:*}" --data "$dir" >>"$log" 2>&1 &
    else
        "$E2E_AGG" --bind "${AGG_ENGINES:-tcp://127.0.0.1:*}" \
            --control "${AGG_CONTROL:-tcp://127.0.0.1:*}" --data "$dir" >>"$log" 2>&1 &
    fi
    AGG_PID=$!
    e2e_track "$AGG_PID"
    s_l() { [ "$(grep -c "listening engines=" "$log")" -gt "$before" ]; }
    e2e_wait_until 20 s_l || { tail -5 "$log"; fail "aggregator did not listen on $dir within 20 s"; }
    local line
    line=$(grep "listening engines=" "$log" | tail -1)
    AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
    AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
}

# s_eng ID SPOOL N METHOD [SHIM] [FLAGS...]: start engine incarnation N.
s_eng() {
    local id=$1 spool=$2 n=$3 method=$4 shim=${5:-}
    shift 5 || shift $#
    if [ -n "$shim" ]; then
        LD_PRELOAD=$shim HF_POWERLOSS_MODE=sync HF_POWERLOSS_LOG=1 HF_POWERLOSS_MATCH="$spool/" \
            "$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$spool" --method "$method" \
            --seed "$n" --summary "$E2E_DIR/$id.$n.summary" "$@" \
            >"$E2E_DIR/$id.$n.out" 2>"$E2E_DIR/$id.$n.log" &
    else
        "$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$spool" --method "$method" \
            --seed "$n" --summary "$E2E_DIR/$id.$n.summary" "$@" \
            >"$E2E_DIR/$id.$n.out" 2>"$E2E_DIR/$id.$n.log" &
    fi
    ENG_PID=$!
    e2e_track "$ENG_PID"
}
s_run_id() {
    sed -nE 's/.* engine=[^ ]+ run=([0-9]+) method=.* started$/\1/p' "$E2E_DIR/$1.$2.log" | head -1
}
s_agg_has_run() { cli runs --engine "$1" 2>/dev/null | grep -q " $2 "; }

# s_power_loss PID LOG: SIGUSR2, the process must exit 137 within 3 s, and
# its log must say the shim reverted writes or found none pending.
s_power_loss() {
    kill -USR2 "$1"
    e2e_wait_exit "$1" 3 || fail "pid $1 still running 3 s after its power loss"
    [ "$E2E_RC" -eq 137 ] || { tail -5 "$2"; fail "pid $1: exit $E2E_RC after power loss, want 137"; }
    grep -E "^powerloss: .*(reverted|power lost)" "$2" | tail -2 | sed 's/^/      /' || true
}

# s_check ID SUMMARY: the store holds exactly 1..committed of ID, the final
# run completed with all its samples. Prints a report; 1 on a violation.
s_check() {
    local id=$1 sum=$2 ex=$E2E_DIR/$1.export.jsonl line run rc=0
    cli export --engine "$id" --format jsonl --out "$ex" >/dev/null
    awk -v want_control="$(kv "$sum" committed_control)" -v want_data="$(kv "$sum" committed_data)" \
        -f "$CH_HERE/check.awk" "$ex" >"$ex.check" || rc=1
    sed 's/^/    /' "$ex.check"
    run=$(kv "$sum" run)
    line=$(grep -E "^run $run " "$ex.check" || true)
    [[ $line == *" final=completed "* ]] || { echo "    final run $run not completed"; rc=1; }
    local stored
    stored=$(grep -c "\"kind\":\"sample\",\"run\":$run," "$ex" || true)
    [ "$stored" = "$(kv "$sum" samples)" ] ||
        { echo "    final run: $stored samples stored, the engine took $(kv "$sum" samples)"; rc=1; }
    for l in control data; do
        [ "$(kv "$sum" "committed_$l")" = "$(kv "$sum" "acked_$l")" ] ||
            { echo "    lane $l: committed != acked"; rc=1; }
    done
    return $rc
}

case_engine() {
    local id=pl-eng spool=$E2E_DIR/pl-eng.spool n rid epoch0= epoch
    say "case engine: $losses power losses of the engine, restarted on its spool"
    s_agg "$E2E_DIR/store-eng" "$E2E_DIR/agg-eng.log"
    local lost_runs=()
    for n in $(seq 1 "$losses"); do
        s_eng "$id" "$spool" "$n" "$CH_HERE/chaos.method" "$SHIM"
        e2e_wait_until 20 s_run_id_nonempty "$id" "$n" || fail "engine $n logged no run"
        rid=$(s_run_id "$id" "$n")
        e2e_wait_until 20 s_agg_has_run "$id" "$rid" || fail "run $rid never listed"
        s_sleep_ms $(( 100 + RANDOM % 2500 ))
        e2e_alive "$ENG_PID" || fail "engine $n ended before its power loss"
        s_power_loss "$ENG_PID" "$E2E_DIR/$id.$n.log"
        lost_runs+=("$rid")
        epoch=$(sed -nE 's/.*spool: open .*epoch=([0-9a-f]+).*/\1/p' "$E2E_DIR/$id.$n.log" | head -1)
        [ -z "$epoch0" ] && epoch0=$epoch
        [ "$epoch" = "$epoch0" ] || { say "engine $n: spool epoch $epoch, was $epoch0"; ok=0; }
    done
    n=$(( losses + 1 ))
    s_eng "$id" "$spool" "$n" "$CH_HERE/chaos.method" "" 
    e2e_wait_exit "$ENG_PID" 60 || fail "final engine did not exit in 60 s"
    [ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/$id.$n.log"; fail "final engine rc=$E2E_RC"; }
    grep -q "spool: open .* reopened epoch=$epoch0" "$E2E_DIR/$id.$n.log" ||
        { say "the spool did not reopen with epoch $epoch0"; ok=0; }
    local sum
    sum=$(cat "$E2E_DIR/$id.$n.summary")
    say "final engine: $sum"
    s_check "$id" "$sum" || ok=0
    cli runs --engine "$id" >"$E2E_DIR/$id.runs"
    for rid in "${lost_runs[@]}"; do
        grep -qE "^$id +$rid +interrupted \(engine restarted\)" "$E2E_DIR/$id.runs" ||
            { say "power-lost run $rid: $(grep " $rid " "$E2E_DIR/$id.runs" || echo 'not stored')"; ok=0; }
    done
    e2e_agg_stop
    AGG_ENGINES= AGG_CONTROL=
}
s_run_id_nonempty() { [ -n "$(s_run_id "$1" "$2")" ]; }

case_aggregator() {
    local id=pl-agg store=$E2E_DIR/store-agg log=$E2E_DIR/agg-agg.log n
    say "case aggregator: $losses power losses of the aggregator while an engine streams"
    s_agg "$store" "$log" "$SHIM"
    s_eng "$id" "$E2E_DIR/pl-agg.spool" 1 "$CH_HERE/long.method" ""
    local eng=$ENG_PID
    e2e_wait_until 20 s_run_id_nonempty "$id" 1 || fail "engine logged no run"
    for n in $(seq 1 "$losses"); do
        s_sleep_ms $(( 300 + RANDOM % 1200 ))
        s_power_loss "$AGG_PID" "$log"
        s_sleep_ms $(( RANDOM % 500 ))
        s_agg "$store" "$log" "$SHIM"
        say "  loss $n: aggregator back on the same store (opened)"
    done
    e2e_wait_exit "$eng" 90 || fail "engine did not exit in 90 s"
    [ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/$id.1.log"; fail "engine rc=$E2E_RC"; }
    local sum
    sum=$(cat "$E2E_DIR/$id.1.summary")
    say "engine: $sum"
    s_check "$id" "$sum" || ok=0
    say "aggregator log: $(grep -c "leaves a gap" "$log" || true) resyncs," \
        "$(grep -c duplicates_skipped "$log" || true) duplicate-skip lines"
    e2e_agg_stop
    AGG_ENGINES= AGG_CONTROL=
}

case_control() {
    local id=pl-ctl spool=$E2E_DIR/pl-ctl.spool rid
    say "case control: --relaxed (no fsync): the check must catch the loss"
    s_agg "$E2E_DIR/store-ctl" "$E2E_DIR/agg-ctl.log"
    s_eng "$id" "$spool" 1 "$CH_HERE/chaos.method" "$SHIM" --relaxed
    e2e_wait_until 20 s_run_id_nonempty "$id" 1 || fail "engine logged no run"
    rid=$(s_run_id "$id" 1)
    e2e_wait_until 20 s_agg_has_run "$id" "$rid" || fail "run $rid never listed"
    sleep 1
    s_power_loss "$ENG_PID" "$E2E_DIR/$id.1.log"
    s_eng "$id" "$spool" 2 "$CH_HERE/chaos.method" ""
    e2e_wait_exit "$ENG_PID" 60 || fail "control engine did not exit in 60 s"
    local sum
    sum=$(cat "$E2E_DIR/$id.2.summary" 2>/dev/null || true)
    if [ -n "$sum" ] && s_check "$id" "$sum" >"$E2E_DIR/control.report" 2>&1; then
        cat "$E2E_DIR/control.report"
        say "FAIL: a power loss of a --relaxed engine went unnoticed: the check cannot fail"
        ok=0
    else
        say "control: caught, as it must be: $(grep -E 'total|not completed|samples stored' "$E2E_DIR/control.report" | tr -s ' ' | tr '\n' ';')" \
            "epochs=$(grep -oE '"epoch":"[0-9a-f]+"' "$E2E_DIR/$id.export.jsonl" | sort -u | wc -l)"
    fi
    e2e_agg_stop
    AGG_ENGINES= AGG_CONTROL=
}

for c in $cases; do "case_$c"; done
[ "$ok" -eq 1 ] || fail "seed=$seed: see above (replay with HF_SEED=$seed)"
say "OK: power losses ($cases): stores open, nothing acknowledged lost, nothing duplicated"
