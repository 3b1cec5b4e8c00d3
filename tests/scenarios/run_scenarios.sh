#!/usr/bin/env bash
# run_scenarios.sh - ctest e2e_scenarios: every hwsim/scenarios/*.scenario
# run by a real holdfast-engine against a real holdfast-aggregator, and
# every `expect` line of the scenario checked against what reached the
# aggregator (docs/hardware-errors.md, "The scenario suite").
#
# Per scenario, in its own directory: an aggregator on free loopback ports,
# `holdfast-engine --scenario FILE --truth truth.log --summary summary`
# (runs the scenario's method and exits when the run ends), `holdfast
# export --engine ID --format jsonl`, then hf_scenario_check (which parses
# the expectations with hwsim's own parser) against the export, the truth
# log and the summary. Prints a table: scenario, expectations checked,
# result, seconds. Exit 0 iff every scenario passes.
#
# Scenarios run HF_SCENARIO_JOBS at a time (default 2), each in a subshell
# that ends only the processes it started.
#
# Environment: HF_BIN, HF_E2E_KEEP (see tests/e2e/lib.sh), HF_SCENARIOS
# (names to run, default all), HF_SCENARIO_JOBS, HF_SCENARIO_CHECK (the
# checker binary, default $HF_BIN/tests/scenarios/hf_scenario_check).
set -euo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init scenarios

CHECK=${HF_SCENARIO_CHECK:-$E2E_BIN/tests/scenarios/hf_scenario_check}
[ -x "$CHECK" ] || { echo "scenarios: missing $CHECK (build hf_scenario_check)" >&2; exit 2; }
JOBS=${HF_SCENARIO_JOBS:-2}
SC_DIR=$E2E_ROOT/hwsim/scenarios
names=()
if [ -n "${HF_SCENARIOS:-}" ]; then
    read -r -a names <<<"$HF_SCENARIOS"
else
    for f in "$SC_DIR"/*.scenario; do names+=("$(basename "$f" .scenario)"); done
fi
[ "${#names[@]}" -gt 0 ] || fail "no scenario in $SC_DIR"

# Inside a scenario's subshell: end what it started (the parent's trap does
# not reach a subshell's children).
s_sub_cleanup() {
    local p i
    for p in "${E2E_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

# s_one NAME: run one scenario; writes $E2E_DIR/NAME/result as
# "NAME CHECKED FAILED SECONDS NOTE". Run in a subshell.
s_one() {
    local name=$1 dir=$E2E_DIR/$1 t0 id=sc-$1 note=
    E2E_PIDS=()
    trap s_sub_cleanup EXIT
    mkdir -p "$dir"
    t0=$(date +%s%N)
    e2e_agg_start "$dir/store" "$dir/aggregator.log"
    "$E2E_ENG" --id "$id" --connect "$AGG_ENGINES" --spool "$dir/spool" \
        --scenario "$SC_DIR/$name.scenario" --truth "$dir/truth.log" --summary "$dir/summary" \
        --drain-timeout 20000 >"$dir/engine.out" 2>"$dir/engine.log" &
    local eng=$!
    e2e_track "$eng"
    if ! e2e_wait_exit "$eng" 60; then
        note="engine did not exit within 60 s"
    elif [ "$E2E_RC" -ne 0 ]; then
        note="engine exit status $E2E_RC"
    elif ! "$E2E_CLI" --control "$AGG_CONTROL" export --engine "$id" --format jsonl \
            --out "$dir/export.jsonl" >/dev/null 2>"$dir/export.err"; then
        note="export failed: $(head -c 200 "$dir/export.err")"
    fi
    e2e_agg_stop
    local checked=0 failed=1
    if [ -z "$note" ]; then
        "$CHECK" "$SC_DIR/$name.scenario" "$dir/export.jsonl" "$dir/truth.log" "$dir/summary" \
            >"$dir/check.txt" 2>&1 || true
        local last
        last=$(tail -1 "$dir/check.txt")
        if [[ $last =~ ^checked\ ([0-9]+)\ failed\ ([0-9]+)$ ]]; then
            checked=${BASH_REMATCH[1]}
            failed=${BASH_REMATCH[2]}
        else
            note="checker: $(tail -1 "$dir/check.txt" | head -c 200)"
        fi
    fi
    echo "$name $checked $failed $(( ($(date +%s%N) - t0) / 1000000 )) ${note:--}" >"$dir/result"
}

t_all=$(date +%s%N)
running=()
for name in "${names[@]}"; do
    [ -f "$SC_DIR/$name.scenario" ] || fail "no scenario $name in $SC_DIR"
    while [ "${#running[@]}" -ge "$JOBS" ]; do
        wait "${running[0]}" || true
        running=("${running[@]:1}")
    done
    say "start $name"
    ( s_one "$name" ) &
    running+=("$!")
    e2e_track "$!"
done
for p in "${running[@]}"; do wait "$p" || true; done

ok=1
printf '\n%-20s %8s  %-6s %8s\n' scenario checked result seconds
for name in "${names[@]}"; do
    res=$E2E_DIR/$name/result
    if [ ! -f "$res" ]; then
        printf '%-20s %8s  %-6s %8s  %s\n' "$name" - FAIL - "no result (subshell died)"
        ok=0
        continue
    fi
    read -r n checked failed ms note <"$res"
    verdict=pass
    [ "$failed" -eq 0 ] && [ "$note" = - ] || { verdict=FAIL; ok=0; }
    [ "$note" = - ] && note=
    printf '%-20s %8s  %-6s %8s  %s\n' "$n" "$checked" "$verdict" \
        "$(printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )))" "$note"
done
echo
for name in "${names[@]}"; do
    d=$E2E_DIR/$name
    if [ -f "$d/check.txt" ] && grep -q '^  FAIL' "$d/check.txt"; then
        echo "$name:"; grep '^  FAIL' "$d/check.txt"
        [ -f "$d/summary" ] && echo "  summary: $(cat "$d/summary")"
    fi
    if [ -f "$d/result" ] && ! grep -q ' -$' "$d/result"; then
        echo "$name: engine log tail:"; tail -5 "$d/engine.log" 2>/dev/null | sed 's/^/    /'
    fi
done
secs=$(( ($(date +%s%N) - t_all) / 1000000000 ))
[ "$ok" -eq 1 ] || fail "some scenarios failed (${secs} s); see above"
say "OK: ${#names[@]} scenarios, every expectation holds (${secs} s)"
