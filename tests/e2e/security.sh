#!/usr/bin/env bash
# security.sh - ctest e2e_security: issue 9's tests with real processes
# (docs/security.md). One CURVE aggregator (keys from lib.sh's e2e_keys) and:
#   - a trusted engine streams a run: stored complete (the secure path works);
#   - unknown key: an engine whose key is in no directory is refused at the
#     handshake ("unknown key" logged with the peer's address) and nothing it
#     sends is stored;
#   - impostor: an engine with a trusted key bound to "mallory" claiming id
#     "good" is refused ("id not bound to this key"); good's records stay as
#     they were;
#   - the CLI without an operator key cannot command: --insecure (plain),
#     an unknown key, an engine's key: each exits 7, the engine never sees it;
#   - a reader may query (status exits 0) but not command (exit 7, "wrong
#     role" logged);
#   - a plain (--insecure) engine cannot connect to the CURVE aggregator
#     (counted as a refused handshake), and can to an aggregator run
#     --insecure;
#   - a key added at run time is accepted without a restart: an engine
#     refused for its unknown key gets in once its public key is copied to
#     --engine-keys, and its run is stored complete; removed again, the key
#     is refused again;
#   - `holdfast status` counts the refusals by reason.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init security

log=$E2E_DIR/aggregator.log
"$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$E2E_DIR/store" \
    --watchdog-ms 1000 >"$log" 2>&1 &
AGG_PID=$!
e2e_track "$AGG_PID"
s_listening() { grep -q "listening engines=" "$log"; }
e2e_wait_until 20 s_listening || fail "aggregator did not listen"
line=$(grep "listening engines=" "$log" | tail -1)
AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
grep -q "security: CURVE server" "$log" || fail "the aggregator did not start on CURVE"
cli() { "$E2E_CLI" --control "$AGG_CONTROL" --timeout 3000 "$@"; }
raw_cli() { "$E2E_REAL_CLI" --control "$AGG_CONTROL" --timeout 3000 "$@"; }
method=$E2E_HERE/short.method
private=$E2E_DIR/untrusted
mkdir -p "$private"

# run_engine NAME ARGS...: the real engine binary (no wrapper) on its own
# spool, in the background; sets PID_<NAME>.
run_engine() {
    local name=$1
    shift
    "$E2E_REAL_ENG" --spool "$E2E_DIR/spool.$name" --summary "$E2E_DIR/summary.$name" "$@" \
        >"$E2E_DIR/engine.$name.out" 2>"$E2E_DIR/engine.$name.log" &
    e2e_track $!
    printf -v "PID_$name" '%s' $!
}
# stored ENGINE: records stored for ENGINE (0 when the aggregator has none).
stored() {
    if cli export --engine "$1" --format jsonl >"$E2E_DIR/export.$1" 2>/dev/null; then
        wc -l <"$E2E_DIR/export.$1"
    else
        echo 0
    fi
}
log_has() { grep -qE -- "$1" "$log"; }

# ---- a trusted engine: the secure path works -----------------------------------------
good_cert=$(e2e_engine_key good)
run_engine good --id good --connect "$AGG_ENGINES" --method "$method" \
    --cert "$good_cert" --server-key "$E2E_SERVER_KEY"
e2e_wait_exit "$PID_good" 30 || fail "engine good did not finish in 30 s"
[ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/engine.good.log"; fail "engine good rc=$E2E_RC"; }
summary=$(cat "$E2E_DIR/summary.good")
want=$(( $(kv "$summary" committed_control) + $(kv "$summary" committed_data) ))
good_n=$(stored good)
[ "$good_n" -eq "$want" ] || fail "good: $good_n records stored, want $want"
e2e_check_export "$E2E_DIR/export.good" "$(kv "$summary" committed_control)" \
    "$(kv "$summary" committed_data)" || fail "good: export not exact"
say "trusted engine: run stored complete ($good_n records) over CURVE"

# ---- refused engines, run side by side ---------------------------------------------
"$E2E_REAL_CLI" keygen rogue --dir "$private" --engine rogue >/dev/null
mallory_cert=$(e2e_engine_key mallory)
"$E2E_REAL_CLI" keygen late --dir "$private" --engine late >/dev/null
run_engine rogue --id rogue --connect "$AGG_ENGINES" --method "$method" --drain-timeout 2500 \
    --cert "$private/rogue_secret" --server-key "$E2E_SERVER_KEY"
run_engine impostor --id good --connect "$AGG_ENGINES" --method "$method" --drain-timeout 2500 \
    --cert "$mallory_cert" --server-key "$E2E_SERVER_KEY"
run_engine plain --id plain --connect "$AGG_ENGINES" --method "$method" --drain-timeout 2500 \
    --insecure
run_engine late --id late --connect "$AGG_ENGINES" --method "$method" --drain-timeout 20000 \
    --cert "$private/late_secret" --server-key "$E2E_SERVER_KEY"

# ---- the CLI without an operator key, and a reader --------------------------------
expect_rc() { # WANT DESC CMD...
    local want=$1 desc=$2 rc=0
    shift 2
    "$@" >"$E2E_DIR/cli.out" 2>"$E2E_DIR/cli.err" || rc=$?
    [ "$rc" -eq "$want" ] || { cat "$E2E_DIR/cli.err"; fail "$desc: exit $rc, want $want"; }
    say "$desc: exit $rc: $(head -1 "$E2E_DIR/cli.err" | cut -c1-150)"
}
"$E2E_REAL_CLI" keygen stranger --dir "$private" --role operator >/dev/null
expect_rc 7 "CLI --insecure, pause" raw_cli --insecure pause good
expect_rc 7 "CLI with an unknown key, pause" \
    raw_cli --cert "$private/stranger_secret" --server-key "$E2E_SERVER_KEY" pause good
expect_rc 7 "CLI with an engine's key, status" \
    raw_cli --cert "$good_cert" --server-key "$E2E_SERVER_KEY" status
expect_rc 0 "reader, status" \
    raw_cli --cert "$E2E_READER_CERT" --server-key "$E2E_SERVER_KEY" status
expect_rc 7 "reader, pause" \
    raw_cli --cert "$E2E_READER_CERT" --server-key "$E2E_SERVER_KEY" pause good
grep -q "permission denied" "$E2E_DIR/cli.err" || fail "reader's pause: no 'permission denied'"
log_has 'refused peer=[^ ]+ reason="wrong role" operator=reader role=reader' ||
    fail "the reader's command was not logged as 'wrong role'"
log_has 'refused peer=127\.0\.0\.1 reason="wrong role" domain=holdfast-control key=' ||
    fail "the engine key on the control endpoint was not logged as 'wrong role'"
expect_rc 0 "operator, status" cli status

# ---- unknown key, impostor, plain peer ------------------------------------------------
for n in rogue impostor plain; do
    pid_var=PID_$n
    e2e_wait_exit "${!pid_var}" 20 || fail "engine $n did not give up in 20 s"
    [ "$E2E_RC" -eq 3 ] || { tail -5 "$E2E_DIR/engine.$n.log"; fail "engine $n rc=$E2E_RC, want 3 (not drained)"; }
done
log_has 'refused peer=127\.0\.0\.1 reason="unknown key" domain=holdfast-engines' ||
    fail "the rogue engine was not logged as 'unknown key' with its address"
[ "$(stored rogue)" -eq 0 ] || fail "records of the rogue engine were stored"
grep -q "refused by the aggregator" "$E2E_DIR/engine.rogue.log" ||
    fail "the rogue engine did not log its refusal"
say "unknown key: refused at the handshake, nothing stored"
log_has 'refused peer=127\.0\.0\.1 reason="id not bound to this key" claimed=good key_engine=mallory' ||
    fail "the impostor was not logged as 'id not bound to this key'"
[ "$(stored good)" -eq "$good_n" ] || fail "good's records changed while an impostor spoke for it"
say "impostor: refused, good's $good_n records untouched"
[ "$(stored plain)" -eq 0 ] || fail "records of the plain engine were stored"
grep -q "mechanism mismatch" "$E2E_DIR/engine.plain.log" ||
    fail "the plain engine did not log a mechanism mismatch"
say "plain engine: cannot connect to the CURVE aggregator"

# ---- a key added at run time -----------------------------------------------------------
late_key=$(sed -nE 's/^ *public-key = "(.*)"/\1/p' "$private/late")
s_late_refused() { grep -F "key=$late_key" "$log" | grep -q 'reason="unknown key"'; }
e2e_wait_until 10 s_late_refused || fail "late was never refused for its unknown key"
e2e_alive "$PID_late" || fail "engine late exited before its key was added"
cp "$private/late" "$E2E_ENGINE_KEYS/.late.tmp"
mv "$E2E_ENGINE_KEYS/.late.tmp" "$E2E_ENGINE_KEYS/late"
say "late's key added to --engine-keys"
e2e_wait_exit "$PID_late" 25 || fail "engine late did not drain after its key was added"
[ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/engine.late.log"; fail "engine late rc=$E2E_RC"; }
summary=$(cat "$E2E_DIR/summary.late")
want=$(( $(kv "$summary" committed_control) + $(kv "$summary" committed_data) ))
[ "$(stored late)" -eq "$want" ] || fail "late: $(stored late) stored, want $want"
kill -0 "$AGG_PID" || fail "the aggregator is gone"
say "key added at run time: accepted without a restart, $want records stored"
loads=$(grep -c "loaded engine keys=" "$log")
rm "$E2E_ENGINE_KEYS/late"
s_reloaded() { [ "$(grep -c "loaded engine keys=" "$log")" -gt "$loads" ]; }
e2e_wait_until 5 s_reloaded || fail "the key directory was not read again within 5 s"
run_engine late2 --id late --connect "$AGG_ENGINES" --method "$method" --drain-timeout 2000 \
    --cert "$private/late_secret" --server-key "$E2E_SERVER_KEY"
e2e_wait_exit "$PID_late2" 20 || fail "engine late (key removed) did not give up"
[ "$E2E_RC" -eq 3 ] || fail "engine late with its key removed: rc=$E2E_RC, want 3"
[ "$(stored late)" -eq "$want" ] || fail "late's records changed after its key was removed"
say "key removed at run time: refused again"

# ---- the counters ------------------------------------------------------------------------
cli status >"$E2E_DIR/status.txt"
sec=$(grep '^SECURITY:' "$E2E_DIR/status.txt") || fail "no SECURITY line in holdfast status"
say "$sec"
count() { sed -nE "s/.*$1 ([0-9]+).*/\1/p" <<<"$sec"; }
[ "$(count 'unknown key')" -ge 3 ] || fail "unknown-key refusals not counted"
[ "$(count 'wrong role')" -ge 2 ] || fail "wrong-role refusals not counted"
[ "$(count 'id not bound')" -ge 1 ] || fail "id-not-bound refusals not counted"
[ "$(count 'handshake')" -ge 1 ] || fail "the plain peer's handshake not counted"
e2e_agg_stop

# ---- the plain engine gets in when the aggregator runs --insecure -----------------------
ilog=$E2E_DIR/insecure.log
"$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$E2E_DIR/store2" \
    --insecure >"$ilog" 2>&1 &
AGG_PID=$!
e2e_track "$AGG_PID"
s_ilistening() { grep -q "listening engines=" "$ilog"; }
e2e_wait_until 20 s_ilistening || fail "the --insecure aggregator did not listen"
grep -q "WARN  aggregator: INSECURE" "$ilog" || fail "--insecure did not log a warning"
line=$(grep "listening engines=" "$ilog" | tail -1)
ep=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
run_engine plain2 --id plain --connect "$ep" --method "$method" --insecure
e2e_wait_exit "$PID_plain2" 30 || fail "the plain engine did not finish against --insecure"
[ "$E2E_RC" -eq 0 ] || fail "plain engine against an --insecure aggregator: rc=$E2E_RC"
say "plain engine: accepted by an aggregator run --insecure"
e2e_agg_stop
say "PASS"
