#!/bin/bash
# Two tfq builds' queue throughput, measured in the same run: ROUNDS rounds,
# each running bench_queue.sh once with A and once with B (in alternating
# order, so that a machine that slows down over the run penalises neither),
# then the median jobs/s and coordinator CPU per job of each and the ratio
# B / A of the medians, and each round's own ratio.
#
# Usage: bench_queue_ab.sh TFQ_A TFQ_B [N_JOBS] [N_WORKERS] [ROUNDS]
#   defaults: 100000 jobs, 4 workers, 3 rounds
# BENCH_BESIDE_A / BENCH_BESIDE_B: bench_queue.sh's BENCH_BESIDE for A's
# or B's runs only (A and B may then be one build: bench_dashboard.sh).
# Prints "key: value" lines; exit status 1 when any run failed.
set -u
A="${1:?usage: bench_queue_ab.sh TFQ_A TFQ_B [N_JOBS] [N_WORKERS] [ROUNDS]}"
B="${2:?usage: bench_queue_ab.sh TFQ_A TFQ_B [N_JOBS] [N_WORKERS] [ROUNDS]}"
N="${3:-100000}"
W="${4:-4}"
ROUNDS="${5:-3}"
HERE="$(dirname "$0")"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
     "($(grep -o -w -m1 avx512f /proc/cpuinfo || grep -o -w -m1 avx2 /proc/cpuinfo || echo 'no avx2'))," \
     "$(nproc) CPUs"
echo "jobs: $N  workers: $W  rounds: $ROUNDS"
declare -a RA RB CA CB
ok=0
run() { # run TFQ BESIDE -> "jobs_per_s coord_us_per_job"
    local out
    out=$(BENCH_BESIDE="$2" bash "$HERE/bench_queue.sh" "$1" "$N" "$W" 2>&1)
    if ! grep -q '^PASS' <<<"$out"; then
        echo "FAIL ($1):" >&2
        tail -5 <<<"$out" >&2
        echo "0 0"
        return 1
    fi
    echo "$(sed -n 's/^jobs_per_s: \([0-9.]*\).*/\1/p' <<<"$out")" \
         "$(sed -n 's/^coord_cpu_us_per_job: \([0-9.]*\).*/\1/p' <<<"$out")"
}
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        read -r ja ca < <(run "$A" "${BENCH_BESIDE_A:-}") || ok=1
        read -r jb cb < <(run "$B" "${BENCH_BESIDE_B:-}") || ok=1
    else
        read -r jb cb < <(run "$B" "${BENCH_BESIDE_B:-}") || ok=1
        read -r ja ca < <(run "$A" "${BENCH_BESIDE_A:-}") || ok=1
    fi
    RA+=("$ja"); RB+=("$jb"); CA+=("$ca"); CB+=("$cb")
    awk -v r="$r" -v a="$ja" -v b="$jb" -v ca="$ca" -v cb="$cb" 'BEGIN {
        printf "round %d: A %.0f jobs/s (%s us/job), B %.0f jobs/s (%s us/job), B/A %.3f\n",
               r, a, ca, b, cb, (a > 0 ? b / a : 0) }'
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ma=$(median "${RA[@]}"); mb=$(median "${RB[@]}")
echo "A: $A"
echo "B: $B"
echo "median_jobs_per_s: A $ma  B $mb"
echo "median_coord_us_per_job: A $(median "${CA[@]}")  B $(median "${CB[@]}")"
awk -v a="$ma" -v b="$mb" 'BEGIN { printf "ratio_B_over_A: %.3f\n", (a > 0 ? b / a : 0) }'
exit $ok
