#!/usr/bin/env bash
# engine_supervision.sh - the engine's runner (method runner, hardware
# poller, command handler) is a supervised task (docs/supervision.md).
# With the HF_TESTING fault hook (--fault-after MS,...):
#   1. a run with --method: the runner fails mid-run, restarts, ends the
#      run it left "interrupted" (from the spool's view), and the engine
#      exits 0; every record committed is stored, in order, once;
#   2. --serve: after a failure the restarted runner serves commands: a new
#      start is accepted and runs;
#   3. more failures than --max-restarts in the period: the engine exits 70
#      with a "gave up" line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init engine_supervision

e2e_agg_start "$E2E_DIR/store" "$E2E_DIR/aggregator.log"
cli() { "$E2E_CLI" --control "$AGG_CONTROL" "$@"; }
method=$E2E_HERE/supervision.method

say "1. --method: the runner fails at 1.5 s"
"$E2E_ENG" --id sup1 --connect "$AGG_ENGINES" --spool "$E2E_DIR/spool1" --method "$method" \
    --fault-after 1500 --summary "$E2E_DIR/summary1" >/dev/null 2>"$E2E_DIR/engine1.log" &
p1=$!
e2e_track "$p1"
e2e_wait_exit "$p1" 30 || fail "engine 1 did not exit"
[ "$E2E_RC" -eq 0 ] || fail "engine 1 exited $E2E_RC"
grep -q 'task=runner restarting cause=HF_EIO reason="injected fault" restarts=1/10' \
    "$E2E_DIR/engine1.log" || fail "no restart line (task, cause, count)"
s1=$(cat "$E2E_DIR/summary1")
[ "$(kv "$s1" state)" = interrupted ] || fail "run state $(kv "$s1" state), want interrupted"
cli export --engine sup1 --out "$E2E_DIR/sup1.jsonl" 2>/dev/null
e2e_check_export "$E2E_DIR/sup1.jsonl" "$(kv "$s1" committed_control)" "$(kv "$s1" committed_data)" ||
    fail "export not exact"
grep -q '"event":"interrupted".*"text":"engine task restarted"' "$E2E_DIR/sup1.jsonl" ||
    fail "no interrupted event with the cause"
cli runs --engine sup1 | grep -q interrupted || fail "holdfast runs does not show it interrupted"

say "2. --serve: commands reach the restarted runner"
mkdir -p "$E2E_DIR/methods"
cp "$method" "$E2E_DIR/methods/sup.method"
"$E2E_ENG" --id sup2 --connect "$AGG_ENGINES" --spool "$E2E_DIR/spool2" --serve \
    --methods "$E2E_DIR/methods" --fault-after 2000 >/dev/null 2>"$E2E_DIR/engine2.log" &
p2=$!
e2e_track "$p2"
s_avail() { cli engines --json | tr '{' '\n' | grep '"engine":"sup2"' | grep -q '"available"'; }
e2e_wait_until 10 s_avail || fail "engine 2 not available"
cli start sup2 sup >/dev/null || fail "first start refused"
s_restarted() { grep -q "task=runner restarting" "$E2E_DIR/engine2.log"; }
e2e_wait_until 10 s_restarted || fail "runner 2 did not restart"
s_interrupted() { cli runs --engine sup2 | grep -q interrupted; }
e2e_wait_until 10 s_interrupted || fail "the run left behind is not interrupted"
cli start sup2 sup >/dev/null || fail "start after the restart refused"
cli abort sup2 >/dev/null || fail "abort after the restart refused"
kill -TERM "$p2"
e2e_wait_exit "$p2" 5 || fail "engine 2 ignored SIGTERM"
[ "$E2E_RC" -eq 0 ] || fail "engine 2 exited $E2E_RC"

say "3. past the restart intensity: exit 70"
"$E2E_ENG" --id sup3 --connect "$AGG_ENGINES" --spool "$E2E_DIR/spool3" --serve \
    --max-restarts 2 --restart-period-s 60 --fault-after 300,600,900 \
    >/dev/null 2>"$E2E_DIR/engine3.log" &
p3=$!
e2e_track "$p3"
e2e_wait_exit "$p3" 15 || fail "engine 3 did not give up"
[ "$E2E_RC" -eq 70 ] || fail "engine 3 exited $E2E_RC, want 70"
grep -q "supervisor=engine gave up: 2 restarts in 60 s, last failure task=runner" \
    "$E2E_DIR/engine3.log" || fail "no clear gave-up line"
say "PASS"
