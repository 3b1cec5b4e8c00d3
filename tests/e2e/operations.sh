#!/usr/bin/env bash
# operations.sh - issue 10 with real processes (docs/operations.md,
# docs/configuration.md):
#   1. the aggregator starts from a configuration file (a flag wins over it;
#      --print-config shows the effective result); a bad file is refused
#      with its file and line;
#   2. /metrics parses as Prometheus text and its counters move with traffic;
#   3. storage monitoring: a threshold the disk crosses raises an alarm,
#      shown by `holdfast status` and on the status feed;
#   4. a hot backup taken while an engine streams restores to a store with
#      every record acknowledged before it began;
#   5. moving the aggregator to a new server (backup, copy, restore: the
#      three commands of docs/operations.md) finds every record there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init operations

BIN_AGG=$E2E_BIN/aggregator/holdfast-aggregator
BIN_CLI=$E2E_BIN/aggregator/holdfast
port() { echo $(( 20000 + RANDOM % 30000 )); }
mport=$(port)
feed=tcp://127.0.0.1:$(port)
log=$E2E_DIR/aggregator.log

say "1. configuration file"
cat >"$E2E_DIR/agg.cfg" <<CFG
# holdfast-aggregator configuration (ZPL)
holdfast-aggregator
    bind = "tcp://127.0.0.1:*"
    control = "tcp://127.0.0.1:*"
    data = "$E2E_DIR/store"
    watchdog-ms = 3000
    metrics = "127.0.0.1:$mport"
    status = "$feed"
    disk-low-pct = 90
CFG
printf 'holdfast-aggregator\n    bind = x\n    watchdog = 5\n' >"$E2E_DIR/bad.cfg"
rc=0
"$BIN_AGG" --config "$E2E_DIR/bad.cfg" 2>"$E2E_DIR/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "a bad configuration file: exit $rc, want 2"
grep -q "bad.cfg:3: unknown option 'watchdog'" "$E2E_DIR/bad.err" || { cat "$E2E_DIR/bad.err"; fail "no file:line reason"; }
"$BIN_AGG" --config "$E2E_DIR/agg.cfg" --watchdog-ms 1500 --insecure --print-config >"$E2E_DIR/effective.cfg"
grep -q "watchdog-ms = 1500" "$E2E_DIR/effective.cfg" || fail "the flag did not win over the file"
grep -q "metrics = \"127.0.0.1:$mport\"" "$E2E_DIR/effective.cfg" || fail "the file's metrics missing"

"$E2E_AGG" --config "$E2E_DIR/agg.cfg" >"$log" 2>&1 &
AGG_PID=$!
e2e_track "$AGG_PID"
s_listening() { grep -q "listening engines=" "$log"; }
e2e_wait_until 20 s_listening || { tail "$log"; fail "aggregator did not start from its file"; }
line=$(grep "listening engines=" "$log" | tail -1)
AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
cli() { "$E2E_CLI" --control "$AGG_CONTROL" "$@"; }
"$E2E_CLI" status --watch --feed "$feed" >"$E2E_DIR/feed.txt" 2>&1 &
e2e_track $!

scrape() { # scrape FILE: GET /metrics over bash's /dev/tcp
    exec 3<>"/dev/tcp/127.0.0.1/$mport" || return 1
    printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
    cat <&3 >"$1"
    exec 3<&-
}
value() { sed -nE "s/^$2 ([0-9.e+]+)\r?$/\1/p" "$1" | head -1; }

say "2 and 4. an engine streams; a hot backup mid-run"
"$E2E_ENG" --id ops-1 --connect "$AGG_ENGINES" --spool "$E2E_DIR/spool" \
    --method "$E2E_HERE/link_cut.method" --summary "$E2E_DIR/summary" \
    >"$E2E_DIR/engine.out" 2>"$E2E_DIR/engine.log" &
ENG_PID=$!
e2e_track "$ENG_PID"
s_streaming() { cli runs --engine ops-1 2>/dev/null | grep -q " running "; }
e2e_wait_until 20 s_streaming || fail "the run never streamed"
sleep 1.2
scrape "$E2E_DIR/m1.txt" || fail "no /metrics"
before=$(cli engines --json | tr '{' '\n' | sed -nE 's/.*"engine":"ops-1".*"records":\[([0-9]+),([0-9]+)\].*/\2/p' | head -1)
"$BIN_CLI" backup "$E2E_DIR/hot" --data "$E2E_DIR/store" >"$E2E_DIR/hot.out" || fail "hot backup failed"
sed 's/^/    /' "$E2E_DIR/hot.out"
e2e_wait_exit "$ENG_PID" 60 || fail "the engine did not finish"
[ "$E2E_RC" -eq 0 ] || fail "engine exited $E2E_RC"
sleep 1.2 # a metrics refresh
scrape "$E2E_DIR/m2.txt" || fail "no /metrics"

# every line is Prometheus text: a comment, or name{labels} number
bad=$(tr -d '\r' <"$E2E_DIR/m2.txt" | sed '1,/^$/d' |
      grep -vE '^(# (HELP|TYPE) holdfast_[a-z_]+ .*|holdfast_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+)$' | head -3 || true)
[ -z "$bad" ] || fail "not Prometheus text: $bad"
r1=$(value "$E2E_DIR/m1.txt" 'holdfast_engine_records_total\{engine="ops-1",lane="data"\}')
r2=$(value "$E2E_DIR/m2.txt" 'holdfast_engine_records_total\{engine="ops-1",lane="data"\}')
a2=$(value "$E2E_DIR/m2.txt" 'holdfast_engine_acks_total\{engine="ops-1"\}')
say "metrics: data records ${r1:-?} -> ${r2:-?}, acks ${a2:-?}"
[ -n "$r1" ] && [ -n "$r2" ] && [ "$r2" -gt "$r1" ] || fail "the records counter did not move"
sm=$(cat "$E2E_DIR/summary")
[ "$r2" -eq "$(kv "$sm" committed_data)" ] || fail "metrics say $r2 data records, engine committed $(kv "$sm" committed_data)"

say "3. storage alarm (disk-low-pct 90)"
free_pct=$(df --output=pcent "$E2E_DIR" | tail -1 | tr -dc 0-9)
if [ $(( 100 - free_pct )) -lt 90 ]; then
    cli status | grep -q "ALARM: the store's disk is low" || fail "status shows no disk alarm"
    grep -q "alarm raised code=1004" "$log" || fail "the alarm was not logged"
else
    say "(the disk has $(( 100 - free_pct ))% free: the alarm cannot be provoked here; skipped)"
fi
cli status | grep "^STORAGE" | sed 's/^/    /'

say "4. the hot backup restores everything acked before it began"
"$BIN_CLI" restore "$E2E_DIR/hot" --data "$E2E_DIR/restored" >/dev/null || fail "restore failed"
"$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$E2E_DIR/restored" \
    >"$E2E_DIR/restored.log" 2>&1 &
R_PID=$!
e2e_track "$R_PID"
s_rl() { grep -q "listening engines=" "$E2E_DIR/restored.log"; }
e2e_wait_until 20 s_rl || fail "the restored store does not serve"
R_CONTROL=$(grep "listening engines=" "$E2E_DIR/restored.log" | sed -E 's/.*control=([^ ]+).*/\1/')
"$E2E_CLI" --control "$R_CONTROL" export --engine ops-1 --out "$E2E_DIR/hot.jsonl" 2>/dev/null
got=$(grep -c '"lane":"data"' "$E2E_DIR/hot.jsonl")
say "acked before the backup: ${before:-?} data records; the backup holds $got"
[ -n "$before" ] && [ "$got" -ge "$before" ] || fail "the backup lacks records acked before it"
e2e_check_export "$E2E_DIR/hot.jsonl" "" "" || fail "the backup's records are not contiguous"
kill -TERM "$R_PID"; e2e_wait_exit "$R_PID" 10 || true

say "5. moving the aggregator to a new server: backup, copy, restore (docs/operations.md)"
# the old host's configuration directory: its config file and its keys
mkdir -p "$E2E_DIR/etc"
cp "$E2E_DIR/agg.cfg" "$E2E_DIR/etc/aggregator.cfg"
cp -r "$E2E_KEYS" "$E2E_DIR/etc/keys"
# 1. on the old host: a backup of the store (it keeps running meanwhile)
"$BIN_CLI" backup "$E2E_DIR/move/store" --data "$E2E_DIR/store" >/dev/null || fail "backup"
cp -r "$E2E_DIR/etc" "$E2E_DIR/move/etc"
# 2. copy it over (here: cp; between hosts: scp -r or rsync)
cp -r "$E2E_DIR/move" "$E2E_DIR/newhost"
# 3. on the new host: check and install the store
"$BIN_CLI" restore "$E2E_DIR/newhost/store" --data "$E2E_DIR/newhost/data" >/dev/null ||
    fail "restore"
sed -i "s#$E2E_DIR/store#$E2E_DIR/newhost/data#; s#127.0.0.1:$mport#127.0.0.1:0#" \
    "$E2E_DIR/newhost/etc/aggregator.cfg"
E2E_KEYS=$E2E_DIR/newhost/etc/keys "$E2E_AGG" --config "$E2E_DIR/newhost/etc/aggregator.cfg" \
    --status "tcp://127.0.0.1:*" >"$E2E_DIR/newhost.log" 2>&1 &
N_PID=$!
e2e_track "$N_PID"
s_nl() { grep -q "listening engines=" "$E2E_DIR/newhost.log"; }
e2e_wait_until 20 s_nl || fail "the new server does not serve"
N_CONTROL=$(grep "listening engines=" "$E2E_DIR/newhost.log" | sed -E 's/.*control=([^ ]+).*/\1/')
E2E_KEYS=$E2E_DIR/newhost/etc/keys "$E2E_CLI" --control "$N_CONTROL" export --engine ops-1 --out "$E2E_DIR/new.jsonl" 2>/dev/null
e2e_check_export "$E2E_DIR/new.jsonl" "$(kv "$sm" committed_control)" "$(kv "$sm" committed_data)" ||
    fail "the new server lacks records"
say "PASS"
