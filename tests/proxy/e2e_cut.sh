#!/usr/bin/env bash
# e2e_cut.sh - ctest e2e_proxy_cut: aggregator <- hf-proxy <- engine. The
# link stalls (blackhole) for 5 s mid-run, heals, then is cut once; nothing
# the engine committed may be lost or stored twice, and the stall must be
# visible to an operator within the aggregator's watchdog + 1 s.
#
# Steps (an engine runs tests/proxy/e2e_cut.method, 15 s):
#   1. aggregator (--watchdog-ms 1000) on an ephemeral port, hf-proxy in
#      front of it (ephemeral ports), the engine connected to the proxy;
#   2. once the run streams: `blackhole`; `holdfast engines` must show the
#      engine unavailable within 2 s (watchdog 1 s + 1 s);
#   3. 5 s after the blackhole began: `pass`; the engine must be available
#      again (a new HELLO) within 10 s;
#   4. 1 s later: `cut` (FIN on every connection); available again within 10 s;
#   5. the engine finishes its run and drains (exit 0). Then, as the other
#      e2e tests check: the summary's committed_* == acked_*, and the JSONL
#      export holds per lane exactly seqs 1..committed, once each, one epoch,
#      no content duplicate, the run completed with all its samples.
# Also reported: the proxy's CPU time (a busy loop would show here).
#
# Environment: HF_BIN (build dir), HF_PROXY (the hf-proxy binary; default
# $HF_BIN/tests/proxy/hf-proxy), HF_E2E_KEEP (see tests/e2e/lib.sh).
set -euo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
PROXY=${HF_PROXY:-$E2E_BIN/tests/proxy/hf-proxy}
[ -x "$PROXY" ] || { echo "e2e_proxy_cut: missing $PROXY (build target hf-proxy)" >&2; exit 2; }
e2e_init proxy_cut

id=cut-eng
watchdog_ms=1000
method=$(cd "$(dirname "$0")" && pwd)/e2e_cut.method

# The aggregator with a short watchdog (lib.sh's e2e_agg_start takes no
# extra flags).
"$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$E2E_DIR/store" \
    --watchdog-ms "$watchdog_ms" >"$E2E_DIR/aggregator.log" 2>&1 &
AGG_PID=$!
e2e_track "$AGG_PID"
s_listening() { grep -q "listening engines=" "$E2E_DIR/aggregator.log"; }
e2e_wait_until 20 s_listening || { tail -5 "$E2E_DIR/aggregator.log"; fail "aggregator did not listen"; }
line=$(grep "listening engines=" "$E2E_DIR/aggregator.log" | tail -1)
AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
agg_port=${AGG_ENGINES##*:}

"$PROXY" --upstream "127.0.0.1:$agg_port" --listen 0 >"$E2E_DIR/proxy.out" 2>"$E2E_DIR/proxy.log" &
PROXY_PID=$!
e2e_track "$PROXY_PID"
s_proxy_up() { grep -qE '^listen [0-9]+ ctl [0-9]+$' "$E2E_DIR/proxy.out"; }
e2e_wait_until 10 s_proxy_up || { cat "$E2E_DIR/proxy.log"; fail "hf-proxy printed no ports"; }
read -r _ proxy_port _ ctl_port <"$E2E_DIR/proxy.out"
say "aggregator pid=$AGG_PID engines=$AGG_ENGINES; proxy pid=$PROXY_PID port=$proxy_port ctl=$ctl_port"
ctl() { "$PROXY" --ctl "$ctl_port" "$@"; }

"$E2E_ENG" --id "$id" --connect "tcp://127.0.0.1:$proxy_port" --spool "$E2E_DIR/spool" \
    --method "$method" --summary "$E2E_DIR/summary" \
    >"$E2E_DIR/engine.out" 2>"$E2E_DIR/engine.log" &
ENG_PID=$!
e2e_track "$ENG_PID"

# avail_is STATE: `holdfast engines` shows our engine in STATE.
avail_is() {
    "$E2E_CLI" --control "$AGG_CONTROL" --timeout 1000 engines 2>/dev/null |
        awk -v id="$id" -v want="$1" '$1 == id && $2 == want { f = 1 } END { exit !f }'
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
s_streaming() {
    "$E2E_CLI" --control "$AGG_CONTROL" --timeout 1000 runs --engine "$id" 2>/dev/null |
        grep -q " running "
}
e2e_wait_until 20 s_streaming || { tail -5 "$E2E_DIR/engine.log"; fail "the run never showed as running"; }
say "run is streaming through the proxy: $(ctl stats)"
sleep 1.5   # paces the scenario: let the run stream a while before the stall

ok=1
t_bh=$(now_ms)
ctl blackhole >/dev/null || fail "proxy refused blackhole"
say "blackhole"
limit_ms=$(( watchdog_ms + 1000 ))
if e2e_wait_until 4 avail_is unavailable; then
    dt=$(( $(now_ms) - t_bh ))
    say "engine shown unavailable $dt ms after the blackhole (limit $limit_ms ms)"
    [ "$dt" -le "$limit_ms" ] || { say "FAIL: unavailable only after $dt ms > $limit_ms ms"; ok=0; }
else
    say "FAIL: engine still shown available 4 s into the blackhole"; ok=0
fi
e2e_alive "$ENG_PID" || fail "the engine exited during the blackhole"
s_bh_over() { [ $(( $(now_ms) - t_bh )) -ge 5000 ]; }
e2e_wait_until 10 s_bh_over || true
stats_bh=$(ctl stats)
ctl pass >/dev/null
say "pass after $(( $(now_ms) - t_bh )) ms of blackhole (proxy: $stats_bh)"
t_pass=$(now_ms)
e2e_wait_until 10 avail_is available || fail "engine not available again 10 s after pass"
say "engine available again $(( $(now_ms) - t_pass )) ms after pass"

sleep 1     # paces: stream a little on the healed link before the cut
e2e_alive "$ENG_PID" || say "note: the run ended before the cut (cut then tests the idle link)"
hellos() { grep -cE "engine=$id (available|reconnected) " "$E2E_DIR/aggregator.log" || true; }
hellos_before=$(hellos)
say "cut: $(ctl cut)"
t_cut=$(now_ms)
s_reconnected() { [ "$(hellos)" -gt "$hellos_before" ]; }
e2e_wait_until 10 s_reconnected || { say "FAIL: no HELLO within 10 s after the cut"; ok=0; }
say "engine said HELLO again $(( $(now_ms) - t_cut )) ms after the cut"

e2e_wait_exit "$ENG_PID" 60 || fail "the engine did not exit within 60 s"
[ "$E2E_RC" -eq 0 ] || { tail -20 "$E2E_DIR/engine.log"; fail "engine exit status $E2E_RC"; }
summary=$(cat "$E2E_DIR/summary")
say "engine: $summary"
e2e_alive "$AGG_PID" || fail "the aggregator died (see aggregator.log)"
e2e_alive "$PROXY_PID" || fail "the proxy died (see proxy.log)"
say "proxy: $(ctl stats)"

"$E2E_CLI" --control "$AGG_CONTROL" export --engine "$id" --format jsonl \
    --out "$E2E_DIR/export.jsonl" >/dev/null
say "checking $(wc -l <"$E2E_DIR/export.jsonl") exported records"
[ "$(kv "$summary" state)" = completed ] || { say "run state is not completed"; ok=0; }
for l in control data; do
    [ "$(kv "$summary" "committed_$l")" = "$(kv "$summary" "acked_$l")" ] ||
        { say "lane $l: committed != acked"; ok=0; }
done
[ "$(kv "$summary" dropped)" = 0 ] || { say "the engine dropped samples"; ok=0; }
e2e_check_export "$E2E_DIR/export.jsonl" "$(kv "$summary" committed_control)" \
    "$(kv "$summary" committed_data)" || ok=0
run=$(kv "$summary" run)
grep -qE "^run $run .* samples=$(kv "$summary" samples) .*final=completed" \
    "$E2E_DIR/export.jsonl.check" || { say "run $run not stored completed with all samples"; ok=0; }
say "aggregator saw: $(grep -c " unavailable reason=" "$E2E_DIR/aggregator.log") unavailable," \
    "$(grep -cE "engine=$id (available|reconnected)" "$E2E_DIR/aggregator.log") HELLOs," \
    "$(grep -c "duplicates_skipped" "$E2E_DIR/aggregator.log") duplicate-skip lines," \
    "$(grep -c "leaves a gap" "$E2E_DIR/aggregator.log") resyncs"

# CPU the proxy used (utime + stime, clock ticks): a spinning poll loop
# would burn ~1 CPU-second per second of the test.
read -r -a st <"/proc/$PROXY_PID/stat"
cpu_ms=$(( (st[13] + st[14]) * 1000 / $(getconf CLK_TCK) ))
wall_ms=$(( $(now_ms) - E2E_T0 ))
say "proxy CPU ${cpu_ms} ms over ${wall_ms} ms"
[ "$cpu_ms" -lt $(( wall_ms / 4 )) ] || { say "FAIL: the proxy used too much CPU (busy loop?)"; ok=0; }

[ "$ok" -eq 1 ] || fail "see above"
say "OK: 5 s blackhole (seen unavailable in time) + cut, nothing lost, nothing duplicated"
