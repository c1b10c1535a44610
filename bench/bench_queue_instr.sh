#!/bin/bash
# The coordinator's instructions per job in the queue's drain, counted by
# valgrind's callgrind for one or more tfq builds in the same run: a figure
# that, unlike jobs/s, does not move with what else the machine is doing.
#
# For each build: a coordinator under callgrind, N sleep jobs (sleep_ms = 0)
# submitted, the counters zeroed, W `tfq worker --exit-when-idle` processes
# drain the grid, the counters dumped.  Only the drain is counted: the
# submit, start-up and shut-down are not.
#
# Usage: bench_queue_instr.sh N_JOBS N_WORKERS TFQ [TFQ ...]
# Environment: INSTR_KEEP=DIR copies each build's callgrind profile of the
#   drain there (cg-1.out, cg-2.out, ...) for callgrind_annotate.
# Prints, per build, "instr_per_job: TFQ VALUE", then each build's ratio to
# the first ("ratio: TFQ VALUE").  Exit status 1 when a drain did not finish.
set -u
N="${1:?usage: bench_queue_instr.sh N_JOBS N_WORKERS TFQ [TFQ ...]}"
W="${2:?usage: bench_queue_instr.sh N_JOBS N_WORKERS TFQ [TFQ ...]}"
shift 2
[ $# -ge 1 ] || { echo "usage: bench_queue_instr.sh N_JOBS N_WORKERS TFQ [TFQ ...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-instr-XXXXXX")
trap 'pkill -9 -f "$DIR" 2>/dev/null; rm -rf "$DIR"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
     "($(grep -o -w -m1 avx512f /proc/cpuinfo || grep -o -w -m1 avx2 /proc/cpuinfo || echo 'no avx2'))"
echo "jobs: $N  workers: $W"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) {
    if (i) print "---"; printf "name = j%d\nkind = sleep\nsleep_ms = 0\n", i } }' \
    >"$DIR/instr.txt"

# count TFQ -> instructions of the drain
count() {
    local tfq st out vg ep
    tfq=$(readlink -f "$1")
    st="$DIR/st-$RANDOM"
    out="$DIR/cg-$RANDOM.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$tfq" coordinator --state "$st" --bind 'tcp://127.0.0.1:*' \
        2>"$DIR/coord.log" &
    vg=$!
    for _ in $(seq 600); do [ -s "$st/endpoint" ] && break; sleep 0.1; done
    [ -s "$st/endpoint" ] || { echo "coordinator did not start" >&2; tail -5 "$DIR/coord.log" >&2; return 1; }
    ep=$(cat "$st/endpoint")
    "$tfq" submit "$DIR/instr.txt" --connect "$ep" \
        >/dev/null || return 1
    callgrind_control -z "$vg" >/dev/null 2>&1
    local pids=()
    for i in $(seq "$W"); do
        "$tfq" worker --connect "$ep" --name "instr-w$i" --exit-when-idle \
            2>>"$DIR/w.log" &
        pids+=("$!")
    done
    wait "${pids[@]}"
    callgrind_control -d "$vg" >/dev/null 2>&1
    local done
    done=$("$tfq" status instr --connect "$ep" --json |
           python3 -c 'import json,sys; print(json.load(sys.stdin)["done"])' 2>/dev/null)
    kill -TERM "$vg"; wait "$vg" 2>/dev/null
    [ "$done" = "$N" ] || { echo "$1: $done of $N jobs succeeded" >&2; return 1; }
    # The dump made by -d is the drain; the final one (at exit) is not.
    local f
    f=$(ls "$out".* 2>/dev/null | sort | head -1)
    if [ -n "${INSTR_KEEP:-}" ]; then
        mkdir -p "$INSTR_KEEP"
        cp "$f" "$INSTR_KEEP/cg-$2.out"
    fi
    sed -n 's/^summary: *//p' "$f" | awk '{print $1}'
}

first=""
declare -a RES
k=0
for t in "$@"; do
    k=$((k + 1))
    ir=$(count "$t" "$k") || exit 1
    ipj=$(awk -v a="$ir" -v n="$N" 'BEGIN { printf "%.0f", a / n }')
    echo "instr_per_job: $t $ipj"
    RES+=("$t $ipj")
    [ -n "$first" ] || first=$ipj
done
for r in "${RES[@]}"; do
    set -- $r
    awk -v t="$1" -v v="$2" -v f="$first" 'BEGIN { printf "ratio: %s %.3f\n", t, v / f }'
done
