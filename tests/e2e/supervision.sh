#!/usr/bin/env bash
# supervision.sh - the aggregator's supervised tasks (docs/supervision.md)
# with real processes: two engines stream; engine A's session is made to
# fail three times (the HF_TESTING fault hook, `holdfast fault`).
#
# Asserts:
#   - each failure restarts A's session from the store (logged with the task,
#     the cause and the count), and A's work goes on: nothing lost or
#     duplicated, its run completes;
#   - engine B's ingestion is untouched: no restart, no unavailability, no
#     resync, its export exact;
#   - the restart count shows in `holdfast engines` (RESTARTS) and on the
#     status feed;
#   - one failure more than --max-restarts within the period: the
#     aggregator gives up with a clear line and exits 70; restarted on its
#     store, A's backlog drains and nothing is lost.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init supervision

method=$E2E_HERE/supervision.method
log=$E2E_DIR/aggregator.log
feed=tcp://127.0.0.1:$(( 20000 + RANDOM % 20000 ))

"$E2E_AGG" --bind 'tcp://127.0.0.1:*' --control 'tcp://127.0.0.1:*' --data "$E2E_DIR/store" \
    --status "$feed" --max-restarts 3 --restart-period-s 60 >>"$log" 2>&1 &
AGG_PID=$!
e2e_track "$AGG_PID"
s_listening() { grep -q "listening engines=" "$log"; }
e2e_wait_until 20 s_listening || fail "aggregator did not start"
line=$(grep "listening engines=" "$log" | tail -1)
AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
cli() { "$E2E_CLI" --control "$AGG_CONTROL" "$@"; }

"$E2E_CLI" status --watch --feed "$feed" >"$E2E_DIR/feed.txt" 2>&1 &
FEED_PID=$!
e2e_track "$FEED_PID"
sleep 0.3

s_engine() { # NAME
    "$E2E_ENG" --id "$1" --connect "$AGG_ENGINES" --spool "$E2E_DIR/spool.$1" \
        --method "$method" --summary "$E2E_DIR/summary.$1" --drain-timeout 60000 \
        >"$E2E_DIR/engine.$1.out" 2>"$E2E_DIR/engine.$1.log" &
    e2e_track $!
    eval "PID_$1=\$!"
}
s_engine enga
s_engine engb
s_available() { cli engines --json | grep -q "\"engine\":\"$1\",.*\"availability\":\"available\"" ||
                cli engines --json | tr '{' '\n' | grep "\"engine\":\"$1\"" | grep -q '"available"'; }
e2e_wait_until 10 s_available enga || fail "engine A never became available"
e2e_wait_until 10 s_available engb || fail "engine B never became available"
sleep 1

say "three session failures of engine A while both stream"
for i in 1 2 3; do
    cli fault session:enga >/dev/null || fail "the fault hook refused (is this an HF_TESTING build?)"
    s_restarted() { [ "$(grep -c "restart task=session:enga" "$log")" -ge "$1" ]; }
    e2e_wait_until 5 s_restarted "$i" || fail "session restart $i not logged"
    sleep 0.7
done
grep "restart task=session:enga" "$log" | tail -1 | sed 's/^/    /'
grep -q 'restart task=session:enga cause=HF_EIO reason="injected fault" restarts_in_window=3/3' "$log" ||
    fail "the restart line lacks the task, cause or count"

! grep -E "engine=engb (unavailable|reconnected)|restart task=session:engb|engine=engb lane=.* resync" "$log" ||
    fail "engine B was disturbed by engine A's failures"
restarts_a=$(cli engines --json | tr '{' '\n' | grep '"engine":"enga"' | sed -nE 's/.*"restarts":([0-9]+).*/\1/p' | head -1)
[ "$restarts_a" = 3 ] || fail "holdfast engines shows restarts=$restarts_a for A, want 3"
cli engines | grep -E "^(ENGINE|enga|engb) " | sed 's/^/    /'
s_feed_restart() { grep -q 'restart task=session:enga restarts=3' "$E2E_DIR/feed.txt"; }
e2e_wait_until 5 s_feed_restart || fail "no restart message on the status feed"

say "a fourth failure within the period: the aggregator gives up (exit 70)"
if e2e_alive "$PID_enga"; then
    cli fault session:enga >/dev/null || true
    e2e_wait_exit "$AGG_PID" 10 || fail "the aggregator did not give up"
    [ "$E2E_RC" -eq 70 ] || fail "the aggregator exited $E2E_RC, want 70"
    grep -q "supervisor=aggregator gave up: task=session:enga failed more than 3 times in 60 s" "$log" ||
        fail "no clear 'gave up' line"
    say "restarting the aggregator on its store"
    "$E2E_AGG" --bind "$AGG_ENGINES" --control "$AGG_CONTROL" --data "$E2E_DIR/store" >>"$log" 2>&1 &
    AGG_PID=$!
    e2e_track "$AGG_PID"
else
    fail "engine A ended before the fourth fault (method too short for this machine?)"
fi
for e in enga engb; do
    eval "pid=\$PID_$e"
    e2e_wait_exit "$pid" 60 || fail "engine $e did not finish"
    [ "$E2E_RC" -eq 0 ] || fail "engine $e exited $E2E_RC"
    sm=$(cat "$E2E_DIR/summary.$e")
    [ "$(kv "$sm" state)" = completed ] || fail "engine $e's run did not complete: $sm"
    cli export --engine "$e" --out "$E2E_DIR/$e.jsonl" 2>/dev/null
    e2e_check_export "$E2E_DIR/$e.jsonl" "$(kv "$sm" committed_control)" \
        "$(kv "$sm" committed_data)" || fail "engine $e's export is not exact"
done
say "PASS"
