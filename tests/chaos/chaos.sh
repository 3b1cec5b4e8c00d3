#!/usr/bin/env bash
# chaos.sh - the chaos suite (issue 8): rounds of real processes under a
# random fault schedule drawn from a seed, then a checker that proves, for
# every engine, that nothing was lost, nothing duplicated, every run ended
# in the right state and every availability change was published.
#
# One round (docs/chaos.md):
#   - one holdfast-aggregator (--watchdog-ms 1000, --status feed) on a fresh
#     store; `holdfast status --watch` records the feed;
#   - 1..HF_CHAOS_ENGINES (3) engines, each behind its own hf-proxy, each
#     running tests/chaos/chaos.method (4 channels at 200 Hz, 4 s) on its own
#     spool;
#   - a schedule of faults drawn from the round's seed over the first
#     HF_CHAOS_FAULT_MS (5000) ms: per engine a serial timeline of proxy
#     cut / reset / blackhole (1-4 s) / delay / throttle, kill -9 of the engine
#     (restarted at once on the same spool, a new run), SIGTERM with a
#     backlog (the proxy blackholed first; the engine must exit within 2 s,
#     then it is restarted to drain); and an aggregator timeline of kill -9
#     (down 0.2-1.5 s, restarted on the same store and endpoints) and
#     SIGSTOP/SIGCONT (1.5-4 s), and, as root with loop devices, disk full
#     on either side: the store and the spools live on small loop-mounted
#     ext4 filesystems and a ballast file fills one of them (all but
#     8 KiB) for 1.5-3 s. With the power-loss shim built
#     (tests/chaos/powerloss.c, HF_POWERLOSS_LIB), every process runs under
#     it, 2 in 5 engine kills are power losses (unsynced spool writes
#     vanish) and half the aggregator kills are power losses of the store;
#   - then everything heals; each engine's last incarnation runs its method
#     to the end and drains (exit 0, committed == acked).
# Checked per engine (tests/chaos/check.awk and below):
#   - per lane the store holds exactly seqs 1..committed (the final summary),
#     once each, missing seqs only inside announced gap ranges; one epoch;
#     no content duplicate; the final run holds every sample it took;
#   - every incarnation's run in its right state: killed -> "interrupted"
#     cause "engine restarted" (or "completed" if it had already ended);
#     SIGTERMed -> "aborted" (or "completed"); ran to the end -> "completed".
#     A run killed >= 500 ms after it started must be stored at all;
#   - availability: each blackhole longer than watchdog + 500 ms left the
#     engine "unavailable" on the feed by its end, and "available" after;
#     every outage the store recorded (engines --history) was published on
#     the feed (start and end, within 100 ms), outside the moments the feed
#     cannot be seen (aggregator down, and 500 ms after it listens again).
# A table at the end: rounds, faults by kind, records checked, lost,
# duplicated, wrong states, availability checks. Exit 1 on any violation.
#
# Environment:
#   HF_CHAOS_SEED      base seed (default: from the clock; printed). Round r
#                      uses seed+r-1: replay round r alone with
#                      HF_CHAOS_SEED=<its seed> HF_CHAOS_ROUNDS=1
#   HF_CHAOS_ROUNDS    rounds (default 5)
#   HF_CHAOS_ENGINES   most engines in a round (default 3)
#   HF_CHAOS_FAULT_MS  length of the fault window (default 5000)
#   HF_CHAOS_WATCHDOG_MS  the aggregator's watchdog (default 1000)
#   HF_CHAOS_KEEP=1    keep every round's directory (failed rounds are kept)
#   HF_CHAOS_STOP=1    stop at the first failed round
#   HF_CHAOS_DISKS=0   no loop-mounted filesystems (no disk-full faults);
#                      default: on when root with mkfs.ext4 and loop devices
#   HF_CHAOS_TOLERATE_KNOWN=1  count the known runs-table bug without failing
#                      (bug_runs_after_sigstop.sh); the CI run sets it
#   HF_BIN, HF_PROXY   build dir, hf-proxy binary
# The schedule is fully determined by the seed; process timing is not (real
# processes, real sockets), so a replay reproduces the faults, not every
# interleaving.
set -uo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
CH_HERE=$(cd "$(dirname "$0")" && pwd)
PROXY=${HF_PROXY:-$E2E_BIN/tests/proxy/hf-proxy}
for f in "$E2E_AGG" "$E2E_ENG" "$E2E_CLI" "$PROXY"; do
    [ -x "$f" ] || { echo "chaos: missing $f (build it; HF_BIN=$E2E_BIN)" >&2; exit 2; }
done
E2E_NAME=chaos
SEED=${HF_CHAOS_SEED:-$(( $(date +%s%N) / 1000 % 1000000000 ))}
ROUNDS=${HF_CHAOS_ROUNDS:-5}
MAX_ENGINES=${HF_CHAOS_ENGINES:-3}
FAULT_MS=${HF_CHAOS_FAULT_MS:-5000}
WATCHDOG_MS=${HF_CHAOS_WATCHDOG_MS:-1000}
METHOD=$CH_HERE/chaos.method
# The power-loss shim (tests/chaos/powerloss.c): with it, every engine and
# aggregator runs under LD_PRELOAD and some kills are power losses instead.
SHIM=${HF_POWERLOSS_LIB:-$E2E_BIN/tests/chaos/libhf_powerloss.so}
[ -f "$SHIM" ] || SHIM=
TOP=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-chaos.XXXXXX")
# Disk-full faults: the round's store and spools on loop-mounted filesystems.
DISKS=${HF_CHAOS_DISKS:-1}
if [ "$DISKS" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then DISKS=0; fi
    for t in mkfs.ext4 mount umount fallocate losetup; do
        command -v "$t" >/dev/null || DISKS=0
    done
fi
declare -a MOUNTS=()
# small_fs IMG SIZE_MB DIR: an ext4 filesystem in IMG mounted at DIR
small_fs() {
    truncate -s "${2}M" "$1" && mkfs.ext4 -q -F -b 1024 -m 0 -O ^has_journal "$1" >/dev/null 2>&1 &&
        mkdir -p "$3" && mount -o loop "$1" "$3" && MOUNTS+=("$3")
}
umount_all() {
    local m i
    for m in "${MOUNTS[@]}"; do
        for i in $(seq 1 50); do umount "$m" 2>/dev/null && break; sleep 0.1; done
    done
    MOUNTS=()
}
# can this machine loop-mount? (a container may have no loop devices)
if [ "$DISKS" = 1 ]; then
    if small_fs "$TOP/probe.img" 4 "$TOP/probe" 2>/dev/null; then
        umount_all 2>/dev/null || true
    else
        say "no loop-mounted filesystems here: no disk-full faults"
        DISKS=0
    fi
    rm -rf "$TOP/probe.img" "$TOP/probe"
fi
# Keys for the secure path of tests/e2e/bin (when lib.sh has it): made once,
# in the run's directory, shared by every round.
if declare -F e2e_keys >/dev/null; then
    e2e_keys "$TOP/keys"
fi

# ---------------------------------------------------------------- processes
# Every child is tracked by PID from spawn to reap and forgotten once reaped,
# so a PID the kernel recycles is never signalled. The EXIT trap resumes
# (SIGCONT), terminates, then kills whatever is still tracked.
declare -A LIVE=()
SPAWNED=
spawn() { # spawn OUT ERR CMD...: start CMD in the background, track it
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    SPAWNED=$!
    LIVE[$SPAWNED]=1
}
# reap PID SECONDS: bounded wait for a tracked child; RC = its status.
# Returns 1 (child still running, still tracked) on timeout.
reap() {
    RC=
    e2e_wait_until "$2" e2e_dead "$1" || return 1
    RC=0
    wait "$1" 2>/dev/null || RC=$?
    unset "LIVE[$1]"
    return 0
}
# stop_hard PID: SIGCONT+SIGTERM, 5 s, then SIGKILL; reaped.
stop_hard() {
    local p=$1
    [ -n "$p" ] && [ -n "${LIVE[$p]:-}" ] || return 0
    kill -CONT "$p" 2>/dev/null
    kill -TERM "$p" 2>/dev/null
    reap "$p" 5 && return 0
    kill -KILL "$p" 2>/dev/null
    reap "$p" 5 || true
}
ch_on_exit() {
    local rc=$? p
    trap - EXIT
    for p in "${!LIVE[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    for p in "${!LIVE[@]}"; do
        reap "$p" 5 || { kill -KILL "$p" 2>/dev/null; reap "$p" 5; } || true
    done
    umount_all
    if [ "$rc" -eq 0 ] && [ -z "${HF_CHAOS_KEEP:-}" ] &&
        [ -z "$(ls -A "$TOP" 2>/dev/null | grep -v '^keys$')" ]; then
        rm -rf "$TOP"
    else
        say "kept: $TOP"
    fi
    exit "$rc"
}
trap ch_on_exit EXIT
trap 'say "interrupted"; exit 130' INT TERM

# fill_disk DIR: fill DIR's filesystem but ~8 KiB. The daemons write there
# meanwhile, so a fallocate sized from df can find less room than df said
# (ENOSPC): measure again and add another ballast file, a few times.
fill_disk() {
    local d=$1 i avail
    for i in 1 2 3 4 5 6 7 8; do
        avail=$(df -k --output=avail "$d" | tail -1)
        [ "$avail" -le 16 ] && return 0
        fallocate -l "$(( (avail - 8) * 1024 ))" "$d/ballast.$i" 2>/dev/null && return 0
    done
    return 1
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
sleep_ms() { [ "$1" -gt 0 ] && sleep "$(printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )))"; return 0; }
iso_ms() { date -u -d "$1" +%s%3N; } # an ISO-8601 log time -> epoch ms

# ---------------------------------------------------------------- totals
declare -A FAULTS=()
T_RECORDS=0 T_LOST=0 T_DUP=0 T_WRONG=0 T_AV_CHECKED=0 T_AV_MISSED=0
T_PUB_CHECKED=0 T_PUB_MISSED=0 T_ROUNDS_OK=0 T_ROUNDS_FAILED=0 T_TERM_SLOW=0 T_ENGINES=0
T_INCARNATIONS=0 T_OTHER=0 T_KNOWN=0 T_STORE_PAUSED=0
FAILED_SEEDS=()
fault() { FAULTS[$1]=$(( ${FAULTS[$1]:-0} + 1 )); }

# ---------------------------------------------------------------- one round
# Round state (globals, reset by round_init).
R_DIR= R_NUM=0 R_N=0 R_OK=1 R_T0=0 R_STORE= R_SPOOLS=
AGG_PID= AGG_BIND= AGG_CTL= AGG_FEED= AGG_STOPPED=0 AGG_DOWN_AT=0 WATCH_PID=
declare -a ENG_PID PX_PID PX_PORT PX_CTL PX_MODE INC BH_AT LAST_RC
rfail() { say "round $R_NUM: VIOLATION: $*"; echo "$*" >>"$R_DIR/violations"; R_OK=0; }
# known_bug MSG: the runs table disagrees with the run's own stored records
# (tests/chaos/bug_runs_after_sigstop.sh reproduces it). A violation, unless
# HF_CHAOS_TOLERATE_KNOWN=1 (the CI run, until it is fixed): then counted
# and printed only.
known_bug() {
    T_KNOWN=$(( T_KNOWN + 1 ))
    if [ -n "${HF_CHAOS_TOLERATE_KNOWN:-}" ]; then
        say "round $R_NUM: KNOWN BUG (tolerated): $*"
        echo "known bug: $*" >>"$R_DIR/known"
    else
        rfail "$* [runs table vs records: tests/chaos/bug_runs_after_sigstop.sh]"
    fi
}

agg_start() { # agg_start: start (or restart on the same endpoints) the aggregator
    local log=$R_DIR/aggregator.log before=0 line
    [ -f "$log" ] && before=$(grep -c "listening engines=" "$log")
    env ${SHIM:+LD_PRELOAD=$SHIM HF_POWERLOSS_MODE=sync HF_POWERLOSS_LOG=1 HF_POWERLOSS_MATCH=$R_STORE/} \
        "$E2E_AGG" --bind "${AGG_BIND:-tcp://127.0.0.1:*}" --control "${AGG_CTL:-tcp://127.0.0.1:*}" \
        --status "${AGG_FEED:-tcp://127.0.0.1:*}" --data "$R_STORE" \
        --watchdog-ms "$WATCHDOG_MS" >>"$log" 2>&1 &
    AGG_PID=$!
    LIVE[$AGG_PID]=1
    AGG_STOPPED=0
    s_listening() { [ "$(grep -c "listening engines=" "$log")" -gt "$before" ]; }
    if ! e2e_wait_until 20 s_listening; then
        tail -5 "$log"
        rfail "aggregator did not listen within 20 s"
        return 1
    fi
    line=$(grep "listening engines=" "$log" | tail -1)
    AGG_BIND=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
    AGG_CTL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
    AGG_FEED=$(grep -oE 'status feed on [^ ]+' "$log" | tail -1 | awk '{ print $4 }')
    echo "$(now_ms) listening" >>"$R_DIR/agg_events"
}

eng_start() { # eng_start I: a new incarnation of engine I on its spool
    local i=$1 k
    INC[$i]=$(( ${INC[$i]:-0} + 1 ))
    k=${INC[$i]}
    spawn "$R_DIR/e$i.$k.out" "$R_DIR/e$i.$k.log" env \
        ${SHIM:+LD_PRELOAD=$SHIM HF_POWERLOSS_MODE=sync HF_POWERLOSS_LOG=1 HF_POWERLOSS_MATCH=$R_SPOOLS/spool$i/} \
        "$E2E_ENG" --id "chaos-e$i" \
        --connect "tcp://127.0.0.1:${PX_PORT[$i]}" --spool "$R_SPOOLS/spool$i" --method "$METHOD" \
        --seed "$k" --summary "$R_DIR/e$i.$k.summary"
    ENG_PID[$i]=$SPAWNED
    T_INCARNATIONS=$(( T_INCARNATIONS + 1 ))
}

run_of() { # run_of I K: the run id incarnation K of engine I logged, or ""
    sed -nE 's/.* engine=[^ ]+ run=([0-9]+) method=.* started$/\1/p' "$R_DIR/e$1.$2.log" | head -1
}

# note_fate I FATE AGE_MS: record how incarnation INC[I] ended, for the
# run-state check. AGE_MS: ms between its run's start and the end (-1 unknown).
note_fate() {
    local i=$1 k=${INC[$1]} run done_=0
    run=$(run_of "$i" "$k")
    grep -qE "run=[0-9]+ state=completed" "$R_DIR/e$i.$k.log" && done_=1
    echo "$i $k ${run:--} $2 $3 $done_" >>"$R_DIR/fates"
}

run_age() { # run_age I: ms since engine I's current run started (-1: not yet)
    local line
    line=$(grep -m1 -E " run=[0-9]+ method=.* started$" "$R_DIR/e$1.${INC[$1]}.log" | cut -d' ' -f1)
    [ -n "$line" ] || { echo -1; return; }
    echo $(( $(now_ms) - $(iso_ms "$line") ))
}

# eng_exited I: engine I's incarnation ended on its own: record, no restart.
eng_exited() {
    local i=$1
    reap "${ENG_PID[$i]}" 1 || return 1
    LAST_RC[$i]=$RC
    case $RC in
        0 | 3) note_fate "$i" completed -1 ;;
        *) rfail "engine $i incarnation ${INC[$i]} exited rc=$RC by itself"
           note_fate "$i" crashed -1 ;;
    esac
    ENG_PID[$i]=
}

ctl() { "$PROXY" --ctl "${PX_CTL[$1]}" "${@:2}" >/dev/null 2>&1 || rfail "proxy $1 refused: ${*:2}"; }

px_pass() { # px_pass I: heal proxy I; a blackhole's window is recorded
    local i=$1
    ctl "$i" pass
    if [ "${PX_MODE[$i]}" = blackhole ]; then
        echo "$i ${BH_AT[$i]} $(now_ms)" >>"$R_DIR/blackholes"
    fi
    PX_MODE[$i]=pass
}

# do_event KIND TARGET ARG: one scheduled action.
do_event() {
    local kind=$1 i=$2 arg=$3 pid age t
    case $kind in
        cut | reset)
            ctl "$i" "$kind"; fault "$kind" ;;
        blackhole)
            ctl "$i" blackhole; PX_MODE[$i]=blackhole; BH_AT[$i]=$(now_ms); fault blackhole ;;
        delay)
            ctl "$i" delay "$arg"; PX_MODE[$i]=delay; fault delay ;;
        throttle)
            ctl "$i" throttle "$arg"; PX_MODE[$i]=throttle; fault throttle ;;
        pass)
            px_pass "$i" ;;
        kill9)
            pid=${ENG_PID[$i]}
            if [ -z "$pid" ] || e2e_dead "$pid"; then
                [ -n "$pid" ] && eng_exited "$i"
                eng_start "$i"; return
            fi
            age=$(run_age "$i")
            { kill -KILL "$pid"; reap "$pid" 10; } 2>/dev/null || rfail "engine $i survived SIGKILL"
            fault engine_kill9
            note_fate "$i" killed "$age"
            eng_start "$i" ;;
        power) # power loss of the engine: unsynced spool writes vanish
            pid=${ENG_PID[$i]}
            if [ -z "$pid" ] || e2e_dead "$pid"; then
                [ -n "$pid" ] && eng_exited "$i"
                eng_start "$i"; return
            fi
            age=$(run_age "$i")
            kill -USR2 "$pid"
            reap "$pid" 3 || { rfail "engine $i running 3 s after its power loss"; stop_hard "$pid"; }
            # 0: the run ended and the engine exited on its own just before the
            # signal (a race of the schedule, not a finding)
            [ "${RC:-}" = 137 ] || [ "${RC:-}" = 0 ] ||
                rfail "engine $i: exit ${RC:-?} after power loss (want 137)"
            fault engine_powerloss
            note_fate "$i" killed "$age"
            eng_start "$i" ;;
        termbh) # the backlog for a SIGTERM: hold the link first
            ctl "$i" blackhole; PX_MODE[$i]=termbh ;;
        term)
            pid=${ENG_PID[$i]}
            if [ -z "$pid" ] || e2e_dead "$pid"; then
                [ -n "$pid" ] && eng_exited "$i"
                px_pass "$i"; eng_start "$i"; return
            fi
            t=$(now_ms)
            kill -TERM "$pid"
            fault engine_sigterm
            if reap "$pid" 2; then
                say "  engine $i SIGTERM: exit rc=$RC in $(( $(now_ms) - t )) ms"
            else
                T_TERM_SLOW=$(( T_TERM_SLOW + 1 ))
                rfail "engine $i still running 2 s after SIGTERM (with a backlog)"
                reap "$pid" 10 || { kill -KILL "$pid"; reap "$pid" 5; }
            fi
            [ "$RC" = 0 ] || [ "$RC" = 3 ] || rfail "engine $i: SIGTERM exit status $RC"
            note_fate "$i" termed -1
            px_pass "$i"
            eng_start "$i" ;;
        akill)
            kill -CONT "$AGG_PID" 2>/dev/null
            if [ -n "$SHIM" ] && [ "$arg" = power ]; then
                kill -USR2 "$AGG_PID"
                reap "$AGG_PID" 3 || { rfail "aggregator running 3 s after its power loss"; stop_hard "$AGG_PID"; }
                [ "${RC:-}" = 137 ] || rfail "aggregator: exit ${RC:-?} after power loss (want 137)"
                fault aggregator_powerloss
            else
                { kill -KILL "$AGG_PID"; reap "$AGG_PID" 10; } 2>/dev/null ||
                    rfail "aggregator survived SIGKILL"
                fault aggregator_kill9
            fi
            echo "$(now_ms) down" >>"$R_DIR/agg_events"
            AGG_PID= ;;
        arestart)
            agg_start ;;
        astop)
            kill -STOP "$AGG_PID"; AGG_STOPPED=1
            echo "$(now_ms) stop" >>"$R_DIR/agg_events"
            fault aggregator_sigstop ;;
        acont)
            kill -CONT "$AGG_PID"; AGG_STOPPED=0
            echo "$(now_ms) cont" >>"$R_DIR/agg_events" ;;
        sfull | efull) # fill the store's (s) or the spools' (e) disk
            t=$R_DIR/${kind%full}disk
            fill_disk "$t" || rfail "could not fill $t"
            [ "$kind" = sfull ] && fault store_disk_full || fault spool_disk_full ;;
        sroom | eroom)
            rm -f "$R_DIR/${kind%room}disk/"ballast* ;;
    esac
}

# make_schedule N: the round's faults, "T_MS KIND TARGET ARG" per line,
# drawn from RANDOM (seeded by the round).
make_schedule() {
    local n=$1 i t k d
    for i in $(seq 1 "$n"); do
        t=$(( 200 + RANDOM % 800 ))
        while [ "$t" -lt "$FAULT_MS" ]; do
            k=$(( RANDOM % 100 )) d=0
            if [ $k -lt 10 ]; then echo "$t cut $i -"
            elif [ $k -lt 18 ]; then echo "$t reset $i -"
            elif [ $k -lt 40 ]; then
                d=$(( 1000 + RANDOM % 3001 ))
                echo "$t blackhole $i -"; echo "$(( t + d )) pass $i -"
            elif [ $k -lt 50 ]; then
                d=$(( 1000 + RANDOM % 2001 ))
                echo "$t delay $i $(( 50 + RANDOM % 251 ))"; echo "$(( t + d )) pass $i -"
            elif [ $k -lt 60 ]; then
                d=$(( 1000 + RANDOM % 2001 ))
                echo "$t throttle $i $(( 15000 + RANDOM % 60001 ))"; echo "$(( t + d )) pass $i -"
            elif [ $k -lt 75 ]; then echo "$t kill9 $i -"
            elif [ $k -lt 85 ]; then # a power loss if the shim is there
                if [ -n "$SHIM" ]; then echo "$t power $i -"; else echo "$t kill9 $i -"; fi
            else
                d=$(( 300 + RANDOM % 500 ))
                echo "$t termbh $i -"; echo "$(( t + d )) term $i -"
            fi
            t=$(( t + d + 300 + RANDOM % 1200 ))
        done
    done
    t=$(( 500 + RANDOM % 1500 ))
    while [ "$t" -lt "$FAULT_MS" ] && [ $(( RANDOM % 100 )) -lt 60 ]; do
        if [ "$DISKS" = 1 ] && [ $(( RANDOM % 3 )) -eq 0 ]; then
            # disk full, the store's or (not before 1.5 s: the spools are
            # made and reserved by then) the spools'
            d=$(( 1500 + RANDOM % 1501 ))
            if [ $(( RANDOM % 2 )) -eq 0 ] || [ "$t" -lt 1500 ]; then k=s; else k=e; fi
            echo "$t ${k}full 0 -"; echo "$(( t + d )) ${k}room 0 -"
        elif [ $(( RANDOM % 2 )) -eq 0 ]; then
            d=$(( 200 + RANDOM % 1301 ))
            if [ $(( RANDOM % 2 )) -eq 0 ]; then k=power; else k=kill9; fi
            echo "$t akill 0 $k"; echo "$(( t + d )) arestart 0 -"
        else
            d=$(( 1500 + RANDOM % 2501 ))
            echo "$t astop 0 -"; echo "$(( t + d )) acont 0 -"
        fi
        t=$(( t + d + 1000 + RANDOM % 2000 ))
    done
}

# feed_ms: the feed's availability lines as "MS ENGINE STATE" (epoch ms).
feed_ms() {
    local f=$R_DIR/feed.txt
    grep -E ' availability=' "$f" | cut -d' ' -f1 | date -u -f - +%s%3N >"$f.ms" 2>/dev/null
    grep -E ' availability=' "$f" | sed -E 's/^[^ ]+ engine=([^ ]+) availability=([a-z]+).*/\1 \2/' |
        paste -d' ' "$f.ms" -
}

# blind MS: true if MS falls where the feed cannot be seen: the aggregator
# down (killed -> listening again + 500 ms).
blind() {
    awk -v t="$1" '$2 == "down" { d = $1 } $2 == "listening" && d { if (t >= d && t <= $1 + 500) f = 1; d = 0 }
        END { if (d && t >= d) f = 1; exit !f }' "$R_DIR/agg_events"
}
# agg_fault_near S E: an aggregator fault (down or stopped) within [S-1000, E+1000].
agg_fault_near() {
    awk -v s="$(( $1 - 1000 ))" -v e="$(( $2 + 1000 ))" '
        $2 == "down" || $2 == "stop" { a = $1 }
        ($2 == "listening" || $2 == "cont") && a { if (a <= e && $1 >= s) f = 1; a = 0 }
        END { if (a && a <= e) f = 1; exit !f }' "$R_DIR/agg_events"
}

check_engine() { # check_engine I: the store against engine I's history
    local i=$1 id="chaos-e$1" sum k fin ex line n run fate age done_ st cause recfin
    fin=${INC[$i]}
    sum=$(cat "$R_DIR/e$i.$fin.summary" 2>/dev/null)
    [ -n "$sum" ] || { rfail "engine $i: the final incarnation ($fin) wrote no summary"; return; }
    [ "$(kv "$sum" state)" = completed ] || rfail "engine $i: final run $(kv "$sum" state)"
    for l in control data; do
        [ "$(kv "$sum" "committed_$l")" = "$(kv "$sum" "acked_$l")" ] ||
            rfail "engine $i lane $l: committed != acked at the end: $sum"
    done
    [ "$(kv "$sum" dropped)" = 0 ] || rfail "engine $i dropped samples: $sum"
    ex=$R_DIR/export.$i.jsonl
    "$E2E_CLI" --control "$AGG_CTL" --timeout 10000 export --engine "$id" --format jsonl \
        --out "$ex" >/dev/null 2>"$ex.err" || { rfail "engine $i: export failed"; return; }
    awk -v want_control="$(kv "$sum" committed_control)" -v want_data="$(kv "$sum" committed_data)" \
        -f "$CH_HERE/check.awk" "$ex" >"$ex.check"
    line=$(grep '^total ' "$ex.check")
    n=$(kv "$line" records); T_RECORDS=$(( T_RECORDS + n ))
    T_LOST=$(( T_LOST + $(kv "$line" lost) + $(kv "$line" above) ))
    T_DUP=$(( T_DUP + $(kv "$line" dup) ))
    # the same record under two seqs (content duplicate)
    k=$(sed -E 's/"seq":[0-9]+,?//; s/"observed_offline":(true|false),?//' "$ex" | sort | uniq -d | wc -l)
    T_DUP=$(( T_DUP + k ))
    if grep -q violation "$ex.check" || [ "$k" -ne 0 ] || ! grep -q ' epochs=1 ' <<<"$line" ||
        [ "$(kv "$line" order)" != 0 ]; then
        rfail "engine $i store: $line content_dups=$k ($(grep violation "$ex.check" | head -3 | tr '\n' ';'))"
    fi
    # the final run holds every sample the engine took (a spool that reused
    # seqs would have its new records skipped as duplicates)
    k=$(grep -c "\"kind\":\"sample\",\"run\":$(kv "$sum" run)," "$ex")
    [ "$k" = "$(kv "$sum" samples)" ] || {
        T_LOST=$(( T_LOST + $(kv "$sum" samples) - k ))
        rfail "engine $i final run: $k samples stored, the engine took $(kv "$sum" samples)"
    }
    # run states: every incarnation's run
    "$E2E_CLI" --control "$AGG_CTL" --timeout 10000 runs --engine "$id" --limit 1000 --json \
        >"$R_DIR/runs.$i.json" 2>&1 || rfail "engine $i: runs failed"
    sed 's/},{/}\n{/g' "$R_DIR/runs.$i.json" |
        sed -nE 's/.*"run":([0-9]+),"cause":"([^"]*)","state":"([a-z]+)".*/\1 \3 \2/p' \
        >"$R_DIR/runs.$i.txt"
    while read -r ei k run fate age done_; do
        [ "$ei" = "$i" ] || continue
        st=$(awk -v r="$run" '$1 == r { print $2 }' "$R_DIR/runs.$i.txt")
        cause=$(awk -v r="$run" '$1 == r { $1 = $2 = ""; sub(/^ +/, ""); print }' "$R_DIR/runs.$i.txt")
        # what the run's own records say (its end event, "-" for none)
        recfin=$(awk -v r="$run" '$1 == "run" && $2 == r { sub(/^final=/, "", $3); print $3 }' "$ex.check")
        if [ "$run" = - ] || [ -z "$st" ]; then
            if [ -n "$recfin" ]; then
                known_bug "engine $i incarnation $k ($fate): run $run has records (end: $recfin) but is not in the runs table"
            elif [ "$fate" != killed ] || [ "$age" -ge 500 ]; then
                T_WRONG=$(( T_WRONG + 1 ))
                rfail "engine $i incarnation $k ($fate, run ${run}, ${age} ms old): run not stored"
            fi
            continue
        fi
        case $fate in
            completed) [ "$st" = completed ] ;;
            killed) [ "$st" = interrupted ] && [ "$cause" = "engine restarted" ] ||
                { [ "$done_" = 1 ] && [ "$st" = completed ]; } ;;
            termed) [ "$st" = aborted ] || { [ "$done_" = 1 ] && [ "$st" = completed ]; } ;;
            *) false ;;
        esac || {
            case $fate/$recfin in
                completed/completed | termed/aborted | termed/completed | killed/- | killed/completed)
                    known_bug "engine $i incarnation $k run $run: $fate, its records end '$recfin', the runs table says '$st'" ;;
                *)
                    T_WRONG=$(( T_WRONG + 1 ))
                    rfail "engine $i incarnation $k run $run: $fate but stored '$st' cause '$cause' (records end: '${recfin:-none}')" ;;
            esac
        }
    done <"$R_DIR/fates"
}

check_availability() {
    local feed=$R_DIR/feed.avail id i s e last later first n at_start
    feed_ms >"$feed"
    # 1. blackholes longer than the watchdog + 500 ms
    [ -f "$R_DIR/blackholes" ] && while read -r i s e; do
        [ $(( e - s )) -ge $(( WATCHDOG_MS + 500 )) ] || continue
        agg_fault_near "$s" "$e" && continue
        id=chaos-e$i
        first=$(awk -v id="$id" '$2 == id && $3 == "available" { print $1; exit }' "$feed")
        [ -n "$first" ] && [ "$first" -lt "$s" ] || continue # not yet connected
        # connected when the stall began? (an engine whose run ended and that
        # said BYE before it has nothing to lose availability over)
        at_start=$(awk -v id="$id" -v s="$s" '$2 == id && $1 <= s { st = $3 } END { print st }' "$feed")
        [ "$at_start" = available ] || continue
        T_AV_CHECKED=$(( T_AV_CHECKED + 1 ))
        last=$(awk -v id="$id" -v e="$e" '$2 == id && $1 <= e { st = $3 } END { print st }' "$feed")
        later=$(awk -v id="$id" -v e="$e" '$2 == id && $1 > e && $3 == "available" { n++ } END { print n + 0 }' "$feed")
        if [ "$last" != unavailable ] || [ "$later" -eq 0 ]; then
            T_AV_MISSED=$(( T_AV_MISSED + 1 ))
            rfail "engine $i: blackhole $(( s - R_T0 ))..$(( e - R_T0 )) ms: feed said '$last' at its end, $later 'available' after"
        fi
    done <"$R_DIR/blackholes"
    # 2. every outage in the store's history was published (start and end)
    for i in $(seq 1 "$R_N"); do
        id=chaos-e$i
        "$E2E_CLI" --control "$AGG_CTL" --timeout 10000 engines --history --engine "$id" --json \
            >"$R_DIR/history.$i.json" 2>&1 || { rfail "engine $i: history failed"; continue; }
        sed 's/},{/}\n{/g' "$R_DIR/history.$i.json" |
            sed -nE 's/.*"start_ns":([0-9]+),"end_ns":([0-9]+).*/\1 \2/p' |
            while read -r s e; do echo "$(( s / 1000000 )) $(( e / 1000000 ))"; done \
            >"$R_DIR/history.$i.txt"
        while read -r s e; do
            for t in "$s unavailable" "$e available"; do
                set -- $t
                [ "$1" != 0 ] || continue
                blind "$1" && continue
                T_PUB_CHECKED=$(( T_PUB_CHECKED + 1 ))
                n=$(awk -v id="$id" -v t="$1" -v st="$2" \
                    '$2 == id && $3 == st && $1 - t <= 100 && t - $1 <= 100 { n++ } END { print n + 0 }' "$feed")
                if [ "$n" -eq 0 ]; then
                    T_PUB_MISSED=$(( T_PUB_MISSED + 1 ))
                    rfail "engine $i: the store's outage $2 at $(( $1 - R_T0 )) ms was not published on the feed"
                fi
            done
        done <"$R_DIR/history.$i.txt"
    done
}

run_round() { # run_round R SEED
    local r=$1 seed=$2 i t kind tgt arg ev_t
    R_DIR=$TOP/round.$r R_NUM=$r
    mkdir -p "$R_DIR"
    R_OK=1
    RANDOM=$seed
    R_N=$(( 1 + RANDOM % MAX_ENGINES ))
    # (not in a pipeline: a subshell would reseed RANDOM)
    make_schedule "$R_N" >"$R_DIR/schedule.raw"
    sort -n -s -k1,1 "$R_DIR/schedule.raw" >"$R_DIR/schedule"
    say "round $r/$ROUNDS seed=$seed engines=$R_N faults: $(awk '$2 != "pass" && $2 != "arestart" && $2 != "acont" && $2 != "termbh" && $2 !~ /room$/ { printf "%s@%d%s ", $2, $1, ($3 ? "/e" $3 : "") }' "$R_DIR/schedule")"
    AGG_PID= AGG_BIND= AGG_CTL= AGG_FEED=
    : >"$R_DIR/agg_events"; : >"$R_DIR/fates"
    R_STORE=$R_DIR/store R_SPOOLS=$R_DIR
    if [ "$DISKS" = 1 ]; then
        # a spool reserves its 64 MiB map up front
        small_fs "$R_DIR/s.img" 48 "$R_DIR/sdisk" &&
            small_fs "$R_DIR/e.img" $(( R_N * 72 + 16 )) "$R_DIR/edisk" ||
            { rfail "could not make the round's filesystems"; return; }
        R_STORE=$R_DIR/sdisk/store R_SPOOLS=$R_DIR/edisk
    fi
    ENG_PID=() PX_PID=() PX_PORT=() PX_CTL=() PX_MODE=() INC=() BH_AT=() LAST_RC=()
    agg_start || return
    spawn "$R_DIR/feed.txt" "$R_DIR/feed.err" "$E2E_CLI" --control "$AGG_CTL" \
        status --watch --feed "$AGG_FEED"
    WATCH_PID=$SPAWNED
    for i in $(seq 1 "$R_N"); do
        spawn "$R_DIR/proxy$i.out" "$R_DIR/proxy$i.log" "$PROXY" \
            --upstream "127.0.0.1:${AGG_BIND##*:}" --listen 0
        PX_PID[$i]=$SPAWNED
        s_px() { grep -qE '^listen [0-9]+ ctl [0-9]+$' "$R_DIR/proxy$1.out"; }
        e2e_wait_until 10 s_px "$i" || { rfail "proxy $i printed no ports"; return; }
        read -r _ PX_PORT[$i] _ PX_CTL[$i] <"$R_DIR/proxy$i.out"
        PX_MODE[$i]=pass
    done
    sleep 0.3 # the feed subscriber's connection (a SUB misses what precedes it)
    R_T0=$(now_ms)
    for i in $(seq 1 "$R_N"); do eng_start "$i"; done
    while read -r ev_t kind tgt arg; do
        sleep_ms $(( R_T0 + ev_t - $(now_ms) ))
        do_event "$kind" "$tgt" "$arg"
    done <"$R_DIR/schedule"
    # heal: every proxy passes, the aggregator runs
    for i in $(seq 1 "$R_N"); do [ "${PX_MODE[$i]}" = pass ] || px_pass "$i"; done
    rm -f "$R_DIR/sdisk/"ballast* "$R_DIR/edisk/"ballast*
    [ -n "$AGG_PID" ] || agg_start
    [ "$AGG_STOPPED" = 0 ] || do_event acont 0 -
    # each engine's last incarnation runs to the end and drains (exit 0); an
    # incarnation that ended otherwise (drain timed out, crashed) gets one more
    for i in $(seq 1 "$R_N"); do
        for attempt in 1 2; do
            if [ -n "${ENG_PID[$i]}" ]; then
                if reap "${ENG_PID[$i]}" 90; then
                    LAST_RC[$i]=$RC
                    case $RC in
                        0 | 3) note_fate "$i" completed -1 ;;
                        *) rfail "engine $i incarnation ${INC[$i]} exit status $RC"
                           note_fate "$i" crashed -1 ;;
                    esac
                else
                    rfail "engine $i incarnation ${INC[$i]} did not end within 90 s"
                    stop_hard "${ENG_PID[$i]}"; note_fate "$i" stuck -1; LAST_RC[$i]=stuck
                fi
                ENG_PID[$i]=
            fi
            [ "${LAST_RC[$i]}" = 0 ] && break
            [ "$attempt" = 1 ] && eng_start "$i"
        done
        [ "${LAST_RC[$i]}" = 0 ] || rfail "engine $i: no incarnation ended cleanly (rc ${LAST_RC[$i]})"
    done
    T_ENGINES=$(( T_ENGINES + R_N ))
    sleep 0.5 # the last availability changes reach the subscriber
    for i in $(seq 1 "$R_N"); do check_engine "$i"; done
    check_availability
    stop_hard "$WATCH_PID"
    for i in $(seq 1 "$R_N"); do stop_hard "${PX_PID[$i]}"; done
    stop_hard "$AGG_PID"
    umount_all
    k=$(grep -c "alarm raised code=1007" "$R_DIR/aggregator.log")
    T_STORE_PAUSED=$(( T_STORE_PAUSED + k ))
    if [ "$R_OK" = 1 ]; then
        T_ROUNDS_OK=$(( T_ROUNDS_OK + 1 ))
        say "round $r ok: $(cat "$R_DIR"/export.*.jsonl | wc -l) records, $(wc -l <"$R_DIR/fates") runs"
        [ -n "${HF_CHAOS_KEEP:-}" ] || rm -rf "$R_DIR"
    else
        T_ROUNDS_FAILED=$(( T_ROUNDS_FAILED + 1 ))
        FAILED_SEEDS+=("$seed")
        say "round $r FAILED (seed $seed, kept $R_DIR; replay: HF_CHAOS_SEED=$seed HF_CHAOS_ROUNDS=1)"
    fi
}

say "seed=$SEED rounds=$ROUNDS engines<=$MAX_ENGINES fault_ms=$FAULT_MS watchdog_ms=$WATCHDOG_MS dir=$TOP"
for r in $(seq 1 "$ROUNDS"); do
    run_round "$r" $(( SEED + r - 1 ))
    if [ "$R_OK" != 1 ] && [ -n "${HF_CHAOS_STOP:-}" ]; then break; fi
done

# ---------------------------------------------------------------- the table
nf=0
for k in "${!FAULTS[@]}"; do nf=$(( nf + FAULTS[$k] )); done
{
    echo
    echo "chaos: seed=$SEED"
    printf '  %-34s %s\n' "rounds" "$(( T_ROUNDS_OK + T_ROUNDS_FAILED )) ($T_ROUNDS_FAILED failed)"
    printf '  %-34s %s\n' "engines / incarnations (runs)" "$T_ENGINES / $T_INCARNATIONS"
    printf '  %-34s %s\n' "faults injected" "$nf"
    for k in cut reset blackhole delay throttle engine_kill9 engine_powerloss engine_sigterm \
        aggregator_kill9 aggregator_powerloss aggregator_sigstop store_disk_full spool_disk_full; do
        printf '    %-32s %s\n' "$k" "${FAULTS[$k]:-0}"
    done
    printf '  %-34s %s\n' "store full: ingestion paused" "$T_STORE_PAUSED times"
    printf '  %-34s %s\n' "records checked" "$T_RECORDS"
    printf '  %-34s %s\n' "lost" "$T_LOST"
    printf '  %-34s %s\n' "duplicated" "$T_DUP"
    printf '  %-34s %s\n' "wrong run states" "$T_WRONG"
    printf '  %-34s %s\n' "runs table vs records (known bug)" "$T_KNOWN"
    printf '  %-34s %s\n' "slow SIGTERM exits (> 2 s)" "$T_TERM_SLOW"
    printf '  %-34s %s\n' "blackholes > watchdog: checked/missed" "$T_AV_CHECKED / $T_AV_MISSED"
    printf '  %-34s %s\n' "outages published: checked/missed" "$T_PUB_CHECKED / $T_PUB_MISSED"
    [ ${#FAILED_SEEDS[@]} -eq 0 ] || printf '  %-34s %s\n' "failed round seeds" "${FAILED_SEEDS[*]}"
} | tee "$TOP/table.txt"
[ "$T_ROUNDS_FAILED" -eq 0 ] || exit 1
rm -f "$TOP/table.txt"
exit 0
