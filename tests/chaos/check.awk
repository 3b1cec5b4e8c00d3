# check.awk - the chaos suite's store check for ONE engine: reads a
# `holdfast export --format jsonl` file and prints counts, not only a verdict
# (tests/chaos/chaos.sh sums them into its table).
#
#   awk -v want_control=N -v want_data=N -f check.awk export.jsonl
#
# Per lane, against WANT (the engine's last committed seq, from the final
# incarnation's summary, which continues the spool's sequence):
#   lost      seqs in 1..want not stored and not inside a range announced by
#             a gap record (gap_lane, first..last)
#   dup       an (epoch, lane, seq) stored more than once
#   above     seqs stored above want (the engine never committed them)
# Across the file: the number of epochs (the spool is never wiped in a
# chaos round, so it must be 1), and per lane run ids never go back as seqs
# go up. Output: one "lane ..." line per lane, one "run ID final=EVENT
# started=N records=N" line per run, then one "total records=N lost=N dup=N
# above=N epochs=N order=N" line. Exit status 1 on any violation.
#
# Run ids (~1.8e18) exceed a double's 53 bits: compared as decimal strings.

function str(line, key,    pat) {
    pat = "\"" key "\":\"[^\"]*\""
    if (!match(line, pat))
        return ""
    return substr(line, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
}

function num(line, key,    pat) {
    pat = "\"" key "\":[0-9]+"
    if (!match(line, pat))
        return ""
    return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
}

function cmp(a, b) {
    if (length(a) != length(b))
        return length(a) < length(b) ? -1 : 1
    if (a == b)
        return 0
    return a < b ? -1 : 1
}

{
    nrecords++
    lane = str($0, "lane")
    seq = num($0, "seq")
    ep = str($0, "epoch")
    if (lane == "" || seq == "") {
        bad++
        next
    }
    if (!(ep in epochs)) {
        epochs[ep] = 1
        nepochs++
    }
    seq += 0
    if ((ep, lane, seq) in seen)
        dup++
    seen[ep, lane, seq] = 1
    have[lane, seq] = 1
    nrec[lane]++
    if (seq > maxseq[lane])
        maxseq[lane] = seq
    run = num($0, "run")
    kind = str($0, "kind")
    if (run != "" && run != "0") {
        if (!(run in runrecs)) {
            runs[++nruns] = run
            runrecs[run] = 0
        }
        runrecs[run]++
        if ((lane in lastrun) && cmp(run, lastrun[lane]) < 0)
            order++
        lastrun[lane] = run
    }
    if (kind == "event") {
        ev = str($0, "event")
        if (ev == "run_started")
            started[run]++
        if (ev == "completed" || ev == "aborted" || ev == "failed" || ev == "interrupted")
            final[run] = ev
    }
    if (kind == "gap") {
        ngaps++
        glane[ngaps] = str($0, "gap_lane")
        gfirst[ngaps] = num($0, "first") + 0
        glast[ngaps] = num($0, "last") + 0
    }
}

END {
    split("control data", lanes, " ")
    for (li = 1; li <= 2; li++) {
        l = lanes[li]
        want = (l == "control") ? want_control : want_data
        if (want == "")
            want = maxseq[l] + 0
        want += 0
        missing = 0
        for (s = 1; s <= want; s++) {
            if ((l, s) in have)
                continue
            covered = 0
            for (g = 1; g <= ngaps; g++)
                if (glane[g] == l && s >= gfirst[g] && s <= glast[g]) {
                    covered = 1
                    break
                }
            if (!covered) {
                missing++
                if (missing <= 3)
                    printf "violation: lane %s seq %d missing (not announced)\n", l, s
            }
        }
        lost += missing
        if (maxseq[l] + 0 > want) {
            above += maxseq[l] - want
            printf "violation: lane %s stored up to %d, the engine committed %d\n", l,
                maxseq[l], want
        }
        printf "lane %s records=%d max_seq=%d want=%d lost=%d\n", l, nrec[l], maxseq[l],
            want, missing
    }
    for (i = 1; i <= nruns; i++) {
        r = runs[i]
        printf "run %s final=%s started=%d records=%d\n", r, (r in final) ? final[r] : "-",
            started[r] + 0, runrecs[r]
    }
    printf "total records=%d lost=%d dup=%d above=%d epochs=%d order=%d malformed=%d\n",
        nrecords, lost, dup + 0, above + 0, nepochs + 0, order + 0, bad + 0
    if (lost || dup || above || nepochs > 1 || order || bad)
        exit 1
}
