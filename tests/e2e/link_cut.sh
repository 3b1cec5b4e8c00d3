#!/usr/bin/env bash
# link_cut.sh - issue 5's end-to-end case, with real processes and the
# fault-injecting proxy (tests/proxy/hf-proxy) between engine and aggregator:
# the link stalls while a run goes on, so that the run completes offline.
#
# Asserts, during the stall:
#   - `holdfast status` shows the engine unavailable within the watchdog
#     (1000 ms here) + 1 s;
#   - `holdfast abort` is refused at once (exit 3), never queued;
#   - `holdfast runs` shows the run "running (engine unavailable)";
# and after the link returns:
#   - `holdfast runs` shows the run completed, with the engine's own end time
#     (the completed event's timestamp, earlier than the link's return);
#   - the export has per lane exactly 1..committed (no gap, no duplicate),
#     and the records from the stall are marked observed_offline.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PROXY=${HF_PROXY:-$E2E_BIN/tests/proxy/hf-proxy}
[ -x "$PROXY" ] || { echo "link_cut: missing $PROXY" >&2; exit 77; }
e2e_init link_cut

id=cut-1
watchdog_ms=1000
log=$E2E_DIR/aggregator.log
"$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$E2E_DIR/store" \
    --watchdog-ms "$watchdog_ms" >"$log" 2>&1 &
AGG_PID=$!
e2e_track "$AGG_PID"
s_listening() { grep -q "listening engines=" "$log"; }
e2e_wait_until 20 s_listening || fail "aggregator did not listen"
line=$(grep "listening engines=" "$log" | tail -1)
AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
cli() { "$E2E_CLI" --control "$AGG_CONTROL" --timeout 2000 "$@"; }

"$PROXY" --upstream "127.0.0.1:${AGG_ENGINES##*:}" --listen 0 >"$E2E_DIR/proxy.out" \
    2>"$E2E_DIR/proxy.log" &
e2e_track $!
s_proxy_up() { grep -qE '^listen [0-9]+ ctl [0-9]+$' "$E2E_DIR/proxy.out"; }
e2e_wait_until 10 s_proxy_up || fail "hf-proxy printed no ports"
read -r _ proxy_port _ ctl_port <"$E2E_DIR/proxy.out"
ctl() { "$PROXY" --ctl "$ctl_port" "$@"; }

"$E2E_ENG" --id "$id" --connect "tcp://127.0.0.1:$proxy_port" --spool "$E2E_DIR/spool" \
    --method "$E2E_HERE/link_cut.method" --summary "$E2E_DIR/summary" \
    >"$E2E_DIR/engine.out" 2>"$E2E_DIR/engine.log" &
ENG_PID=$!
e2e_track "$ENG_PID"
s_running() { cli runs --engine "$id" 2>/dev/null | grep -q " running "; }
e2e_wait_until 20 s_running || fail "the run never showed as running"
sleep 1 # let it stream a while before the stall

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
ctl blackhole >/dev/null || fail "proxy refused blackhole"
t0=$(now_ms)
say "link stalled"
s_unavailable() { cli status 2>/dev/null | awk -v id="$id" '$1 == id && $2 == "unavailable" { f = 1 } END { exit !f }'; }
e2e_wait_until 5 s_unavailable || fail "holdfast status never showed the engine unavailable"
seen_ms=$(( $(now_ms) - t0 ))
say "unavailable after ${seen_ms} ms (limit $(( watchdog_ms + 1000 )) ms)"
[ "$seen_ms" -le $(( watchdog_ms + 1000 )) ] || fail "unavailable shown after ${seen_ms} ms"

rc=0
cli abort "$id" >"$E2E_DIR/abort.out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || { cat "$E2E_DIR/abort.out"; fail "abort during the cut exited $rc, want 3 (refused)"; }
sed 's/^/    /' "$E2E_DIR/abort.out"
cli runs --engine "$id" | grep -q "running (engine unavailable)" ||
    fail "holdfast runs does not show 'running (engine unavailable)'"

s_completed_offline() { grep -q "state=completed" "$E2E_DIR/engine.log"; }
e2e_wait_until 20 s_completed_offline || fail "the run did not complete during the cut"
sleep 0.5
t_back_ns=$(date +%s%N)
ctl pass >/dev/null || fail "proxy refused pass"
say "link back"

e2e_wait_exit "$ENG_PID" 60 || fail "the engine did not drain and exit"
[ "$E2E_RC" -eq 0 ] || fail "engine exited $E2E_RC"
sm=$(cat "$E2E_DIR/summary")
[ "$(kv "$sm" state)" = completed ] || fail "engine says $(kv "$sm" state)"

cli export --engine "$id" --out "$E2E_DIR/export.jsonl" 2>/dev/null
e2e_check_export "$E2E_DIR/export.jsonl" "$(kv "$sm" committed_control)" \
    "$(kv "$sm" committed_data)" || fail "export not exact"
offline=$(grep -c '"observed_offline":true' "$E2E_DIR/export.jsonl" || true)
[ "$offline" -gt 0 ] || fail "no record marked observed_offline"
say "records from the stall marked observed_offline: $offline"

run=$(kv "$sm" run)
done_ts=$(grep '"event":"completed"' "$E2E_DIR/export.jsonl" | sed -nE 's/.*"ts_ns":([0-9]+).*/\1/p')
ended=$(cli runs --engine "$id" --json | tr '{' '\n' | grep "\"run\":$run," |
        sed -nE 's/.*"ended_ns":([0-9]+).*/\1/p')
state=$(cli runs --engine "$id" --json | tr '{' '\n' | grep "\"run\":$run," |
        sed -nE 's/.*"state":"([a-z]+)".*/\1/p')
[ "$state" = completed ] || fail "holdfast runs shows $state"
[ -n "$done_ts" ] && [ "$ended" = "$done_ts" ] || fail "run ended_ns=$ended, engine's completed ts=$done_ts"
[ "$ended" -lt "$t_back_ns" ] || fail "the end time is the link's return, not the engine's"
say "run $run completed at the engine's time (ts $ended, $(( (t_back_ns - ended) / 1000000 )) ms before the link returned)"
say "PASS"
