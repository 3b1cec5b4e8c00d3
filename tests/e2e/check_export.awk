# check_export.awk - checks a `holdfast export --format jsonl` file of ONE
# engine against what the engine committed (POSIX awk; mawk is enough).
#
#   awk -v want_control=N -v want_data=N -f check_export.awk export.jsonl
#
# Checks, per lane: every seq in 1..want is stored exactly once, nothing above
# want is stored, and a missing seq is allowed only inside a range announced
# by a gap record (gap_lane, first..last), and per lane no more seqs missing
# than the lane's gap records count (ranges may overlap: a range decimated
# twice is announced twice).
# Across the file: one epoch only; within a lane, run ids never go back as
# seqs go up (each run continues the spool's sequence). want_* empty: the
# lane's highest stored seq is taken as want.
#
# Output: one line per lane, one "run ..." line per run (records, samples,
# run_started seen, final event), then "verdict ok" or "verdict FAIL ...".
# Exit status 1 on any violation.
#
# The parser reads the fields by name with match(); it relies on the export
# writing numbers bare and strings quoted, and on no text field containing
# a quoted key of its own (true for method names and step texts).

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

# Compare two decimal strings without losing precision (run ids are ~1.8e18,
# beyond a double's 53 bits): -1, 0, 1.
function cmp(a, b) {
    if (length(a) != length(b))
        return length(a) < length(b) ? -1 : 1
    if (a == b)
        return 0
    return a < b ? -1 : 1
}

function bad(msg) {
    nbad++
    if (nbad <= 20)
        print "  violation: " msg
}

{
    lane = str($0, "lane")
    seq = num($0, "seq")
    if (lane == "" || seq == "") {
        bad("line " NR ": no lane/seq")
        next
    }
    ep = str($0, "epoch")
    if (!(ep in epochs)) {
        epochs[ep] = 1
        nepochs++
    }
    seq += 0
    if ((lane, seq) in seen)
        bad("lane " lane " seq " seq " stored twice")
    seen[lane, seq] = 1
    nrec[lane]++
    if (seq > maxseq[lane])
        maxseq[lane] = seq

    kind = str($0, "kind")
    run = num($0, "run")
    if (run != "" && run != "0") {
        if (!(run in runrecs)) {
            runs[++nruns] = run
            runrecs[run] = 0
        }
        runrecs[run]++
        if (kind == "sample")
            runsamples[run]++
        if (lane in lastrun && cmp(run, lastrun[lane]) < 0)
            bad("lane " lane " seq " seq " belongs to run " run ", older than run " \
                lastrun[lane] " stored at a lower seq")
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
        gcount[ngaps] = num($0, "count") + 0
    }
}

END {
    split("control data", lanes, " ")
    for (li = 1; li <= 2; li++) {
        l = lanes[li]
        want = (l == "control") ? want_control : want_data
        top = maxseq[l] + 0
        if (want == "")
            want = top
        want += 0
        missing = 0
        announced = 0
        for (s = 1; s <= want; s++) {
            if ((l, s) in seen)
                continue
            covered = 0
            for (g = 1; g <= ngaps; g++) {
                if (glane[g] == l && s >= gfirst[g] && s <= glast[g]) {
                    covered = g
                    break
                }
            }
            if (covered) {
                announced++
            } else {
                missing++
                if (missing <= 5)
                    bad("lane " l " seq " s " missing (no gap record announces it)")
            }
        }
        if (top > want)
            bad("lane " l ": stored up to seq " top ", the engine committed only " want)
        amiss[l] = announced
        printf "lane %-7s records=%d max_seq=%d want=%d missing=%d announced_missing=%d\n", \
            l, nrec[l], top, want, missing, announced
    }
    # Gap ranges may overlap (decimation thins a range again), so the counts
    # are checked per lane: no more seqs missing than the gaps announce.
    for (g = 1; g <= ngaps; g++) {
        printf "gap lane=%s first=%d last=%d count=%d\n", glane[g], gfirst[g], glast[g], \
            gcount[g]
        gsum[glane[g]] += gcount[g]
    }
    for (li = 1; li <= 2; li++) {
        l = lanes[li]
        if (amiss[l] > gsum[l] + 0)
            bad("lane " l ": " amiss[l] " seqs missing inside gap ranges, the gaps announce " \
                (gsum[l] + 0))
    }
    if (nepochs > 1)
        bad(nepochs " epochs in one engine's export")
    printf "epochs=%d runs=%d gaps=%d\n", nepochs, nruns, ngaps
    for (i = 1; i <= nruns; i++) {
        r = runs[i]
        printf "run %s records=%d samples=%d started=%d final=%s\n", r, runrecs[r], \
            runsamples[r] + 0, started[r] + 0, (r in final) ? final[r] : "-"
    }
    if (nbad) {
        print "verdict FAIL (" nbad " violations)"
        exit 1
    }
    print "verdict ok"
}
