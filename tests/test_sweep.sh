#!/bin/bash
# A swept grid end to end, on a real coordinator and worker: train: {lr:
# [0.01, 0.001], init: [he, caffe]} expands to the product (submit
# --dry-run counts each combination), each job carries its combination in
# the store's sweep column, in tfq results and under its name, a derived
# net copies the base of its own combination; tfq report writes a report
# per combination and a table with a column per swept key, --where
# chooses one (and names what it knows when it cannot); adding a value to
# a list and submitting again runs only the new combination's nets.
# Usage: test_sweep.sh PATH-TO-TFQ
set -u
TFQ=$(realpath "${1:?usage: test_sweep.sh PATH-TO-TFQ}")
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-sweep-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness sweep

[ -d /usr/share/datasets/fashion-mnist ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }

# grid LRS: the swept grid with lr's list LRS (3 nets per combination).
grid() {
    cat <<YAML
name: sw
dataset: {kind: fashion-mnist, limit_train: 300, limit_test: 100}
train: {epochs: 1, lr: [$1], init: [he, caffe]}
splits: {random: [0]}
directions: A->B
layers: 1
variants: [transfer]
finetune: frozen
metric: final
YAML
}
grid "0.01, 0.001" >"$DIR/sw.yaml"
grid "0.01, 0.001, 0.010e1" >"$DIR/grown.yaml"

"$TFQ" submit "$DIR/sw.yaml" --dry-run >"$DIR/dry.txt" 2>"$DIR/err.log" || fail "dry run: $(cat "$DIR/err.log")"
for want in "sweep lr=0.01/init=he: 3 jobs" "sweep lr=0.001/init=caffe: 3 jobs" \
            "^12 jobs" "^lr=0.001/init=caffe/random0/1/A1B "; do
    grep -q "$want" "$DIR/dry.txt" || fail "dry run lacks '$want': $(cat "$DIR/dry.txt")"
done
echo "ok: --dry-run shows the expansion, 3 jobs per combination"

"$TFQ" coordinator --state "$DIR/st" --bind 'tcp://127.0.0.1:*' 2>>"$DIR/coord.log" &
PIDS+=("$!")
poll 60 test -s "$DIR/st/endpoint" || fail "coordinator did not start within 60 s"
EP=$(cat "$DIR/st/endpoint")
"$TFQ" submit "$DIR/sw.yaml" --connect "$EP" >/dev/null || fail "submit"
run_worker() {
    "$TFQ" worker --connect "$EP" --name "$1" --exit-when-idle 2>>"$DIR/$1.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_exit 600 "$pid" "$1" || fail "worker $1 exited $?"
}
run_worker w1
check_once

is "select group_concat(s, ' ') from (select distinct sweep s from jobs order by id)" \
   "lr=0.01/init=he lr=0.01/init=caffe lr=0.001/init=he lr=0.001/init=caffe" ||
    fail "the store's sweep column: $(q "select name, sweep from jobs")"
is "select count(*) from jobs where name not like sweep || '/random0/1/%'" 0 ||
    fail "a name does not start with its sweep"
is "select count(*) from jobs j join jobs b on b.id = j.init_from where j.sweep is not b.sweep" 0 ||
    fail "a transfer net copies another combination's base"
is "select count(*) from jobs where init_from is not null" 4 || fail "not 4 transfer nets"
is "select count(distinct identity) from jobs" 12 || fail "two combinations share an identity"
grep -q "weight_init = caffe" <<<"$(q "select spec from jobs where sweep = 'lr=0.001/init=caffe' limit 1")" ||
    fail "a caffe job's spec has no weight_init"
q "select spec from jobs where sweep = 'lr=0.01/init=he' limit 1" | grep -q weight_init &&
    fail "a he job's spec names weight_init (its identity would change)"
echo "ok: the store's sweep column, names and bases per combination"

"$TFQ" results sw --csv --connect "$EP" >"$DIR/results.csv" || fail "results --csv"
head -1 "$DIR/results.csv" | grep -q ",seed,sweep," || fail "results --csv has no sweep column: $(head -1 "$DIR/results.csv")"
grep -q ',1,lr=0.001/init=caffe,final,' "$DIR/results.csv" || fail "results --csv: no lr=0.001/init=caffe row"
"$TFQ" results sw --json --connect "$EP" | grep -q '"sweep":"lr=0.01/init=he"' || fail "results --json has no sweep"
"$TFQ" results sw --connect "$EP" | grep -q "lr=0.01/init=caffe" || fail "the results table has no sweep"
"$TFQ" results sw --curves --csv --connect "$EP" | head -1 | grep -q ",sweep," || fail "curves have no sweep column"
echo "ok: results and curves show the sweep"

"$TFQ" report sw -o "$DIR/rep" --connect "$EP" >"$DIR/rep.txt" 2>"$DIR/err.log" || fail "report: $(cat "$DIR/err.log")"
for c in lr=0.01/init=he lr=0.01/init=caffe lr=0.001/init=he lr=0.001/init=caffe; do
    for f in figure2.svg figure3.svg table.md table1.csv; do
        [ -s "$DIR/rep/$c/$f" ] || fail "report: no $c/$f"
    done
    grep -q "^setting $c$" "$DIR/rep.txt" || fail "report's summary lacks setting $c"
done
grep -q "^| lr | init | similarity |" "$DIR/rep/table.md" || fail "table.md has no column per swept key: $(cat "$DIR/rep/table.md")"
[ "$(grep -c '^| 0.001 | caffe | random | ' "$DIR/rep/table.md")" = 2 ] || fail "table.md: not 2 points of lr=0.001 init=caffe"
head -1 "$DIR/rep/table.csv" | grep -q "^lr,init,similarity," || fail "table.csv has no column per swept key"
echo "ok: a report per setting combination, and the table of them all"

"$TFQ" report sw -o "$DIR/one" --where lr=0.0010 --where init=caffe --connect "$EP" >"$DIR/one.txt" 2>"$DIR/err.log" ||
    fail "report --where: $(cat "$DIR/err.log")"
[ -s "$DIR/one/figure2.svg" ] && [ ! -e "$DIR/one/lr=0.001" ] || fail "--where of one combination: not one report in DIR"
grep -q "grid sw lr=0.001/init=caffe, metric final: 3 finished runs" "$DIR/one.txt" || fail "--where: $(head -3 "$DIR/one.txt")"
"$TFQ" report sw -o "$DIR/two" --where init=he --connect "$EP" >/dev/null 2>&1 || fail "report --where init=he"
[ -d "$DIR/two/lr=0.01/init=he" ] && [ -d "$DIR/two/lr=0.001/init=he" ] && [ ! -e "$DIR/two/lr=0.01/init=caffe" ] ||
    fail "--where init=he: not the two he combinations"
expect_error() {
    "$TFQ" report sw -o "$DIR/bad" "$@" --connect "$EP" >/dev/null 2>"$DIR/err.log"
    [ $? = 1 ] || fail "report $*: not refused"
}
expect_error --where lr=0.5
grep -q "0.5 is not one of the grid's values of lr (0.01, 0.001)" "$DIR/err.log" || fail "--where lr=0.5: $(cat "$DIR/err.log")"
expect_error --where momentum=0.9
grep -q "the grid sweeps no 'momentum' (its swept keys: lr, init)" "$DIR/err.log" || fail "--where momentum: $(cat "$DIR/err.log")"
expect_error --where lr
grep -q "expected KEY=VALUE" "$DIR/err.log" || fail "--where lr: $(cat "$DIR/err.log")"
echo "ok: --where chooses, and names what it knows"

# Growth: a third lr (0.1, written 0.010e1) runs its 6 nets and nothing else.
"$TFQ" submit "$DIR/grown.yaml" --dry-run | grep -q "sweep lr=0.1/init=caffe: 3 jobs" || fail "the grown grid's value is not canonical"
"$TFQ" submit "$DIR/grown.yaml" --connect "$EP" >"$DIR/grow.txt" || fail "submit the grown grid"
grep -q "6 jobs added, 0 reused, 12 already there" "$DIR/grow.txt" || fail "growth: $(cat "$DIR/grow.txt")"
before=$(q "select max(attempt_rowid) from (select rowid attempt_rowid from attempts)")
run_worker w2
check_once
is "select count(*) from attempts where rowid > $before and job_id in (select id from jobs where sweep not like 'lr=0.1/%')" 0 ||
    fail "growth ran an old combination's net again"
is "select count(*) from attempts where rowid > $before and state = 'succeeded'" 6 || fail "growth did not run the 6 new nets"
echo "ok: growing a list runs only the new nets"
echo "ok: sweep"
