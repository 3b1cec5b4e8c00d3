#!/usr/bin/env bash
# make demo: an aggregator and an engine on loopback; a ~20 s method on the
# simulated instrument; the aggregator is killed (SIGKILL) in the middle and
# brought back ~5 s later; then the records are checked end to end.
#
# Exit status 0 only if nothing was lost, nothing duplicated, no gap, and the
# run completed. Used as is by the end-to-end test (tests/e2e).
#
# Environment: HF_BIN (build dir, default build), HF_DEMO_DIR (keep data
# there instead of a new temporary directory), HF_DEMO_DOWN_AT (s, 6),
# HF_DEMO_DOWN_FOR (s, 5), HF_DEMO_METHOD (method file).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${HF_BIN:-$root/build}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
agg=$bin/aggregator/holdfast-aggregator
eng=$bin/engine/holdfast-engine
cli=$bin/aggregator/holdfast
method=${HF_DEMO_METHOD:-$root/engine/methods/oven-demo.method}
down_at=${HF_DEMO_DOWN_AT:-6}
down_for=${HF_DEMO_DOWN_FOR:-5}
for f in "$agg" "$eng" "$cli" "$method"; do
    [ -e "$f" ] || { echo "demo: missing $f (run 'make' first)" >&2; exit 2; }
done
dir=${HF_DEMO_DIR:-$(mktemp -d /tmp/holdfast-demo.XXXXXX)}
mkdir -p "$dir"

# Keys (docs/security.md): the demo runs on the secure path (CURVE), with
# keys it makes: the aggregator's pair, the engine's (bound to id "demo"),
# an operator's for the CLI. Public halves go into the aggregator's trusted
# directories; each secret stays with its owner (mode 0600).
keys=$dir/keys
mkdir -p "$keys/engines" "$keys/operators" "$keys/private"
chmod 700 "$keys/private"
keygen() { # NAME DIR ARGS...: a pair, unless it exists (HF_DEMO_DIR reused)
    local name=$1 d=$2
    shift 2
    [ -f "$d/${name}_secret" ] || "$cli" keygen "$name" --dir "$d" "$@" >/dev/null
}
keygen aggregator "$keys" --server
keygen demo "$keys/private" --engine demo
keygen operator "$keys/private" --role operator
cp "$keys/private/demo" "$keys/engines/demo"
cp "$keys/private/operator" "$keys/operators/operator"
hf() { "$cli" --cert "$keys/private/operator_secret" --server-key "$keys/aggregator" "$@"; }

agg_pid=
eng_pid=
cleanup() {
    local rc=$?
    for p in $eng_pid $agg_pid; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
    exit $rc
}
trap cleanup EXIT
trap 'echo "demo: interrupted"; exit 130' INT TERM

say() { printf '[demo %5.1fs] %s\n' "$(( $(date +%s%N) / 1000000 - t0 ))e-3" "$*"; }
t0=$(( $(date +%s%N) / 1000000 ))

# wait_for CMD... : poll (bounded, 20 s) until CMD succeeds.
wait_for() {
    local i
    for i in $(seq 1 200); do
        if "$@" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

start_aggregator() { # $1: engines endpoint, $2: control endpoint
    "$agg" --bind "$1" --control "$2" --data "$dir/store" --cert "$keys/aggregator_secret" \
        --engine-keys "$keys/engines" --operator-keys "$keys/operators" \
        >>"$dir/aggregator.log" 2>&1 &
    agg_pid=$!
}

say "data directory: $dir"
start_aggregator "tcp://127.0.0.1:*" "tcp://127.0.0.1:*"
wait_for grep -q "listening engines=" "$dir/aggregator.log" || {
    echo "demo: aggregator did not start:"; cat "$dir/aggregator.log"; exit 1; }
line=$(grep "listening engines=" "$dir/aggregator.log" | tail -1)
engines_ep=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
control_ep=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
say "aggregator pid=$agg_pid engines=$engines_ep control=$control_ep"

"$eng" --id demo --connect "$engines_ep" --spool "$dir/spool" --method "$method" \
    --cert "$keys/private/demo_secret" --server-key "$keys/aggregator" \
    --summary "$dir/engine.summary" >"$dir/engine.out" 2>"$dir/engine.log" &
eng_pid=$!
say "engine pid=$eng_pid running $(basename "$method")"

sleep "$down_at"
kill -9 "$agg_pid"; wait "$agg_pid" 2>/dev/null || true
say "aggregator killed (SIGKILL); the engine keeps running and spools to disk"
sleep "$down_for"
start_aggregator "$engines_ep" "$control_ep"
wait_for grep -c "listening engines=" "$dir/aggregator.log" >/dev/null
say "aggregator restarted pid=$agg_pid on the same endpoints"

# The engine exits once its run is over and the aggregator acked everything.
for i in $(seq 1 900); do
    kill -0 "$eng_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$eng_pid" 2>/dev/null; then
    echo "demo: engine still running after 90 s"; exit 1
fi
eng_rc=0; wait "$eng_pid" || eng_rc=$?
eng_pid=
say "engine exited rc=$eng_rc"
[ -s "$dir/engine.summary" ] || { echo "demo: engine wrote no summary:"; tail -20 "$dir/engine.log"; exit 1; }
summary=$(cat "$dir/engine.summary")
kv() { sed -nE "s/.*(^| )$1=([^ ]*).*/\2/p" <<<"$summary"; }

# The engine said BYE on its way out: the aggregator shows a clean shutdown
# (not "link lost" 3 s later).
clean=0
for i in $(seq 1 40); do
    if hf --control "$control_ep" status 2>/dev/null | grep -q "clean shutdown"; then
        clean=1; break
    fi
    sleep 0.05
done
hf --control "$control_ep" status >"$dir/status.txt"
hf --control "$control_ep" engines --history >"$dir/history.txt"
hf --control "$control_ep" export --engine demo --format jsonl --out "$dir/export.jsonl"
hf --control "$control_ep" export --engine demo --format csv --out "$dir/export.csv"

committed=$(( $(kv committed_control) + $(kv committed_data) ))
stored=$(wc -l <"$dir/export.jsonl")
field() { grep -oE "\"$1\":(\"[^\"]*\"|[^,}]*)" "$dir/export.jsonl" | sed -E "s/^\"$1\"://; s/\"//g"; }
# Duplicates: the same (lane, seq) twice, or the same sample/event content
# stored under two sequence numbers.
dup_seq=$(paste -d' ' <(field lane) <(field seq) | sort | uniq -d | wc -l)
dup_content=$(sed -E 's/"seq":[0-9]+,?//' "$dir/export.jsonl" | sort | uniq -d | wc -l)
gaps=0
for lane in control data; do
    seqs=$(paste -d' ' <(field lane) <(field seq) | awk -v l=$lane '$1==l {print $2}' | sort -n | uniq)
    n=$(grep -c . <<<"$seqs" || true)
    max=$(tail -1 <<<"$seqs"); max=${max:-0}
    first=$(head -1 <<<"$seqs"); first=${first:-1}
    [ "$n" -eq 0 ] && continue
    gaps=$(( gaps + (max - first + 1 - n) + (first - 1) ))
done
lost=$(( committed > stored ? committed - stored : 0 ))
final=$(grep '"kind":"event"' "$dir/export.jsonl" | grep -oE '"event":"(completed|failed|aborted|interrupted)"' | tail -1 | sed -E 's/.*:"(.*)"/\1/')
final=${final:-running}
samples_stored=$(grep -c '"kind":"sample"' "$dir/export.jsonl" || true)
offline=$(grep -c '"observed_offline":true' "$dir/export.jsonl" || true)

echo
echo "==================== Holdfast demo ===================="
printf '%-34s %s\n' "engine summary" "$summary"
printf '%-34s %s\n' "records committed by the engine" "$committed"
printf '%-34s %s\n' "records stored by the aggregator" "$stored"
printf '%-34s %s\n' "samples taken / stored" "$(kv samples) / $samples_stored"
printf '%-34s %s\n' "replayed from the engine's backlog" "$offline (marked observed_offline in the export)"
printf '%-34s %s\n' "lost" "$lost"
printf '%-34s %s\n' "duplicates (by seq / by content)" "$dup_seq / $dup_content"
printf '%-34s %s\n' "gaps in sequence numbers" "$gaps"
printf '%-34s %s\n' "run's final state" "$final"
printf '%-34s %s\n' "engine's exit seen as" "$([ $clean -eq 1 ] && echo "clean shutdown" || echo "NOT a clean shutdown")"
printf '%-34s %s\n' "data" "$dir (store/, spool/, export.jsonl, export.csv, *.log)"
echo "========================================================"
echo
cat "$dir/status.txt"
sed -n '/AVAILABILITY HISTORY/,$p' "$dir/history.txt"

ok=1
[ "$eng_rc" -eq 0 ] || ok=0
[ "$lost" -eq 0 ] && [ "$stored" -eq "$committed" ] || ok=0
[ "$dup_seq" -eq 0 ] && [ "$dup_content" -eq 0 ] && [ "$gaps" -eq 0 ] || ok=0
[ "$final" = completed ] || ok=0
[ "$clean" -eq 1 ] || ok=0
[ "$offline" -gt 0 ] || ok=0 # the outage's records came from the backlog
[ "$(kv samples)" = "$samples_stored" ] || ok=0
if [ $ok -eq 1 ]; then
    echo "demo: OK - nothing lost, nothing duplicated, run completed"
else
    echo "demo: FAILED - see $dir"; exit 1
fi
