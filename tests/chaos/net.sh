#!/usr/bin/env bash
# net.sh - ctest chaos_net (label chaos-net; runs only with HF_CHAOS_NET=1:
# several minutes, root for the namespaces). Issue 8's harsher cases:
#
#   reconnect  the same engine (--serve, idle) behind hf-proxy; HF_NET_RECONNECTS
#              (100) times: the proxy cuts (or resets, every 3rd) its
#              connection; as soon as the aggregator has its new HELLO,
#              `holdfast set ENGINE oven.setpoint V` must succeed (rc 0) and
#              the engine must log that command: every command reaches the
#              new connection.
#   sigstop    the aggregator SIGSTOPped for HF_NET_STOP_S (60) s while an
#              engine streams (tests/chaos/long.method, then more runs), then
#              SIGCONT: the engine's heap stays bounded (its backlog is on disk:
#              peak RssAnon < start + 16 MiB; VmRSS, which also counts the
#              spool's mapped pages, is reported), and nothing is lost (the store holds
#              exactly 1..committed per lane, run completed with all samples).
#   netem      (root, iproute2) aggregator and engine in two network
#              namespaces joined by a veth pair, both ends shaped with
#              `netem delay 300ms 100ms loss 10% rate 512kbit` (64 kB/s); the
#              aggregator keeps its default watchdog (3000 ms). The engine runs
#              tests/chaos/netem.method (30 s): no "unavailable" before its clean
#              shutdown (no false alarm), and the store exact. On a kernel
#              without sch_netem the same link is emulated: the rate with
#              `tbf rate 512kbit`, the loss with an iptables statistic rule
#              (10 % of packets dropped on each veth's egress; needs
#              iptables: scripts/deps.sh --net), and the delay with hf-proxy
#              (`delay 300 100`: each chunk 300 +/- 100 ms, each direction)
#              on the path between the namespaces. Loss not emulated: FAIL.
#
# Environment: HF_CHAOS_NET=1 (required), HF_NET_CASES (default "reconnect
# sigstop netem"), HF_NET_RECONNECTS, HF_NET_STOP_S, HF_BIN, HF_PROXY,
# HF_E2E_KEEP.
set -euo pipefail
if [ -z "${HF_CHAOS_NET:-}" ]; then
    echo "chaos_net: skipped (several minutes; run with HF_CHAOS_NET=1)"
    exit 77
fi
. "$(dirname "$0")/../e2e/lib.sh"
CH_HERE=$(cd "$(dirname "$0")" && pwd)
PROXY=${HF_PROXY:-$E2E_BIN/tests/proxy/hf-proxy}
[ -x "$PROXY" ] || { echo "chaos_net: missing $PROXY" >&2; exit 2; }
cases=${HF_NET_CASES:-reconnect sigstop netem}
NETNS=()
s_net_cleanup() {
    local n
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    return 0
}
E2E_CLEANUP=s_net_cleanup
e2e_init chaos_net
ok=1
ran=0
cli() { "$E2E_CLI" --control "$AGG_CONTROL" --timeout 5000 "$@"; }

# s_agg [FLAGS...]: an aggregator on loopback, ephemeral ports.
s_agg() {
    "$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" --data "$E2E_DIR/store.$1" \
        "${@:2}" >"$E2E_DIR/agg.$1.log" 2>&1 &
    AGG_PID=$!
    e2e_track "$AGG_PID"
    s_l() { grep -q "listening engines=" "$E2E_DIR/agg.$1.log"; }
    e2e_wait_until 20 s_l "$1" || fail "aggregator did not listen"
    local line
    line=$(grep "listening engines=" "$E2E_DIR/agg.$1.log" | tail -1)
    AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
    AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
}

case_reconnect() {
    local n=${HF_NET_RECONNECTS:-100} id=rc-eng i hel before v rc t0 cmds fails=0 worst=0 dt
    say "case reconnect: $n cuts in quick succession, a command after each"
    s_agg reconnect
    "$PROXY" --upstream "127.0.0.1:${AGG_ENGINES##*:}" --listen 0 >"$E2E_DIR/proxy.out" \
        2>"$E2E_DIR/proxy.log" &
    local px=$!
    e2e_track "$px"
    s_px() { grep -qE '^listen [0-9]+ ctl [0-9]+$' "$E2E_DIR/proxy.out"; }
    e2e_wait_until 10 s_px || fail "proxy printed no ports"
    local pport cport
    read -r _ pport _ cport <"$E2E_DIR/proxy.out"
    "$E2E_ENG" --id "$id" --connect "tcp://127.0.0.1:$pport" --spool "$E2E_DIR/rc.spool" --serve \
        >"$E2E_DIR/rc.out" 2>"$E2E_DIR/rc.log" &
    local eng=$!
    e2e_track "$eng"
    hel() { grep -cE "engine=$id (available|reconnected) " "$E2E_DIR/agg.reconnect.log" || true; }
    s_more() { [ "$(hel)" -gt "$1" ]; }
    e2e_wait_until 20 s_more 0 || fail "the engine never said HELLO"
    for i in $(seq 1 "$n"); do
        before=$(hel)
        if [ $(( i % 3 )) -eq 0 ]; then "$PROXY" --ctl "$cport" reset >/dev/null
        else "$PROXY" --ctl "$cport" cut >/dev/null; fi
        t0=$(( $(date +%s%N) / 1000000 ))
        if ! e2e_wait_until 15 s_more "$before"; then
            say "  cut $i: no new HELLO within 15 s"; fails=$(( fails + 1 )); ok=0; continue
        fi
        dt=$(( $(date +%s%N) / 1000000 - t0 ))
        [ "$dt" -le "$worst" ] || worst=$dt
        v=$(( 20 + i % 30 )).$(( i % 10 ))
        rc=0
        cli set "$id" oven.setpoint "$v" >"$E2E_DIR/set.$i.out" 2>&1 || rc=$?
        if [ "$rc" -ne 0 ]; then
            say "  cut $i: set refused/failed rc=$rc: $(head -1 "$E2E_DIR/set.$i.out")"
            fails=$(( fails + 1 )); ok=0
        fi
    done
    cmds=$(grep -c "verb=set result=HF_OK" "$E2E_DIR/rc.log" || true)
    say "reconnect: $n cuts, $cmds commands executed by the engine, $fails failures," \
        "slowest reconnect ${worst} ms"
    [ "$cmds" -eq $(( n - fails )) ] || { say "FAIL: $cmds commands reached the engine, want $(( n - fails ))"; ok=0; }
    e2e_alive "$eng" || { say "FAIL: the engine died"; ok=0; }
    kill -TERM "$eng"; e2e_wait_exit "$eng" 10 || fail "engine ignored SIGTERM"
    e2e_agg_stop
    ran=1
}

case_sigstop() {
    local stop_s=${HF_NET_STOP_S:-60} id=st-eng rss0 rss peak=0 sum t
    say "case sigstop: aggregator stopped for $stop_s s while an engine streams"
    s_agg sigstop
    local m=$E2E_DIR/stop.method
    # samples for the whole stop and a little more: 4 ch x 200 Hz
    { echo "sample oven.temp,chamber.pressure,flow,ambient 200"; echo "set oven.setpoint 25";
      echo "hold $(( stop_s + 6 ))s"; } >"$m"
    "$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$E2E_DIR/st.spool" --method "$m" \
        --summary "$E2E_DIR/st.summary" >"$E2E_DIR/st.out" 2>"$E2E_DIR/st.log" &
    local eng=$!
    e2e_track "$eng"
    sleep 2
    # RssAnon: the heap (what must stay bounded); VmRSS also counts the
    # spool's mapped file pages, which grow with the backlog on disk.
    rss0=$(awk '/RssAnon/ { print $2 }' "/proc/$eng/status")
    local vm0 vm vmpeak=0
    vm0=$(awk '/VmRSS/ { print $2 }' "/proc/$eng/status")
    kill -STOP "$AGG_PID"
    say "aggregator stopped; engine RssAnon ${rss0} kB, VmRSS ${vm0} kB"
    for t in $(seq 1 "$stop_s"); do
        sleep 1
        rss=$(awk '/RssAnon/ { print $2 }' "/proc/$eng/status" 2>/dev/null || echo 0)
        vm=$(awk '/VmRSS/ { print $2 }' "/proc/$eng/status" 2>/dev/null || echo 0)
        [ "$rss" -le "$peak" ] || peak=$rss
        [ "$vm" -le "$vmpeak" ] || vmpeak=$vm
        [ $(( t % 15 )) -ne 0 ] || say "  ${t} s stopped: engine RssAnon ${rss} kB, VmRSS ${vm} kB"
    done
    kill -CONT "$AGG_PID"
    say "aggregator resumed; engine peak RssAnon ${peak} kB (start ${rss0} kB)," \
        "peak VmRSS ${vmpeak} kB (start ${vm0} kB)"
    [ "$peak" -lt $(( rss0 + 16384 )) ] || { say "FAIL: engine heap grew by $(( peak - rss0 )) kB"; ok=0; }
    e2e_wait_exit "$eng" 120 || fail "engine did not finish within 120 s after SIGCONT"
    [ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/st.log"; fail "engine rc=$E2E_RC"; }
    sum=$(cat "$E2E_DIR/st.summary")
    say "engine: $sum"
    s_check "$id" "$sum" || ok=0
    e2e_agg_stop
    ran=1
}

# s_check ID SUMMARY: the store holds exactly 1..committed, run completed
# with all its samples.
s_check() {
    local ex=$E2E_DIR/$1.export.jsonl run rc=0 stored
    cli export --engine "$1" --format jsonl --out "$ex" >/dev/null
    awk -v want_control="$(kv "$2" committed_control)" -v want_data="$(kv "$2" committed_data)" \
        -f "$CH_HERE/check.awk" "$ex" >"$ex.check" || rc=1
    sed 's/^/    /' "$ex.check"
    run=$(kv "$2" run)
    grep -qE "^run $run final=completed " "$ex.check" || { echo "    run $run not completed"; rc=1; }
    stored=$(grep -c "\"kind\":\"sample\",\"run\":$run," "$ex" || true)
    [ "$stored" = "$(kv "$2" samples)" ] || { echo "    $stored samples stored of $(kv "$2" samples)"; rc=1; }
    [ "$(kv "$2" committed_data)" = "$(kv "$2" acked_data)" ] || { echo "    data not all acked"; rc=1; }
    return $rc
}

# s_shape NS DEV: rate, loss and (with netem) delay on DEV's egress in NS.
# Sets NM_HOW (what is emulated how). With netem: the issue's qdisc as is.
# Without (a kernel with no sch_netem): the rate with tbf, the loss with an
# iptables statistic rule (real packets dropped, TCP retransmits them), and
# the delay in an hf-proxy on the aggregator's side (below).
NM_NETEM=
s_shape() {
    local ns=$1 dev=$2
    if [ -z "$NM_NETEM" ]; then
        if ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay 300ms 100ms loss 10% \
            rate 512kbit 2>"$E2E_DIR/tc.err"; then
            NM_NETEM=yes
        else
            NM_NETEM=no
            say "netem unavailable here ($(head -1 "$E2E_DIR/tc.err")): emulating it"
        fi
    elif [ "$NM_NETEM" = yes ]; then
        ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay 300ms 100ms loss 10% rate 512kbit
    fi
    [ "$NM_NETEM" = yes ] && { NM_HOW="netem delay 300ms 100ms loss 10% rate 512kbit"; return 0; }
    ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate 512kbit burst 16kb latency 2s
    NM_HOW="tbf rate 512kbit"
    if command -v iptables >/dev/null &&
        ip netns exec "$ns" iptables -A OUTPUT -o "$dev" -m statistic --mode random \
            --probability 0.10 -j DROP 2>>"$E2E_DIR/tc.err"; then
        NM_HOW="$NM_HOW + iptables statistic DROP 10%"
    else
        NM_HOW="$NM_HOW (NO LOSS: iptables with the statistic match unavailable: $(tail -1 "$E2E_DIR/tc.err" 2>/dev/null))"
        NM_LOSS_MISSING=1
    fi
}

case_netem() {
    local a=hfc-agg-$$ e=hfc-eng-$$ id=nm-eng sum line port ep
    NM_LOSS_MISSING=
    if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
        say "case netem: SKIPPED (needs root and iproute2: apt-get install iproute2)"; return
    fi
    if ! ip netns add "$a" 2>"$E2E_DIR/netns.err"; then
        say "case netem: SKIPPED (ip netns add failed: $(cat "$E2E_DIR/netns.err"))"; return
    fi
    NETNS+=("$a")
    ip netns add "$e"; NETNS+=("$e")
    ip link add hfa$$ netns "$a" type veth peer name hfe$$ netns "$e"
    ip -n "$a" addr add 10.77.0.1/24 dev hfa$$; ip -n "$a" link set hfa$$ up; ip -n "$a" link set lo up
    ip -n "$e" addr add 10.77.0.2/24 dev hfe$$; ip -n "$e" link set hfe$$ up; ip -n "$e" link set lo up
    s_shape "$a" hfa$$
    s_shape "$e" hfe$$
    if [ "$NM_NETEM" = yes ]; then
        ip netns exec "$a" "$E2E_AGG" --bind "tcp://10.77.0.1:*" --control "tcp://127.0.0.1:*" \
            --data "$E2E_DIR/store.netem" >"$E2E_DIR/agg.netem.log" 2>&1 &
    else
        ip netns exec "$a" "$E2E_AGG" --bind "tcp://127.0.0.1:*" --control "tcp://127.0.0.1:*" \
            --data "$E2E_DIR/store.netem" >"$E2E_DIR/agg.netem.log" 2>&1 &
    fi
    AGG_PID=$!
    e2e_track "$AGG_PID"
    s_l() { grep -q "listening engines=" "$E2E_DIR/agg.netem.log"; }
    e2e_wait_until 20 s_l || fail "aggregator did not listen in the namespace"
    line=$(grep "listening engines=" "$E2E_DIR/agg.netem.log" | tail -1)
    AGG_ENGINES=$(sed -E 's/.*engines=([^ ]+).*/\1/' <<<"$line")
    AGG_CONTROL=$(sed -E 's/.*control=([^ ]+).*/\1/' <<<"$line")
    ep=$AGG_ENGINES
    if [ "$NM_NETEM" = no ]; then
        # the delay: 300 +/- 100 ms per chunk, each direction, on the path
        # between the namespaces (the proxy listens on the veth address)
        ip netns exec "$a" "$PROXY" --upstream "127.0.0.1:${AGG_ENGINES##*:}" \
            --listen 10.77.0.1:0 >"$E2E_DIR/nmproxy.out" 2>"$E2E_DIR/nmproxy.log" &
        local px=$!
        e2e_track "$px"
        s_px() { grep -qE '^listen [0-9]+ ctl [0-9]+$' "$E2E_DIR/nmproxy.out"; }
        e2e_wait_until 10 s_px || fail "proxy printed no ports"
        local pport cport
        read -r _ pport _ cport <"$E2E_DIR/nmproxy.out"
        ip netns exec "$a" "$PROXY" --ctl "$cport" delay 300 100 >/dev/null ||
            fail "proxy refused 'delay 300 100'"
        NM_HOW="$NM_HOW + hf-proxy delay 300 ms +/- 100 ms per direction"
        ep=tcp://10.77.0.1:$pport
    fi
    say "case netem: aggregator in netns $a, engine in $e, each way: $NM_HOW"
    cli() { ip netns exec "$a" "$E2E_CLI" --control "$AGG_CONTROL" --timeout 10000 "$@"; }
    ip netns exec "$e" "$E2E_ENG" --id "$id" --connect "$ep" --spool "$E2E_DIR/nm.spool" \
        --method "$CH_HERE/netem.method" --summary "$E2E_DIR/nm.summary" --drain-timeout 300000 \
        >"$E2E_DIR/nm.out" 2>"$E2E_DIR/nm.log" &
    local eng=$! t0
    t0=$(date +%s)
    e2e_track "$eng"
    e2e_wait_exit "$eng" 330 || fail "engine did not drain within 330 s over the shaped link"
    [ "$E2E_RC" -eq 0 ] || { tail -5 "$E2E_DIR/nm.log"; fail "engine rc=$E2E_RC"; }
    sum=$(cat "$E2E_DIR/nm.summary")
    say "engine: $sum (ran and drained in $(( $(date +%s) - t0 )) s)"
    local false_un drops
    false_un=$(grep -E "engine=$id unavailable" "$E2E_DIR/agg.netem.log" | grep -vc "clean shutdown" || true)
    drops=$(for n in "$a" "$e"; do ip netns exec "$n" iptables -L OUTPUT -v -n -x 2>/dev/null; done |
        awk '/statistic/ { n += $1 } END { print n + 0 }')
    say "netem: $false_un 'unavailable' before the clean shutdown (watchdog 3000 ms)," \
        "$(grep -cE "engine=$id reconnected" "$E2E_DIR/agg.netem.log" || true) reconnects," \
        "packets dropped: ${drops:-0}"
    [ "$false_un" -eq 0 ] || { grep -E "engine=$id unavailable" "$E2E_DIR/agg.netem.log" | head -3; ok=0; }
    [ -z "$NM_LOSS_MISSING" ] || { say "FAIL: loss not emulated (see above)"; ok=0; }
    s_check "$id" "$sum" || ok=0
    e2e_agg_stop
    cli() { "$E2E_CLI" --control "$AGG_CONTROL" --timeout 5000 "$@"; }
    ran=1
}

for c in $cases; do "case_$c"; done
[ "$ran" -eq 1 ] || exit 77
[ "$ok" -eq 1 ] || fail "see above"
say "OK: $cases"
