#!/usr/bin/env bash
# store_full.sh - ctest e2e_store_full: the aggregator's disk fills up while
# an engine streams; nothing acknowledged may vanish, nothing may crash, and
# ingestion must resume by itself once there is room (docs/guarantees.md,
# "Full store").
#
# The store lives on a 24 MiB ext4 filesystem (a loop-mounted image in the
# work dir; needs root and loop devices, else the test exits 77). Once the
# aggregator has opened it, a ballast file takes all but ~1 MiB of the free
# space. The engine runs store-full.method (about 6 MB of records):
#   1. the store fills: asserted within the method's time: the aggregator
#      raised alarm 1007 (log, `holdfast status`), is alive, never restarted
#      a session for it (no "restart" in its log), and the engine never
#      became "unavailable" (it stays connected, its backlog in its spool).
#      What the store holds then is a prefix: per lane 1..k, no hole.
#   2. the ballast is deleted: within 10 s ingestion resumes and within 15 s
#      alarm 1007 is cleared (5 s without a failed commit), the engine
#      drains and exits 0, its run completed; the store holds per lane
#      exactly 1..committed, each once, no content duplicate.
#   3. the aggregator is restarted on the same store: it opens (the store is
#      sound after the ENOSPC episode) and the export is unchanged.
#
# Environment: HF_BIN, HF_E2E_KEEP (see lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v fallocate >/dev/null || { echo "store_full: SKIPPED: fallocate not found"; exit 77; }
e2e_init store_full
if ! e2e_small_fs 24M; then
    say "SKIPPED: $E2E_FS_REASON"
    exit 77
fi
mnt=$E2E_FS_MNT

log=$E2E_DIR/aggregator.log
e2e_agg_start "$mnt/store" "$log"
cli() { "$E2E_CLI" --control "$AGG_CONTROL" --timeout 5000 "$@"; }
free_kb=$(df -k --output=avail "$mnt" | tail -1 | tr -d ' ')
ballast_kb=$(( free_kb - 1024 ))
fallocate -l "$(( ballast_kb * 1024 ))" "$mnt/ballast"
say "store on a $(( $(df -k --output=size "$mnt" | tail -1) / 1024 )) MiB filesystem;" \
    "ballast ${ballast_kb} kB, $(df -k --output=avail "$mnt" | tail -1 | tr -d ' ') kB left"

id=sf-eng
"$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$E2E_DIR/spool" \
    --method "$E2E_HERE/store-full.method" --drain-timeout 120000 --summary "$E2E_DIR/summary" \
    >"$E2E_DIR/engine.out" 2>"$E2E_DIR/engine.log" &
eng=$!
e2e_track "$eng"

# 1. the store fills
s_raised() { grep -q "alarm raised code=1007" "$log"; }
e2e_wait_until 30 s_raised || { tail -20 "$log"; fail "no store-full alarm (1007) within 30 s"; }
say "store full: $(grep "alarm raised code=1007" "$log" | head -1 | sed 's/.*: //')"
sleep 3 # let it stay full a while: several probes, the engine keeps streaming
e2e_alive "$AGG_PID" || fail "the aggregator died with a full store"
e2e_alive "$eng" || fail "the engine died while the store was full"
cli status >"$E2E_DIR/status.full" 2>&1 || fail "holdfast status failed while full"
grep -q "ALARM: the store is full" "$E2E_DIR/status.full" ||
    { cat "$E2E_DIR/status.full"; fail "status does not show the store-full alarm"; }
say "holdfast status: $(grep "ALARM: the store is full" "$E2E_DIR/status.full")"
grep -E "engine=$id .*available" "$E2E_DIR/status.full" >/dev/null ||
    grep -E "^$id +available" "$E2E_DIR/status.full" >/dev/null ||
    { cat "$E2E_DIR/status.full"; fail "the engine is not shown available while the store is full"; }
cli export --engine "$id" --format jsonl --out "$E2E_DIR/prefix.jsonl" >/dev/null ||
    fail "export failed while full"
awk -f - "$E2E_DIR/prefix.jsonl" >"$E2E_DIR/prefix.check" <<'EOF' || { cat "$E2E_DIR/prefix.check"; fail "the store does not hold a prefix while full"; }
{
    if (!match($0, /"lane":"[a-z]+"/)) next
    lane = substr($0, RSTART + 8, RLENGTH - 9)
    if (!match($0, /"seq":[0-9]+/)) next
    seq = substr($0, RSTART + 6, RLENGTH - 6) + 0
    if (seq != last[lane] + 1) { printf "lane %s: seq %d after %d\n", lane, seq, last[lane]; bad = 1 }
    last[lane] = seq
}
END { for (l in last) printf "lane %s: 1..%d\n", l, last[l]; exit bad }
EOF
say "stored while full (a prefix): $(tr '\n' ' ' <"$E2E_DIR/prefix.check")"
acked_full=$(grep -c . "$E2E_DIR/prefix.jsonl" || true)

# 2. room again
rm -f "$mnt/ballast"
say "ballast deleted"
s_resumed() { grep -q "store writable again" "$log"; }
e2e_wait_until 10 s_resumed || { tail -20 "$log"; fail "ingestion did not resume within 10 s"; }
say "$(grep "store writable again" "$log" | head -1 | sed 's/.*aggregator: //')"
s_cleared() { grep -q "alarm cleared code=1007" "$log"; }
e2e_wait_until 15 s_cleared || { tail -20 "$log"; fail "the alarm was not cleared within 15 s"; }
say "$(grep "alarm cleared code=1007" "$log" | head -1 | sed 's/.*aggregator: //')"
e2e_wait_exit "$eng" 120 || fail "the engine did not drain within 120 s of the room"
[ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/engine.log"; fail "engine rc=$E2E_RC"; }
sum=$(cat "$E2E_DIR/summary")
say "engine: $sum"
ok=1
if grep -E "engine=$id unavailable" "$log" | grep -vq "clean shutdown"; then
    grep -E "engine=$id unavailable" "$log" | head -3
    say "FAIL: the engine was shown unavailable while the store was full"; ok=0
fi
if grep -qiE "restart(ed|ing)? .*session|task=session" "$log"; then
    grep -iE "restart" "$log" | head -3
    say "FAIL: a session was restarted for a full store"; ok=0
fi
cli export --engine "$id" --format jsonl --out "$E2E_DIR/export.jsonl" >/dev/null
e2e_check_export "$E2E_DIR/export.jsonl" "$(kv "$sum" committed_control)" \
    "$(kv "$sum" committed_data)" || ok=0
run=$(kv "$sum" run)
cli runs --engine "$id" >"$E2E_DIR/runs.txt"
grep -qE " $run +completed " "$E2E_DIR/runs.txt" ||
    { cat "$E2E_DIR/runs.txt"; say "FAIL: run $run not completed"; ok=0; }
say "stored $(grep -c . "$E2E_DIR/export.jsonl") records ($acked_full before the room)"

# 3. the store reopens after the episode, unchanged
e2e_agg_stop
e2e_agg_start "$mnt/store" "$log"
cli export --engine "$id" --format jsonl --out "$E2E_DIR/export2.jsonl" >/dev/null
cmp -s "$E2E_DIR/export.jsonl" "$E2E_DIR/export2.jsonl" ||
    { say "FAIL: the export changed across a restart"; ok=0; }
e2e_agg_stop
[ "$ok" -eq 1 ] || fail "see above"
say "OK: full store paused ingestion, lost nothing, resumed by itself"
