# shellcheck shell=bash
# lib.sh - shared helpers for the end-to-end tests (sourced, not run).
#
# Each test script sources this file, calls e2e_init NAME, and then starts
# real holdfast processes with e2e_spawn / e2e_agg_start. Conventions:
#
# - Only processes this script started are ever signalled: their PIDs are in
#   E2E_PIDS and the EXIT trap ends those that are still alive (SIGTERM, a
#   bounded wait, then SIGKILL). No pkill/killall.
# - Every wait is a bounded poll with a deadline (e2e_wait_until); sleeps
#   only pace polls or pick random kill moments, never decide correctness.
# - The work directory ($E2E_DIR) is removed when the script exits 0 (or 77,
#   skipped), and kept (its path printed) on failure or with HF_E2E_KEEP=1.
# - A test may set E2E_CLEANUP to a function name run first by the trap
#   (e.g. to unmount a loop filesystem).
#
# - Security (issue 9, docs/security.md): E2E_AGG, E2E_ENG and E2E_CLI are
#   thin scripts (tests/e2e/bin) that run the real binaries (E2E_REAL_AGG,
#   E2E_REAL_ENG, E2E_REAL_CLI) on the secure path: CURVE, with keys made on
#   demand in $E2E_KEYS (an engine's key the first time its --id starts; the
#   CLI as an operator). Scripts need not know about keys. Arguments that
#   already choose (--insecure, --cert) pass through; HF_E2E_INSECURE=1 runs
#   everything plain. e2e_keys / e2e_engine_key give the paths to tests
#   that need them (tests/e2e/security.sh).
#
# Environment: HF_BIN (build dir, default <repo>/build), HF_E2E_KEEP,
# HF_E2E_DIR (parent of the work directory, default $TMPDIR or /tmp),
# HF_E2E_INSECURE.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_HERE=$E2E_ROOT/tests/e2e
E2E_BIN=${HF_BIN:-$E2E_ROOT/build}
case $E2E_BIN in /*) ;; *) E2E_BIN=$E2E_ROOT/$E2E_BIN ;; esac
E2E_REAL_AGG=$E2E_BIN/aggregator/holdfast-aggregator
E2E_REAL_ENG=$E2E_BIN/engine/holdfast-engine
E2E_REAL_CLI=$E2E_BIN/aggregator/holdfast
export E2E_REAL_AGG E2E_REAL_ENG E2E_REAL_CLI
E2E_AGG=$E2E_HERE/bin/holdfast-aggregator
E2E_ENG=$E2E_HERE/bin/holdfast-engine
E2E_CLI=$E2E_HERE/bin/holdfast
# Until e2e_init (or e2e_keys DIR) names a work directory, keys go to a
# per-user cache (secure.sh); export so that every child sees the same.
export E2E_KEYS=${E2E_KEYS:-}
E2E_PIDS=()
E2E_CLEANUP=
E2E_NAME=e2e
E2E_DIR=
E2E_T0=$(( $(date +%s%N) / 1000000 ))
AGG_PID=
AGG_ENGINES=
AGG_CONTROL=

# say MSG...: a timestamped progress line (seconds since start).
say() {
    local ms=$(( $(date +%s%N) / 1000000 - E2E_T0 ))
    printf '[%s %3d.%03ds] %s\n' "$E2E_NAME" $(( ms / 1000 )) $(( ms % 1000 )) "$*"
}

# fail MSG...: print and exit 1 (the trap keeps the work directory).
fail() {
    say "FAIL: $*"
    exit 1
}

e2e_on_exit() {
    local rc=$?
    local p i
    trap - EXIT
    for p in "${E2E_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$E2E_CLEANUP" ]; then
        if ! "$E2E_CLEANUP" && [ "$rc" -eq 0 ]; then rc=1; fi
    fi
    if [ -n "$E2E_DIR" ] && [ -d "$E2E_DIR" ]; then
        if { [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; } && [ -z "${HF_E2E_KEEP:-}" ]; then
            rm -rf "$E2E_DIR"
        else
            say "work directory kept: $E2E_DIR"
        fi
    fi
    exit "$rc"
}

# e2e_init NAME: check the binaries, make the work dir, install the traps.
e2e_init() {
    E2E_NAME=$1
    local f
    for f in "$E2E_REAL_AGG" "$E2E_REAL_ENG" "$E2E_REAL_CLI"; do
        [ -x "$f" ] || { echo "$E2E_NAME: missing $f (build first; HF_BIN=$E2E_BIN)" >&2; exit 2; }
    done
    E2E_DIR=$(mktemp -d "${HF_E2E_DIR:-${TMPDIR:-/tmp}}/holdfast-$E2E_NAME.XXXXXX")
    trap e2e_on_exit EXIT
    trap 'say "interrupted"; exit 130' INT TERM
    say "work directory: $E2E_DIR"
    e2e_keys "$E2E_DIR/keys"
}

# e2e_keys [DIR]: use DIR (default: $E2E_KEYS, else <work dir>/keys) for
# this script's keys, make the aggregator's and the operators' keys now,
# and set E2E_SERVER_KEY (public), E2E_SERVER_CERT (secret),
# E2E_ENGINE_KEYS, E2E_OPERATOR_KEYS (the aggregator's directories),
# E2E_OPERATOR_CERT, E2E_READER_CERT (the CLI's secret files).
e2e_keys() {
    export E2E_KEYS=${1:-${E2E_KEYS:-$E2E_DIR/keys}}
    "$E2E_CLI" --control tcp://127.0.0.1:9 --timeout 1 status >/dev/null 2>&1 || true
    [ -f "$E2E_KEYS/server_secret" ] || { echo "e2e_keys: no keys made in $E2E_KEYS" >&2; exit 2; }
    E2E_SERVER_KEY=$E2E_KEYS/server
    E2E_SERVER_CERT=$E2E_KEYS/server_secret
    E2E_ENGINE_KEYS=$E2E_KEYS/engines
    E2E_OPERATOR_KEYS=$E2E_KEYS/operators
    E2E_OPERATOR_CERT=$E2E_KEYS/private/operator_secret
    E2E_READER_CERT=$E2E_KEYS/private/reader_secret
}

# e2e_engine_key ID: make (if needed) engine ID's key, trusted by the
# aggregator; prints its secret file.
e2e_engine_key() {
    if [ ! -f "$E2E_KEYS/private/engine-$1_secret" ]; then
        (
            flock 9
            "$E2E_REAL_CLI" keygen "engine-$1" --dir "$E2E_KEYS/private" --engine "$1" >/dev/null
            cp "$E2E_KEYS/private/engine-$1" "$E2E_ENGINE_KEYS/.engine-$1.tmp"
            mv -f "$E2E_ENGINE_KEYS/.engine-$1.tmp" "$E2E_ENGINE_KEYS/engine-$1"
        ) 9>"$E2E_KEYS/.lock"
    fi
    echo "$E2E_KEYS/private/engine-$1_secret"
}

# e2e_wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds;
# 1 if the deadline passes first.
e2e_wait_until() {
    local limit=$1
    shift
    local deadline=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
    while :; do
        if "$@" 2>/dev/null; then return 0; fi
        [ $(( $(date +%s%N) / 1000000 )) -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# e2e_alive PID: true while PID runs.
e2e_alive() { kill -0 "$1" 2>/dev/null; }
e2e_dead() { ! kill -0 "$1" 2>/dev/null; }

# e2e_wait_exit PID SECONDS: wait (bounded) for a child to exit; sets
# E2E_RC to its status. 1 (and the child still running) on timeout.
e2e_wait_exit() {
    E2E_RC=
    e2e_wait_until "$2" e2e_dead "$1" || return 1
    E2E_RC=0
    wait "$1" 2>/dev/null || E2E_RC=$?
    return 0
}

# e2e_wait_exit_log PID SECONDS LOG MAX_BYTES: e2e_wait_exit that also
# gives up once LOG grows past MAX_BYTES (a process looping on an error can
# write gigabytes in a minute): 0 exited (E2E_RC set), 1 timeout, 2 log flood.
e2e_wait_exit_log() {
    local pid=$1 limit=$2 log=$3 max=$4
    local deadline=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
    E2E_RC=
    while e2e_alive "$pid"; do
        [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -le "$max" ] || return 2
        [ $(( $(date +%s%N) / 1000000 )) -lt "$deadline" ] || return 1
        sleep 0.05
    done
    E2E_RC=0
    wait "$pid" 2>/dev/null || E2E_RC=$?
    return 0
}

# e2e_small_fs SIZE: a SIZE (truncate's units) ext4 filesystem, loop-mounted
# at $E2E_DIR/mnt (set in E2E_FS_MNT) and unmounted by the EXIT trap (it
# sets E2E_CLEANUP). Needs root; returns 1 with the reason in E2E_FS_REASON.
E2E_FS_MNT=
E2E_FS_REASON=
e2e_small_fs() {
    local t
    if [ "$(id -u)" -ne 0 ]; then
        E2E_FS_REASON="needs root to loop-mount a small filesystem"; return 1
    fi
    for t in mkfs.ext4 mount umount losetup; do
        command -v "$t" >/dev/null || { E2E_FS_REASON="$t not found"; return 1; }
    done
    truncate -s "$1" "$E2E_DIR/fs.img"
    if ! mkfs.ext4 -q -F -b 1024 -m 0 -O ^has_journal "$E2E_DIR/fs.img" >/dev/null 2>&1; then
        E2E_FS_REASON="mkfs.ext4 failed"; return 1
    fi
    mkdir -p "$E2E_DIR/mnt"
    if ! mount -o loop "$E2E_DIR/fs.img" "$E2E_DIR/mnt" 2>"$E2E_DIR/mount.err"; then
        E2E_FS_REASON="cannot loop-mount an image here: $(tr '\n' ' ' <"$E2E_DIR/mount.err")"
        return 1
    fi
    E2E_FS_MNT=$E2E_DIR/mnt
    E2E_CLEANUP=e2e_small_fs_umount
}

# e2e_small_fs_umount: unmount e2e_small_fs's filesystem, retrying for up to
# 5 s (a process that just exited may still hold it for a moment).
e2e_small_fs_umount() {
    local i
    [ -n "$E2E_FS_MNT" ] || return 0
    for i in $(seq 1 50); do
        if umount "$E2E_FS_MNT" 2>/dev/null; then
            E2E_FS_MNT=
            return 0
        fi
        sleep 0.1
    done
    say "could not unmount $E2E_FS_MNT"
    return 1
}

# e2e_track PID: remember a child so that the EXIT trap can end it.
e2e_track() { E2E_PIDS+=("$1"); }

# e2e_agg_start DATA_DIR LOG [ENGINES_EP CONTROL_EP]: start an aggregator
# (ephemeral loopback ports unless given), wait until it listens, set
# AGG_PID, AGG_ENGINES, AGG_CONTROL.
e2e_agg_start() {
    local data=$1 log=$2
    local eps=${3:-tcp://127.0.0.1:*} cps=${4:-tcp://127.0.0.1:*}
    local before=0
    [ -f "$log" ] && before=$(grep -c "listening engines=" "$log" || true)
    "$E2E_AGG" --bind "$eps" --control "$cps" --data "$data" >>"$log" 2>&1 &
    AGG_PID=$!
    e2e_track "$AGG_PID"
    s_agg_listening() { [ "$(grep -c "listening engines=" "$log")" -gt "$before" ]; }
    if ! e2e_wait_until 20 s_agg_listening; then
        tail -20 "$log"
        fail "aggregator did not start listening within 20 s"
    fi
    local line
    line=$(grep "listening engines=" "$log" | tail -1)
    AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
    AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
}

# e2e_agg_stop: SIGTERM the aggregator and wait (bounded) for it.
e2e_agg_stop() {
    [ -n "$AGG_PID" ] || return 0
    kill -TERM "$AGG_PID" 2>/dev/null || true
    if ! e2e_wait_exit "$AGG_PID" 10; then
        say "aggregator pid=$AGG_PID ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "$AGG_PID" 2>/dev/null || true
        e2e_wait_exit "$AGG_PID" 5 || true
    fi
    AGG_PID=
}

# e2e_make_spool DIR: a real spool holding unacked records: the engine runs
# tests/e2e/short.method with no aggregator and gives up draining at once.
e2e_make_spool() {
    "$E2E_ENG" --id maker --connect tcp://127.0.0.1:9 --spool "$1" \
        --method "$E2E_HERE/short.method" --drain-timeout 0 >"$1.out" 2>"$1.log" &
    local pid=$!
    e2e_track "$pid"
    e2e_wait_exit "$pid" 30 || fail "making a spool: the engine did not exit in 30 s"
    # 3: drain timed out, the records stay in the spool (what we want)
    [ "$E2E_RC" -eq 3 ] || { tail -5 "$1.log"; fail "making a spool: engine rc=$E2E_RC, want 3"; }
    [ -s "$1/data.mdb" ] || fail "making a spool: no $1/data.mdb"
}

# e2e_make_store DIR: a real aggregator store holding one completed run.
e2e_make_store() {
    e2e_agg_start "$1" "$1.agg.log"
    "$E2E_ENG" --id maker --connect "$AGG_ENGINES" --spool "$1.spool" \
        --method "$E2E_HERE/short.method" >"$1.out" 2>"$1.log" &
    local pid=$!
    e2e_track "$pid"
    e2e_wait_exit "$pid" 30 || fail "making a store: the engine did not exit in 30 s"
    [ "$E2E_RC" -eq 0 ] || { tail -5 "$1.log"; fail "making a store: engine rc=$E2E_RC"; }
    e2e_agg_stop
    [ -s "$1/data.mdb" ] || fail "making a store: no $1/data.mdb"
}

# e2e_sums DIR: sha256 of every file in DIR but LMDB's lock.mdb (a shared
# memory reader table that any open may reinitialise; it holds no data).
e2e_sums() {
    (cd "$1" && find . -type f ! -name lock.mdb | LC_ALL=C sort | xargs -r sha256sum)
}

# e2e_expect_refusal CASE DIR REGEX KIND: run the engine (KIND=engine, DIR as
# its spool) or the aggregator (KIND=aggregator, DIR as its --data) on a bad
# DIR. Passes if it exits non-zero on its own (no signal, within 20 s),
# stderr names DIR, says HF_ECORRUPT and matches REGEX, and every file in
# DIR but lock.mdb is byte-identical afterwards. Prints one line; returns 1
# on failure.
e2e_expect_refusal() {
    local name=$1 dir=$2 re=$3 kind=$4 out=$E2E_DIR/$1.stderr pid why=
    local before after
    before=$(e2e_sums "$dir")
    if [ "$kind" = engine ]; then
        "$E2E_ENG" --id refuse --connect tcp://127.0.0.1:9 --spool "$dir" \
            --method "$E2E_HERE/short.method" --drain-timeout 0 >/dev/null 2>"$out" &
    else
        "$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$dir" \
            >/dev/null 2>"$out" &
    fi
    pid=$!
    e2e_track "$pid"
    s_refusal_done() { e2e_dead "$pid" || grep -q "listening engines=" "$out"; }
    e2e_wait_until 20 s_refusal_done || true
    if e2e_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        e2e_wait_exit "$pid" 10 || { kill -KILL "$pid" 2>/dev/null; e2e_wait_exit "$pid" 5; } || true
        why="it accepted the directory (still running$(grep -q "listening engines=" "$out" &&
            echo ", listening"))"
    elif ! e2e_wait_exit "$pid" 1; then
        why="cannot reap pid $pid"
    elif [ "$E2E_RC" -eq 0 ]; then
        why="exit status 0: it accepted the directory"
    elif [ "$E2E_RC" -ge 128 ]; then
        why="killed by signal $(( E2E_RC - 128 )) ($(kill -l $(( E2E_RC - 128 )) 2>/dev/null || echo ?)), not a refusal"
    elif ! grep -qF -- "$dir" "$out"; then
        why="exit $E2E_RC, but stderr does not name $dir"
    elif ! grep -q "HF_ECORRUPT" "$out"; then
        why="exit $E2E_RC, but stderr does not say HF_ECORRUPT"
    elif ! grep -qE -- "$re" "$out"; then
        why="exit $E2E_RC, but stderr does not match /$re/"
    fi
    after=$(e2e_sums "$dir")
    if [ "$before" != "$after" ]; then
        why="${why:+$why; }the files changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | tr '\n' ' ')"
    fi
    if [ -n "$why" ]; then
        say "case $name: FAIL: $why"
        sed 's/^/      stderr: /' "$out" | head -5 | cut -c1-240
        return 1
    fi
    say "case $name: refused, exit $E2E_RC, files unchanged: $(grep -E -- "$re" "$out" | head -1 | cut -c1-200)"
}

# kv LINE KEY: the value of KEY=... in a summary line.
kv() { sed -nE "s/.*(^| )$2=([^ ]*).*/\2/p" <<<"$1"; }

# e2e_check_export JSONL WANT_CONTROL WANT_DATA: the store holds, per lane,
# exactly the seqs 1..WANT (each once; missing seqs only inside announced
# gap ranges), one epoch, no content duplicate (the demo's rule: the same
# record under two seqs). Prints a report; returns 1 on any violation.
e2e_check_export() {
    local file=$1 wc=$2 wd=$3 ok=0
    awk -v want_control="$wc" -v want_data="$wd" -f "$E2E_HERE/check_export.awk" "$file" \
        >"$file.check" || ok=1
    sed 's/^/    /' "$file.check" | grep -v '^    run ' || true
    local dup_content
    dup_content=$(sed -E 's/"seq":[0-9]+,?//' "$file" | sort | uniq -d | wc -l)
    echo "    content duplicates: $dup_content"
    [ "$dup_content" -eq 0 ] || ok=1
    return $ok
}
