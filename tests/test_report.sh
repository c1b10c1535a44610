#!/bin/bash
# tfq report on a synthetic grid: the points, their statistics and Table 1
# are recomputed here in awk from the same JSON and compared with what tfq
# wrote; the figures' panels, intervals and offsets are checked against
# numbers recomputed in Python (check_figures.py); the SVGs must render
# with rsvg-convert and in headless Chromium, and the report's PNGs be
# there.  Usage: test_report.sh PATH-TO-TFQ
#
# Prints "ok: ..." or "FAIL: ..." per check and exits 1 if any failed, 77
# (skipped) when every other check passed but rsvg-convert or python3 is
# missing.  Without chromium its checks are skipped with a note.
set -u

TFQ=${1:?usage: test_report.sh PATH-TO-TFQ}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfq-report-XXXXXX")
COORD=

cleanup() {
    if [ -n "$COORD" ]; then
        kill -TERM "$COORD" 2>/dev/null
        wait "$COORD" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

. "$(dirname "$0")/lib_check.sh"

# ---- the synthetic grid -----------------------------------------------------

# One job per line.  Random splits random0 and random1 and the dissimilar
# split, targets A and B, seeds 1 and 2: base nets, selffer and transfer
# frozen and fine-tuned, the random-weights control (random splits) and
# frozen transfer on the dissimilar split, n = 1..7.  Accuracies follow a
# formula with a per-run wobble; each run has 12 evaluations whose best,
# last and top-K differ.  Then jobs the report must ignore (not succeeded,
# or without grid coordinates) and a transfer run whose split has no base.
gen_grid() {
    awk -v metric="$1" '
    function job(where, sim, tgt, n, variant, ft, seed, acc,
                 state, e, accs, v, other, name) {
        id++
        accs = ""
        for (e = 0; e < 12; e++) {
            v = acc - 0.3 * exp(-e / 2) + ((e * 5 + id) % 7 - 3) * 0.001
            accs = accs (e ? ", " : "") sprintf("%.6f", v)
        }
        other = tgt == "A" ? "B" : "A"
        name = variant == "base" ? "base" tgt : \
            (variant == "transfer" ? other : tgt) n tgt (ft ? "+" : "")
        if (variant == "random") name = "R" n tgt
        printf "%s{\"job\": %d, \"grid\": \"synthetic\", \"name\": \"%s/%d/%s\", " \
            "\"kind\": \"train\", \"state\": \"%s\", \"attempts\": 1, " \
            "\"error\": null, \"result\": ", sep, id, where, seed, name, state
        if (state == "succeeded")
            printf "{\"final_acc\": 0, \"best_acc\": 0, \"topk_acc\": 0, " \
                "\"topk\": 10, \"epochs\": 12, \"final_loss\": 0.2, " \
                "\"train_seconds\": 1.5, \"data_fingerprint\": \"f\", " \
                "\"accs\": [%s]}", accs
        else
            printf "null"
        printf ", \"checkpoint\": null, \"split\": \"%s\", \"similarity\": " \
            "\"%s\", \"target\": \"%s\", \"n\": %d, \"variant\": \"%s\", " \
            "\"finetune\": %d, \"seed\": %d, \"metric\": \"%s\", " \
            "\"reused_from\": null}\n", where, sim, tgt, n, variant, ft,
            seed, metric
        sep = ","
    }
    BEGIN {
        print "["
        split("random0 random1 dissimilar", splits, " ")
        for (s = 1; s <= 3; s++) for (t = 0; t < 2; t++)
        for (seed = 1; seed <= 2; seed++) {
            sp = splits[s]
            sim = sp == "dissimilar" ? "dissimilar" : "random"
            tgt = t ? "B" : "A"
            b = 0.60 + 0.01 * t + 0.005 * s
            w = ((s * 7 + t * 3 + seed * 5) % 7 - 3) * 0.002
            job(sp, sim, tgt, 0, "base", 0, seed, b + w, "succeeded")
            for (n = 1; n <= 7; n++) {
                w = ((s * 7 + t * 3 + seed * 5 + n * 11) % 7 - 3) * 0.002
                if (sim == "dissimilar") {
                    job(sp, sim, tgt, n, "transfer", 0, seed,
                        b - 0.005 * n * n + w, "succeeded")
                    continue
                }
                job(sp, sim, tgt, n, "selffer", 0, seed,
                    b - 0.03 * exp(-(n - 4.5) ^ 2 / 2) + w, "succeeded")
                job(sp, sim, tgt, n, "selffer", 1, seed, b + 0.002 + w,
                    "succeeded")
                job(sp, sim, tgt, n, "transfer", 0, seed,
                    b - 0.002 * n * n + w, "succeeded")
                job(sp, sim, tgt, n, "transfer", 1, seed,
                    b + 0.015 + 0.001 * n + w, "succeeded")
                job(sp, sim, tgt, n, "random", 0, seed,
                    0.1 + 0.5 * exp(-n) + w, "succeeded")
            }
        }
        job("random0", "random", "A", 4, "transfer", 1, 3, 0.9, "running")
        job("random0", "random", "B", 5, "selffer", 0, 3, 0.9, "pending")
        job("random1", "random", "A", 2, "transfer", 0, 3, 0.9, "failed")
        job("random9", "random", "A", 3, "transfer", 0, 1, 0.55, "succeeded")
        # Succeeded with a result, but not a job of the grid: no coordinates.
        printf ",{\"job\": %d, \"grid\": \"synthetic\", \"name\": \"plain\", " \
            "\"kind\": \"train\", \"state\": \"succeeded\", \"attempts\": 1, " \
            "\"error\": null, \"result\": {\"final_acc\": 0.99, " \
            "\"best_acc\": 0.99, \"topk_acc\": 0.99, \"topk\": 10, " \
            "\"accs\": [0.99]}, \"checkpoint\": null, \"split\": null, " \
            "\"similarity\": null, \"target\": null, \"n\": null, " \
            "\"variant\": null, \"finetune\": null, \"seed\": null, " \
            "\"metric\": null, \"reused_from\": null}\n", ++id
        # A failed job that still carries a result: not a finished run.
        printf ",{\"job\": %d, \"grid\": \"synthetic\", \"name\": " \
            "\"random0/2/A1A\", \"kind\": \"train\", \"state\": \"failed\", " \
            "\"attempts\": 3, \"error\": \"boom\", \"result\": {\"accs\": " \
            "[0.99]}, \"checkpoint\": null, \"split\": \"random0\", " \
            "\"similarity\": \"random\", \"target\": \"A\", \"n\": 1, " \
            "\"variant\": \"selffer\", \"finetune\": 0, \"seed\": 2, " \
            "\"metric\": null, \"reused_from\": null}\n", ++id
        print "]"
    }'
}

# expected_points JSON METRIC: the points table as tfq's table.csv has it
# (without header), computed from the JSON lines independently of tfq.
expected_points() {
    awk -v metric="$2" '
    function field(line, key,   v) {
        if (!match(line, "\"" key "\": (\"[^\"]*\"|null|-?[0-9.]+)"))
            return "null"
        v = substr(line, RSTART, RLENGTH)
        sub(/^"[^"]*": /, "", v)
        gsub(/"/, "", v)
        return v
    }
    function value(line,   s, a, n, i, j, t, k, sum) {
        match(line, /"accs": \[[^]]*\]/)
        s = substr(line, RSTART + 9, RLENGTH - 10)
        n = split(s, a, /, */)
        for (i = 1; i <= n; i++) a[i] += 0
        if (metric == "final") return a[n]
        for (i = 2; i <= n; i++)          # insertion sort, descending
            for (j = i; j > 1 && a[j] > a[j - 1]; j--) {
                t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
            }
        if (metric == "best") return a[1]
        k = substr(metric, 4) + 0
        if (k > n) k = n
        for (i = 1; i <= k; i++) sum += a[i]
        return sum / k
    }
    /"job":/ {
        if (field($0, "state") != "succeeded" || $0 ~ /"result": null/ ||
            field($0, "split") == "null") next
        variant = field($0, "variant")
        n = variant == "base" ? 0 : field($0, "n")
        ft = variant == "base" ? 0 : field($0, "finetune")
        key = field($0, "similarity") "," variant "," ft "," n
        v = value($0)
        cnt[key]++; sum[key] += v; vals[key, cnt[key]] = v
    }
    END {
        for (key in cnt) {
            m = sum[key] / cnt[key]
            ss = 0
            for (i = 1; i <= cnt[key]; i++)
                ss += (vals[key, i] - m) ^ 2
            sd = cnt[key] > 1 ? sprintf("%.6f", sqrt(ss / (cnt[key] - 1))) : ""
            printf "%s,%.6f,%s,%d\n", key, m, sd, cnt[key]
        }
    }' "$1"
}

# same_points EXPECTED ACTUAL-CSV: the same rows, counts equal, means and
# sds within 2e-6 (both are printed with 6 decimals).
same_points() {
    awk -F, 'NR == FNR { want[$1 FS $2 FS $3 FS $4] = $0; rows++; next }
    FNR == 1 { next }
    {
        key = $1 FS $2 FS $3 FS $4
        if (!(key in want)) { print "unexpected row " $0; bad = 1; next }
        split(want[key], w, ",")
        d = w[5] - $5; if (d < 0) d = -d
        e = w[6] - $6; if (e < 0) e = -e
        if (w[7] != $7 || d > 2e-6 || (w[6] == "") != ($6 == "") || e > 2e-6) {
            print "row " $0 " expected " want[key]; bad = 1
        }
        seen++
    }
    END {
        if (seen != rows) { print seen " rows, expected " rows; bad = 1 }
        exit bad
    }' "$1" "$2"
}

# expected_gain POINTS LO HI VERSUS: Table 1's gain from the expected
# points: the mean over n of (transfer+ - base) or (transfer+ - selffer+).
expected_gain() {
    awk -F, -v lo="$2" -v hi="$3" -v versus="$4" '
    $1 == "random" { mean[$2 "," $3 "," $4] = $5 }
    END {
        for (n = lo; n <= hi; n++) {
            other = versus == "base" ? mean["base,0,0"] : mean["selffer,1," n]
            s += mean["transfer,1," n] - other
        }
        printf "%.6f\n", s / (hi - lo + 1)
    }' "$1"
}

# check_gain NAME TABLE1 LO-HI VERSUS WANT POINTS
check_gain() {
    local row
    row=$(grep "^$3,$4," "$2")
    if awk -F, -v want="$5" -v pts="$6" '{ d = $3 - want; if (d < 0) d = -d
            exit !(d <= 2e-6 && $4 == pts) }' <<<"$row"; then
        ok "$1"
    else
        fail "$1: got '$row', expected gain $5 over $6 points"
    fi
}

gen_grid top5 >"$TMP/grid.json"

# ---- the points and Table 1 -------------------------------------------------

expect "report --help" 0 -- report --help
grep -q "figure2.svg" "$TMP/out" && grep -q -- "--metric" "$TMP/out" ||
    fail "report --help lacks the files or --metric"
"$TFQ" --help | grep -q "report" || fail "tfq --help does not list report"

# The grid's own metric (top5) applies when --metric is absent.
if expect "report from JSON" 0 -- report --from-json "$TMP/grid.json" \
        -o "$TMP/r/sub"; then
    for f in figure2.svg figure3.svg table.md table.csv table1.csv; do
        [ -s "$TMP/r/sub/$f" ] || fail "no $f written"
    done
    head -1 "$TMP/r/sub/table.csv" | grep -qx \
        "similarity,variant,finetune,n,mean,sd,runs,ci95_lo,ci95_hi" ||
        fail "table.csv header: $(head -1 "$TMP/r/sub/table.csv")"
    expected_points "$TMP/grid.json" top5 >"$TMP/want.csv"
    if same_points "$TMP/want.csv" "$TMP/r/sub/table.csv" >"$TMP/diff"; then
        ok "table.csv: every point recomputed (top5)"
    else
        fail "table.csv differs from awk:"
        sed 's/^/    /' "$TMP/diff"
    fi
    # Spot checks that the recomputation itself sees what was generated.
    grep -q '^random,transfer,1,3,[^,]*,[^,]*,8,' "$TMP/r/sub/table.csv" ||
        fail "random transfer+ n=3 is not 8 runs"
    grep -q '^random,transfer,0,3,[^,]*,[^,]*,9,' "$TMP/r/sub/table.csv" ||
        fail "random transfer n=3 is not 9 runs (with random9)"
    grep -q '^dissimilar,base,0,0,[^,]*,[^,]*,4,' "$TMP/r/sub/table.csv" ||
        fail "dissimilar base is not 4 runs"
    grep -q '0\.99' "$TMP/r/sub/table.csv" &&
        fail "a job without coordinates or not succeeded was counted"
    for r in "1 7" "3 7" "5 7"; do
        set -- $r
        check_gain "Table 1 $1-$2 over base" "$TMP/r/sub/table1.csv" \
            "$1-$2" base "$(expected_gain "$TMP/want.csv" "$1" "$2" base)" \
            $(($2 - $1 + 1))
        check_gain "Table 1 $1-$2 over selffer+" "$TMP/r/sub/table1.csv" \
            "$1-$2" selffer+ \
            "$(expected_gain "$TMP/want.csv" "$1" "$2" selffer)" \
            $(($2 - $1 + 1))
    done
    grep -q "## Table 1" "$TMP/r/sub/table.md" && grep -q \
        "| random | transfer | 1 | 3 |" "$TMP/r/sub/table.md" ||
        fail "table.md lacks Table 1 or the points"
    grep -q "jobs not finished" "$TMP/out" ||
        fail "summary does not say the grid is not finished"
    grep -q "1 run left out: no base net" "$TMP/out" ||
        fail "summary does not say random9 has no base"
    grep -q "^random .*transfer .*1 .*3 " "$TMP/out" &&
        grep -q "wrote $TMP/r/sub/figure2.svg" "$TMP/out" ||
        fail "summary lacks the points table or the paths"
fi

# A layer without transfer+ runs: Table 1 says so and averages the others.
awk '!(/"variant": "transfer", "finetune": 1/ && /"n": 6,/)' \
    "$TMP/grid.json" >"$TMP/gap.json"
if expect "report with a missing point" 0 -- report --from-json \
        "$TMP/gap.json" -o "$TMP/gap"; then
    grep -q '^5-7,base,.*,2,no transfer+ at n = 6$' "$TMP/gap/table1.csv" &&
        grep -q '^1-7,selffer+,.*,6,no transfer+ at n = 6$' \
            "$TMP/gap/table1.csv" && ok "Table 1 names the missing point" ||
        fail "Table 1 with a gap: $(cat "$TMP/gap/table1.csv")"
fi

# ---- --csv, --json, and an empty Table 1 -----------------------------------

if expect "report --csv" 0 -- report --from-json "$TMP/grid.json" \
        -o "$TMP/csv" --csv; then
    cmp -s "$TMP/out" "$TMP/csv/table.csv" &&
        ok "--csv prints table.csv" ||
        fail "--csv output differs from table.csv: $(head -3 "$TMP/out")"
fi
if expect "report --json" 0 -- report --from-json "$TMP/grid.json" \
        -o "$TMP/json" --json && command -v python3 >/dev/null; then
    if python3 - "$TMP/out" "$TMP/json/table.csv" "$TMP/json" <<'PY'
import csv, json, sys
r = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
assert r["grid"] == "synthetic" and r["metric"] == "top5", r
assert r["runs"] == 321 and r["unfinished"] == 4 and r["no_base"] == 1, r
assert len(r["points"]) == len(rows), (len(r["points"]), len(rows))
for p, row in zip(r["points"], rows):
    for k in ("mean", "sd", "ci95_lo", "ci95_hi"):
        want = float(row[k]) if row[k] else None
        got = p[k]
        assert (got is None) == (want is None) and \
            (want is None or abs(got - want) < 1e-6), (k, p, row)
assert [(g["lo"], g["hi"], g["versus"]) for g in r["table1"]] == \
    [(1, 7, "base"), (1, 7, "selffer+"), (3, 7, "base"),
     (3, 7, "selffer+"), (5, 7, "base"), (5, 7, "selffer+")], r["table1"]
assert sys.argv[3] + "/figure2.svg" in r["files"], r["files"]
PY
    then ok "--json: the counts, points (as table.csv), Table 1, files"
    else fail "--json: $(head -c 300 "$TMP/out")"
    fi
fi
expect "--csv and --json" 2 "conflict" -- report --from-json \
    "$TMP/grid.json" -o "$TMP/x" --csv --json

# No fine-tuned nets (as tfq run quick): Table 1 is one line that says why.
awk '!/"finetune": 1/' "$TMP/grid.json" >"$TMP/noplus.json"
if expect "report without transfer+" 0 -- report --from-json \
        "$TMP/noplus.json" -o "$TMP/noplus"; then
    why="no transfer+ (AnB+) nets on the random splits"
    [ "$(grep -c "^Table 1: none, the grid has $why$" "$TMP/out")" -eq 1 ] &&
        ! grep -q "no transfer+ at n" "$TMP/out" &&
        ! grep -q "^layers " "$TMP/out" &&
        ok "summary: an empty Table 1 is one line" ||
        fail "summary with an empty Table 1: $(sed -n '/Table 1/,$p' "$TMP/out")"
    grep -q "^None: the grid has $why\.$" "$TMP/noplus/table.md" &&
        ! grep -q "no transfer+ at n" "$TMP/noplus/table.md" &&
        ok "table.md: an empty Table 1 is one line" ||
        fail "table.md with an empty Table 1: $(sed -n '/Table 1/,$p' \
            "$TMP/noplus/table.md")"
    [ "$(wc -l <"$TMP/noplus/table1.csv")" -eq 7 ] ||
        fail "table1.csv lost its rows: $(cat "$TMP/noplus/table1.csv")"
fi

# Without rsvg-convert the report is written, without PNGs, and says so
# once.
if env PATH=/nonexistent "$TFQ" report --from-json "$TMP/grid.json" \
        -o "$TMP/nopng" >"$TMP/out" 2>"$TMP/err"; then
    [ "$(grep -c "rsvg-convert is not on PATH.*not written" "$TMP/err")" \
        -eq 1 ] && [ ! -e "$TMP/nopng/figure2.png" ] &&
        [ -s "$TMP/nopng/figure2.svg" ] && ! grep -q "\.png" "$TMP/out" &&
        ok "without rsvg-convert: no PNGs, said once on stderr" ||
        fail "without rsvg-convert: $(cat "$TMP/err")"
else
    fail "report without rsvg-convert on PATH failed: $(cat "$TMP/err")"
fi

# ---- metrics ----------------------------------------------------------------

for m in final best top3 top10; do
    if expect "--metric $m" 0 -- report --from-json "$TMP/grid.json" \
            -o "$TMP/m-$m" --metric "$m"; then
        expected_points "$TMP/grid.json" "$m" >"$TMP/want-$m.csv"
        if same_points "$TMP/want-$m.csv" "$TMP/m-$m/table.csv" \
                >"$TMP/diff"; then
            ok "table.csv recomputed with $m"
        else
            fail "table.csv with $m differs from awk:"
            sed 's/^/    /' "$TMP/diff"
        fi
    fi
done
# The metrics must differ on a point, or the comparison above proves little.
for m in final best top3; do
    a=$(grep '^random,transfer,1,3,' "$TMP/m-$m/table.csv" | cut -d, -f5)
    b=$(grep '^random,transfer,1,3,' "$TMP/r/sub/table.csv" | cut -d, -f5)
    [ -n "$a" ] && [ "$a" != "$b" ] && ok "$m differs from top5 ($a, $b)" ||
        fail "$m gives the same mean as top5 at transfer+ n=3: '$a' '$b'"
done

# Without evaluations the worker's summaries are used; with no metric in the
# grid the default is top3, the K the worker computed topk_acc with.
cat >"$TMP/summary.json" <<'EOF'
[{"job": 1, "grid": "g", "name": "random0/1/baseA", "kind": "train",
  "state": "succeeded", "attempts": 1, "error": null,
  "result": {"final_acc": 0.5, "best_acc": 0.7, "topk_acc": 0.6, "topk": 3},
  "checkpoint": null, "split": "random0", "similarity": "random",
  "target": "A", "n": 0, "variant": "base", "finetune": 0, "seed": 1,
  "metric": null, "reused_from": null}]
EOF
for mv in "default 0.600000" "final 0.500000" "best 0.700000"; do
    set -- $mv
    args=()
    [ "$1" != default ] && args=(--metric "$1")
    if expect "no accs, metric $1" 0 -- report --from-json "$TMP/summary.json" \
            -o "$TMP/s-$1" "${args[@]}"; then
        grep -qx "random,base,0,0,$2,,1,," "$TMP/s-$1/table.csv" ||
            fail "no accs, $1: $(tail -1 "$TMP/s-$1/table.csv")"
    fi
done
expect "no accs, top10 has no value" 1 "no finished job with a value" -- \
    report --from-json "$TMP/summary.json" -o "$TMP/s-top10" --metric top10

# ---- errors -----------------------------------------------------------------

grep -v '"state": "succeeded"' "$TMP/grid.json" | sed '2s/^,//' \
    >"$TMP/none.json"
expect "no finished job" 1 "no finished job" -- report --from-json \
    "$TMP/none.json" -o "$TMP/none"
[ -e "$TMP/none" ] && fail "no finished job: $TMP/none was created"
expect "unknown --metric" 2 "unknown metric 'median'" -- report \
    --from-json "$TMP/grid.json" -o "$TMP/x" --metric median
expect "--metric top0" 2 "unknown metric 'top0'" -- report \
    --from-json "$TMP/grid.json" -o "$TMP/x" --metric top0
sed 's/"metric": "top5"/"metric": "median"/' "$TMP/grid.json" \
    >"$TMP/median.json"
expect "unknown grid metric" 1 "metric 'median'" -- report --from-json \
    "$TMP/median.json" -o "$TMP/x"
expect "missing -o" 2 "-o DIR" -- report --from-json "$TMP/grid.json"
expect "no GRID" 2 "GRID" -- report -o "$TMP/x"
expect "GRID and --from-json" 2 "GRID" -- report g --from-json \
    "$TMP/grid.json" -o "$TMP/x"
echo '[{"job": 1,' >"$TMP/bad.json"
expect "bad JSON" 1 "bad.json: not valid JSON" -- report --from-json \
    "$TMP/bad.json" -o "$TMP/x"
echo '{"job": 1}' >"$TMP/obj.json"
expect "JSON not an array" 1 "expected a JSON array" -- report \
    --from-json "$TMP/obj.json" -o "$TMP/x"
expect "missing JSON file" 1 "nope.json: cannot open" -- report \
    --from-json "$TMP/nope.json" -o "$TMP/x"
touch "$TMP/afile"
expect "unwritable DIR" 1 "afile/sub: cannot create directory" -- report \
    --from-json "$TMP/grid.json" -o "$TMP/afile/sub"
[ -e "$TMP/x" ] && fail "a failed report created $TMP/x"

# From a real coordinator: the request reaches it, and a grid of plain jobs
# (no grid coordinates) has nothing to report.
"$TFQ" coordinator --state "$TMP/st" --bind 'tcp://127.0.0.1:*' \
    2>"$TMP/coord.log" &
COORD=$!
end=$((SECONDS + 60))
until [ -s "$TMP/st/endpoint" ] || [ "$SECONDS" -ge "$end" ]; do
    sleep 0.05
done
if [ -s "$TMP/st/endpoint" ]; then
    EP=$(cat "$TMP/st/endpoint")
    printf 'name = a\nkind = sleep\nsleep_ms = 1\n' >"$TMP/plain.txt"
    "$TFQ" submit "$TMP/plain.txt" --as plain --connect "$EP" >/dev/null ||
        fail "submit to the coordinator"
    expect "report of a coordinator's plain grid" 1 \
        "grid plain has no finished job (1 jobs: 0 not finished, 1 without" \
        -- report plain -o "$TMP/x" --connect "$EP"
else
    fail "coordinator did not start within 60 s: $(cat "$TMP/coord.log")"
fi

# ---- the figures ------------------------------------------------------------

# Markers: one per run.
markers() { grep -c 'class="run"' "$1"; }
want2=$(awk '/"state": "succeeded"/ && /"similarity": "random"/ &&
    /"variant": "(base|selffer|transfer)"/' "$TMP/grid.json" | wc -l)
[ "$(markers "$TMP/r/sub/figure2.svg")" -eq "$want2" ] &&
    ok "figure2: a marker per run ($want2)" ||
    fail "figure2: $(markers "$TMP/r/sub/figure2.svg") markers, expected $want2"
want3=$(awk '/"state": "succeeded"/ && /"finetune": 0/ && !/random9/ &&
    /"variant": "(transfer|random)"/' "$TMP/grid.json" | wc -l)
[ "$(markers "$TMP/r/sub/figure3.svg")" -eq "$want3" ] &&
    ok "figure3: a marker per run with a base ($want3)" ||
    fail "figure3: $(markers "$TMP/r/sub/figure3.svg") markers, expected $want3"
grep -q "accuracy (top" "$TMP/r/sub/figure2.svg" &&
    fail "figure2 still labels the metric 'accuracy (topK)'"
for label in "selffer BnB" "selffer+ BnB+" "transfer AnB" "transfer+ AnB+" \
        "mean of the 5 best evaluations" "95% interval"; do
    grep -q "$label" "$TMP/r/sub/figure2.svg" || fail "figure2 lacks '$label'"
done
grep -q "dissimilar split" "$TMP/r/sub/figure3.svg" &&
    grep -q "stroke-dasharray" "$TMP/r/sub/figure3.svg" ||
    fail "figure3 lacks the dissimilar series or the line at 1.0"

# Random-weights controls only on the dissimilar split: Figure 3 draws
# those and its legend says so.
awk '/"variant": "random"/ && /"split": "random0"/ {
        sub(/"split": "random0", "similarity": "random"/,
            "\"split\": \"dissimilar\", \"similarity\": \"dissimilar\"") }
    !(/"variant": "random"/ && /"split": "random1"/)' "$TMP/grid.json" \
    >"$TMP/ctl.json"
if expect "random control off the random splits" 0 -- report --from-json \
        "$TMP/ctl.json" -o "$TMP/ctl"; then
    grep -q "random weights (on dissimilar splits)</text>" \
        "$TMP/ctl/figure3.svg" && grep -q '^dissimilar,random,0,1,[^,]*,[^,]*,4,' \
        "$TMP/ctl/table.csv" && ok "figure3 legend names the control's splits" ||
        fail "figure3 legend: $(grep -o 'random weights[^<]*' \
            "$TMP/ctl/figure3.svg")"
fi

# Few runs: one random split and seed, both directions up to n = 4 (two
# runs: intervals of 1 degree of freedom, wider than the data), one above
# (a mean without an interval).
awk '/"job":/ && !(/"split": "random0"/ && /"seed": 1,/) { next }
    /"target": "B"/ && /"n": [5-7],/ { next } { print }' "$TMP/grid.json" |
    sed '2s/^,//' >"$TMP/few.json"
expect "report of few runs" 0 -- report --from-json "$TMP/few.json" \
    -o "$TMP/few" || true
grep -q "one run: mean only, no interval" "$TMP/few/figure2.svg" &&
    ok "figure2 legend: one-run means explained" ||
    fail "figure2 of few runs: legend lacks the one-run note"
# Up to n = 2 the means are close and the intervals of 2 runs wide: the
# zoomed panel keeps to the means and the runs, and cuts those intervals at
# its frame.
awk '!/"n": [3-7],/' "$TMP/few.json" >"$TMP/tiny.json"
expect "report of two layers" 0 -- report --from-json "$TMP/tiny.json" \
    -o "$TMP/tiny" || true
grep -q "interval cut at the frame" "$TMP/tiny/figure2.svg" &&
    ok "figure2 legend: cut intervals explained" ||
    fail "figure2 of two layers: no interval cut at the frame"

# The axis of Figure 2 stops at 1.0 when no run is above it, where a
# margin and round ticks would take it to 1.05.
awk '/"accs": \[/ { c++; v = c == 1 ? 0.999 : 0.80 + (c % 10) * 0.01
        sub(/"accs": \[[^]]*\]/, sprintf("\"accs\": [0.5, %.3f]", v)) }
    { print }' "$TMP/few.json" >"$TMP/high.json"
if expect "report of runs near 1.0" 0 -- report --from-json \
        "$TMP/high.json" -o "$TMP/high" --metric best; then
    top=$(grep -o 'class="ytick" data-value="[0-9.]*"' \
        "$TMP/high/figure2.svg" | cut -d'"' -f4 | sort -g | tail -1)
    awk -v t="$top" 'BEGIN { exit !(t == 1.0) }' &&
        ok "figure2: the y axis stops at 1.0 ($top)" ||
        fail "figure2: the y axis of runs at 0.99 goes to $top"
fi

if ! command -v python3 >/dev/null; then
    echo "note: python3 not found, skipping the figures' interval checks"
    [ "$failures" -eq 0 ] && exit 77
    exit 1
fi
CHECK="$(dirname "$0")/check_figures.py"
# check_figs DIR JSON METRIC: check_figures.py on DIR's figures.
check_figs() {
    if python3 "$CHECK" svg "$TMP/$1/figure2.svg" "$TMP/$1/figure3.svg" \
            "$TMP/$1/table.csv" "$TMP/$2" "$3" >"$TMP/check" 2>&1; then
        ok "figures of $1 ($3): $(grep -c '^ok' "$TMP/check") checks"
    else
        fail "figures of $1:"
        sed 's/^/    /' "$TMP/check"
    fi
}
check_figs r/sub grid.json top5
check_figs m-final grid.json final
check_figs m-top3 grid.json top3
check_figs few few.json top5
check_figs tiny tiny.json top5
check_figs high high.json best

# Headless Chromium renders both figures: not blank, both plot areas drawn.
if ! command -v chromium >/dev/null; then
    echo "note: chromium not found, skipping the Chromium rendering checks"
else
    mkdir -p "$TMP/home"
    for fig in figure2 figure3; do
        svg=$TMP/r/sub/$fig.svg
        w=$(grep -o '<svg [^>]*' "$svg" | grep -o 'width="[0-9]*"' |
            cut -d'"' -f2)
        h=$(grep -o '<svg [^>]*' "$svg" | grep -o 'height="[0-9]*"' |
            cut -d'"' -f2)
        HOME=$TMP/home timeout 180 chromium --headless --disable-gpu \
            --no-sandbox --hide-scrollbars --user-data-dir="$TMP/home/c" \
            --screenshot="$TMP/chromium-$fig.png" --window-size="$w,$h" \
            "file://$svg" >"$TMP/chromium.log" 2>&1
        if [ ! -s "$TMP/chromium-$fig.png" ]; then
            fail "chromium did not render $fig:"
            tail -5 "$TMP/chromium.log" | sed 's/^/    /'
        elif python3 "$CHECK" png "$TMP/chromium-$fig.png" "$svg" 1 \
                >"$TMP/check" 2>&1; then
            ok "chromium renders $fig ($(grep -c '^ok' "$TMP/check") checks)"
        else
            fail "chromium's $fig:"
            sed 's/^/    /' "$TMP/check"
        fi
    done
fi

if ! command -v rsvg-convert >/dev/null; then
    echo "note: rsvg-convert not found, skipping the rendering checks"
    [ "$failures" -eq 0 ] && exit 77
    exit 1
fi

# png_size FILE: "WIDTH HEIGHT" from the IHDR chunk, or nothing when FILE
# does not start with the PNG signature.
png_size() {
    od -An -tu1 -N24 "$1" | tr -s ' \n' '  ' | awk '{
        if ($1 != 137 || $2 != 80 || $3 != 78 || $4 != 71 || $5 != 13 ||
            $6 != 10 || $7 != 26 || $8 != 10) exit
        print $17 * 16777216 + $18 * 65536 + $19 * 256 + $20,
              $21 * 16777216 + $22 * 65536 + $23 * 256 + $24 }'
}

# An empty white page of the same size: what "blank" compresses to.
printf '<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600">%s</svg>\n' \
    '<rect width="800" height="600" fill="#ffffff"/>' >"$TMP/blank.svg"
rsvg-convert -w 800 -h 600 "$TMP/blank.svg" -o "$TMP/blank.png"
blank=$(stat -c %s "$TMP/blank.png")

# The check must catch a malformed file: a truncated figure does not render.
head -c 2000 "$TMP/r/sub/figure2.svg" >"$TMP/truncated.svg"
rsvg-convert -w 800 -h 600 "$TMP/truncated.svg" -o "$TMP/truncated.png" \
    2>/dev/null && fail "rsvg-convert rendered a truncated SVG"

for fig in "$TMP/r/sub/figure2.svg" "$TMP/r/sub/figure3.svg" \
        "$TMP/m-final/figure3.svg"; do
    png=${fig%.svg}-800.png
    name=${fig#"$TMP/"}
    if ! rsvg-convert -w 800 -h 600 "$fig" -o "$png" 2>"$TMP/err"; then
        fail "$name does not render: $(cat "$TMP/err")"
        continue
    fi
    size=$(stat -c %s "$png" 2>/dev/null || echo 0)
    dims=$(png_size "$png")
    if [ "$dims" != "800 600" ]; then
        fail "$name: PNG signature or size wrong: '$dims'"
    elif [ "$size" -lt 8000 ] || [ "$size" -lt $((blank * 10)) ]; then
        fail "$name: PNG of $size bytes looks blank (blank page: $blank)"
    else
        ok "$name renders (800x600, $size bytes)"
    fi
done

# The report's own PNGs, through rsvg-convert at twice the SVG's size.
for fig in figure2 figure3; do
    python3 "$CHECK" png "$TMP/r/sub/$fig.png" "$TMP/r/sub/$fig.svg" 2 \
        >"$TMP/check" 2>&1 &&
        ok "report's $fig.png ($(grep -c '^ok' "$TMP/check") checks)" || {
        fail "report's $fig.png:"
        sed 's/^/    /' "$TMP/check"
    }
done

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all report checks passed"
