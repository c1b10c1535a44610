#!/bin/bash
# What a dashboard costs the coordinator: the queue benchmark
# (bench_queue.sh) run ROUNDS times without a dashboard (A) and with one
# and BROWSERS pollers doing what the page does every second plus a
# /metrics scrape (B: dashboard_poller.sh), alternating, in the same run;
# prints bench_queue_ab.sh's medians and the ratio B / A.
# Usage: bench_dashboard.sh TFQ [N_JOBS] [N_WORKERS] [ROUNDS] [BROWSERS]
#   defaults: 20000 jobs, 4 workers, 5 rounds, 4 pollers
set -u
TFQ=$(readlink -f "${1:?usage: bench_dashboard.sh TFQ [N_JOBS] [N_WORKERS] [ROUNDS] [BROWSERS]}")
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_BESIDE_B="$HERE/dashboard_poller.sh $TFQ ${5:-4} 1" \
    exec bash "$HERE/bench_queue_ab.sh" "$TFQ" "$TFQ" "${2:-20000}" "${3:-4}" "${4:-5}"
