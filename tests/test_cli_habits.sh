#!/bin/bash
# The habits every tfq command shares, on the real binary and a real
# coordinator on loopback: -h, --help and tfq help CMD (the same text),
# TFQ_CONNECT, the exit-code table (README "Exit codes"), status's counts
# and --watch --json, submit --as and its deprecated --grid, and --csv
# (read by Python's csv module) beside every --json (read by json).
# Usage: test_cli_habits.sh PATH-TO-TFQ
#
# Prints "ok: ..." or "FAIL: ..." per check and exits 1 if any failed.
set -u

TFQ=$(realpath "${1:?usage: test_cli_habits.sh PATH-TO-TFQ}")
COMMANDS="train bench coordinator worker submit status results cancel retry
workers checkpoint run report keygen"

. "$(dirname "$0")/lib_queue.sh"
. "$(dirname "$0")/lib_check.sh"
check_tmp habits
unset TFQ_CONNECT

# ---- help -------------------------------------------------------------------

for c in $COMMANDS; do
    n=0
    for how in "$c -h" "$c --help" "help $c"; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        expect "tfq $how" 0 -- $how || continue
        [ -s "$TMP/err" ] && fail "tfq $how wrote to stderr: $(cat "$TMP/err")"
        cp "$TMP/out" "$TMP/help$n"
    done
    cmp -s "$TMP/help1" "$TMP/help3" || fail "tfq $c -h and tfq help $c differ"
    cmp -s "$TMP/help2" "$TMP/help3" || fail "tfq $c --help and tfq help $c differ"
    head -1 "$TMP/help3" | grep -q "^usage: tfq $c " ||
        fail "tfq help $c does not start with 'usage: tfq $c': $(head -1 "$TMP/help3")"
    grep -q $'\033' "$TMP/help3" && fail "tfq help $c holds a terminal escape"
    # the usage of a command that talks to a coordinator says where
    case $c in
    worker | submit | status | results | cancel | retry | workers | checkpoint | report)
        grep -q -- "--connect ADDR .*(TFQ_CONNECT, else tcp://127.0.0.1:5555)" "$TMP/help3" ||
            fail "tfq help $c does not document --connect and TFQ_CONNECT"
        ;;
    esac
    rm -f "$TMP"/help[123]
    expect "tfq $c --no-such-flag" 2 "no-such-flag" -- "$c" --no-such-flag
done
expect "tfq help" 0 -- help
cp "$TMP/out" "$TMP/help-top"
expect "tfq --help" 0 -- --help
cmp -s "$TMP/help-top" "$TMP/out" || fail "tfq help and tfq --help differ"
expect "tfq help nosuch" 2 "unknown command 'nosuch'" -- help nosuch
expect "tfq help two commands" 2 "at most one COMMAND" -- help status results

# ---- usage errors: conflicts and stray arguments ----------------------------

expect "results --csv --json" 2 "--csv and --json conflict" -- results --csv --json
expect "run --csv --json" 2 "--csv and --json conflict" -- run quick --csv --json
expect "report --from-json --connect" 2 "--from-json and --connect conflict" -- \
    report --from-json - --connect tcp://127.0.0.1:1 -o "$TMP/rep"
expect "status GRID --grid GRID" 2 "at most one GRID" -- status a --grid b
expect "workers stray" 2 "unexpected argument 'extra'" -- workers extra
expect "coordinator stray" 2 "unexpected argument 'extra'" -- coordinator --state "$TMP/x" extra
expect "worker stray" 2 "unexpected argument 'extra'" -- worker extra
expect "bench stray" 2 "unexpected argument 'extra'" -- bench extra

# ---- TFQ_CONNECT, against a live coordinator --------------------------------

"$TFQ" coordinator --state "$TMP/st" --bind 'tcp://127.0.0.1:*' 2>>"$TMP/coord.log" &
PIDS+=($!)
poll 60 test -s "$TMP/st/endpoint" || { fail "coordinator did not start within 60 s"; exit 1; }
EP=$(cat "$TMP/st/endpoint")
DEAD=tcp://127.0.0.1:1 # a privileged port nothing here listens on

export TFQ_CONNECT=$EP
expect "status with TFQ_CONNECT" 0 -- status
grep -q "queued 0" "$TMP/out" || fail "status with TFQ_CONNECT: $(cat "$TMP/out")"
TFQ_CONNECT=$DEAD expect "--connect over TFQ_CONNECT" 0 -- status --connect "$EP"
TFQ_CONNECT=$DEAD expect "status, TFQ_CONNECT dead" 1 "$DEAD" -- status

# grid f: a job that fails, one blocked behind it, one that succeeds;
# grid c: one job, cancelled before any worker runs.
printf 'name = ok\nkind = sleep\nsleep_ms = 0\n---\nname = bad\nkind = sleep\nsleep_ms = 0\nfail_prob = 1\n---\nname = behind\nafter = bad\nkind = sleep\nsleep_ms = 0\n' >"$TMP/f.txt"
printf 'name = never\nkind = sleep\nsleep_ms = 0\n' >"$TMP/c.txt"
expect "submit --as" 0 -- submit "$TMP/f.txt" --as f
[ -s "$TMP/err" ] && fail "submit --as wrote to stderr: $(cat "$TMP/err")"
expect "submit --grid (deprecated)" 0 "deprecated: use --as NAME" -- submit "$TMP/c.txt" --grid c
grep -q "grid 'c'" "$TMP/out" || fail "submit --grid did not name the grid c: $(cat "$TMP/out")"
expect "cancel c" 0 -- cancel c
# status --grid: a hidden alias of the positional GRID
expect "status --grid c" 0 -- status --grid c --json
json_is() { python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$@"; }
json_is "$TMP/out" 'j["cancelled"] == 1 and j["failed"] == 0 and j["total"] == 1' ||
    fail "status --grid c: $(cat "$TMP/out")"

# a worker finds the coordinator through TFQ_CONNECT too
"$TFQ" worker --name w1 --exit-when-idle 2>>"$TMP/w1.log" &
W=$!
PIDS+=("$W")
wait_exit 300 "$W" "the worker (TFQ_CONNECT)" || fail "the worker exited $?: $(tail -5 "$TMP/w1.log")"

expect "status f --json" 0 -- status f --json
json_is "$TMP/out" 'j["done"] == 1 and j["failed"] == 1 and j["blocked"] == 1 and j["cancelled"] == 0 and j["total"] == 3' ||
    fail "status f --json: separate counts expected: $(cat "$TMP/out")"
expect "status f" 0 -- status f
grep -q "done 1  failed 1  blocked 1  cancelled 0" "$TMP/out" ||
    fail "status f: separate counts expected: $(cat "$TMP/out")"

# Every client finds the coordinator through TFQ_CONNECT: with it set to
# the live one, each gets the coordinator's answer (not "no answer"); with
# it set to a dead address, each exits 1 naming that address.  The dead
# ones wait out the reply timeout, all at once.
# (Grid t: retried while there is nothing to retry, then cancelled.)
CLIENTS=("submit $TMP/c.txt --as t" "status" "results f" "retry t" "cancel t"
         "workers" "checkpoint get ok -o $TMP/ck" "report f -o $TMP/rep-c")
for i in "${!CLIENTS[@]}"; do
    # shellcheck disable=SC2086
    "$TFQ" ${CLIENTS[$i]} >"$TMP/live$i.out" 2>"$TMP/live$i.err"
    grep -q "no answer" "$TMP/live$i.err" &&
        fail "tfq ${CLIENTS[$i]} with TFQ_CONNECT=$EP: $(cat "$TMP/live$i.err")"
    # shellcheck disable=SC2086
    (TFQ_CONNECT=$DEAD "$TFQ" ${CLIENTS[$i]} >"$TMP/dead$i.out" 2>"$TMP/dead$i.err"
     echo $? >"$TMP/dead$i.rc") &
    PIDS+=($!)
done
wait_all_dead() { for i in "${!CLIENTS[@]}"; do [ -s "$TMP/dead$i.rc" ] || return 1; done; }
poll 120 wait_all_dead || fail "clients against a dead TFQ_CONNECT still waiting after 120 s"
for i in "${!CLIENTS[@]}"; do
    c=${CLIENTS[$i]%% *}
    [ "$(cat "$TMP/dead$i.rc")" = 1 ] && grep -q "$DEAD" "$TMP/dead$i.err" &&
        ok "tfq $c follows TFQ_CONNECT" ||
        fail "tfq ${CLIENTS[$i]} with TFQ_CONNECT=$DEAD: exit $(cat "$TMP/dead$i.rc"): $(cat "$TMP/dead$i.err")"
done

# ---- exit codes of status --watch -------------------------------------------

expect "status --watch, failed jobs: 3" 3 -- status f --watch
grep -q "failed 1  blocked 1" "$TMP/out" || fail "status --watch f: $(cat "$TMP/out")"
expect "status --watch --json, failed jobs: 3" 3 -- status f --watch --json
[ "$(wc -l <"$TMP/out")" -ge 1 ] || fail "status --watch --json printed nothing"
while read -r line; do
    printf '%s\n' "$line" >"$TMP/line.json"
    json_is "$TMP/line.json" 'j["failed"] == 1 and j["blocked"] == 1 and isinstance(j["running_jobs"], list)' ||
        fail "status --watch --json: not one object a line: $line"
done <"$TMP/out"
expect "status --watch, cancelled only: 0" 0 -- status c --watch
TFQ_CONNECT=$DEAD expect "status --watch, coordinator gone: 1" 1 "$DEAD" -- status --watch

# ---- --csv wherever there is --json -----------------------------------------

# Every command that documents --json documents --csv too (report's
# --from-json reads JSON, it prints none).
for c in $COMMANDS; do
    "$TFQ" help "$c" >"$TMP/h" 2>&1
    if grep -Eq -- '^  (--json|--csv, --json) ' "$TMP/h"; then
        grep -Eq -- '^  --csv' "$TMP/h" && ok "tfq $c has --json and --csv" ||
            fail "tfq $c has --json but no --csv"
    fi
done
for c in status workers train bench; do
    expect "$c --csv --json" 2 "--csv and --json conflict" -- "$c" --csv --json
done

# csv_is FILE HEADER|- [ROWS]: FILE is CSV by Python's csv module, every row
# as wide as its header, the header HEADER (comma-separated; -: any) and
# ROWS rows under it when given.
csv_is() { /usr/bin/python3 -c 'import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
want = sys.argv[2]
good = len(rows) > 0 and (want == "-" or rows[0] == want.split(","))
good = good and all(len(r) == len(rows[0]) for r in rows)
if len(sys.argv) > 3:
    good = good and len(rows) - 1 == int(sys.argv[3])
sys.exit(0 if good else 1)' "$@"; }
# json_len FILE: the length of FILE's JSON array.
json_len() { python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$1"; }

COUNTS=queued,running,done,failed,blocked,cancelled,total,lost_attempts,failed_attempts
expect "status f --csv" 0 -- status f --csv
csv_is "$TMP/out" "$COUNTS" 1 && /usr/bin/python3 -c 'import csv, sys
r = next(csv.DictReader(open(sys.argv[1], newline="")))
sys.exit(0 if (r["done"], r["failed"], r["blocked"], r["total"]) == ("1", "1", "1", "3") else 1)' "$TMP/out" ||
    fail "status f --csv: $(cat "$TMP/out")"
expect "status --watch --csv, failed jobs: 3" 3 -- status f --watch --csv
csv_is "$TMP/out" "$COUNTS" || fail "status --watch --csv: one header, then lines: $(cat "$TMP/out")"
[ "$(grep -c '^queued,' "$TMP/out")" = 1 ] || fail "status --watch --csv: the header more than once"
for c in workers results; do
    expect "$c --json" 0 -- "$c" --json
    n=$(json_len "$TMP/out") || fail "$c --json is no JSON array: $(cat "$TMP/out")"
    expect "$c --csv" 0 -- "$c" --csv
    csv_is "$TMP/out" - "$n" || fail "$c --csv: not $n rows of CSV: $(cat "$TMP/out")"
done
expect "workers --csv" 0 -- workers --csv
csv_is "$TMP/out" worker,state,threads,running,done,seen_s_ago,last_seen_ms ||
    fail "workers --csv header: $(head -1 "$TMP/out")"
expect "bench --csv" 0 -- bench --csv --steps 1 --repeats 1 --batch 4
csv_is "$TMP/out" kernels,threads,batch,sgemm_gflops,train_images_per_s,train_gflops,ratio,nominal_flops_per_image 1 ||
    fail "bench --csv: $(cat "$TMP/out")"
expect "bench --json" 0 -- bench --json --steps 1 --repeats 1 --batch 4
json_is "$TMP/out" 'j["batch"] == 4 and j["train_images_per_s"] > 0' || fail "bench --json: $(cat "$TMP/out")"
if [ -d /usr/share/datasets/fashion-mnist ]; then
    TRAIN=(train --epochs 2 --limit-train 256 --limit-test 128 --quiet)
    expect "train --csv" 0 -- "${TRAIN[@]}" --csv
    csv_is "$TMP/out" epoch,epochs,train_loss,test_acc,images_per_s,epoch_s,eta_s 2 ||
        fail "train --csv: $(cat "$TMP/out")"
    expect "train --json" 0 -- "${TRAIN[@]}" --json
    json_is "$TMP/out" 'j["metric"] == "top3" and j["topk"] == 3 and abs(j["topk_acc"] - sum(sorted(j["test_acc"])[-3:]) / len(j["test_acc"][-3:])) < 1e-6' ||
        fail "train --json: metric top3 (the mean of the 3 best): $(cat "$TMP/out")"
    expect "train" 0 -- "${TRAIN[@]}"
    grep -Eq '^final_acc [0-9.]+  best_acc [0-9.]+  top3 [0-9.]+ ' "$TMP/out" ||
        fail "train names its metric top3: $(cat "$TMP/out")"
else
    echo "skip: train --csv/--json (no Fashion-MNIST)"
fi

# ---- exit codes of tfq run --------------------------------------------------

printf 'name = a\nkind = sleep\nsleep_ms = 0\n---\nname = b\nafter = a\nkind = sleep\nsleep_ms = 0\n' >"$TMP/good.txt"
(cd "$TMP" && "$TFQ" run good.txt --workers 1 --csv --state "$TMP/run-good" >"$TMP/out" 2>"$TMP/err")
rc=$?
[ "$rc" = 0 ] && ok "run, every job succeeded: 0" ||
    fail "run, every job succeeded: exit status $rc, expected 0: $(tail -5 "$TMP/err")"
# With --csv or --json, stdout is the results alone (submit and the
# progress go to stderr): a script reads it whole.
csv_is "$TMP/out" - 2 && ok "run --csv: stdout is 2 rows of CSV" ||
    fail "run --csv: stdout is not 2 rows of CSV: $(cat "$TMP/out")"
grep -q "jobs added" "$TMP/err" || fail "run --csv: submit's line is not on stderr"
(cd "$TMP" && "$TFQ" run good.txt --workers 1 --json --state "$TMP/run-json" >"$TMP/out" 2>"$TMP/err")
[ "$(json_len "$TMP/out")" = 2 ] && ok "run --json: stdout is a JSON array of 2 jobs" ||
    fail "run --json: $(cat "$TMP/out")"
(cd "$TMP" && "$TFQ" run f.txt --workers 1 --state "$TMP/run-f" >"$TMP/out" 2>"$TMP/err")
rc=$?
[ "$rc" = 3 ] && ok "run, a job failed: 3" ||
    fail "run, a job failed: exit status $rc, expected 3: $(tail -5 "$TMP/err")"
grep -q "behind.*blocked" "$TMP/out" || fail "run f.txt printed no results: $(cat "$TMP/out")"

[ "$failures" -eq 0 ] || exit 1
