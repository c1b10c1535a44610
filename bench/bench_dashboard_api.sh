#!/bin/bash
# The dashboard's API on a grid of N sleep jobs (no workers): the median
# latency of /api/jobs?grid=big&page=1 and of /metrics, uncached (one
# request every 1.2 s, past the dashboard's one-second cache: each asks
# the coordinator) and cached (hey, C connections, many requests).
# Usage: bench_dashboard_api.sh TFQ [N_JOBS] [SAMPLES] [C]
#   defaults: 100000 jobs, 15 uncached samples, 8 connections
set -u
TFQ=$(readlink -f "${1:?usage: bench_dashboard_api.sh TFQ [N_JOBS] [SAMPLES] [C]}")
N="${2:-100000}"
SAMPLES="${3:-15}"
C="${4:-8}"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-dash-bench-XXXXXX")
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
     "($(grep -o -w -m1 avx512f /proc/cpuinfo || grep -o -w -m1 avx2 /proc/cpuinfo || echo 'no avx2')), $(nproc) CPUs"
"$TFQ" coordinator --state "$DIR/st" --bind 'tcp://127.0.0.1:*' 2>"$DIR/coord.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$DIR/st/endpoint" ] && break; sleep 0.05; done
EP=$(cat "$DIR/st/endpoint")
# a job file holds at most 1 MiB: chunks of 20,000
awk -v n="$N" -v d="$DIR" 'BEGIN { for (i = 0; i < n; i++) {
    f = sprintf("%s/jobs-%03d.txt", d, int(i / 20000)); if (i % 20000) print "---" > f
    printf "name = j%d\nkind = sleep\nsleep_ms = 0\n", i > f } }'
for f in "$DIR"/jobs-*.txt; do
    "$TFQ" submit "$f" --as big --connect "$EP" >/dev/null || { echo "FAIL: submit"; exit 1; }
done
"$TFQ" dashboard --connect "$EP" --listen 127.0.0.1:0 --url-file "$DIR/url" 2>"$DIR/dash.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$DIR/url" ] && break; sleep 0.05; done
URL=$(cat "$DIR/url")
median() { sort -g | awk '{v[NR] = $1} END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "jobs: $N (one grid)"
for r in "api/jobs?grid=big&page=1" "metrics"; do
    for _ in $(seq "$SAMPLES"); do
        sleep 1.2
        curl -s -o /dev/null -w '%{time_total}\n' "$URL$r"
    done | awk '{print $1 * 1000}' | median | xargs printf "uncached_ms_median_of_$SAMPLES /$r: %s\n"
    hey -n 5000 -c "$C" "$URL$r" >"$DIR/hey.txt" 2>&1
    printf "cached /%s (hey -n 5000 -c %s): median %s ms, p99 %s ms, %s req/s\n" "$r" "$C" \
        "$(awk '/50% in/ {print $3 * 1000}' "$DIR/hey.txt")" \
        "$(awk '/99% in/ {print $3 * 1000}' "$DIR/hey.txt")" \
        "$(awk '/Requests\/sec/ {print $2}' "$DIR/hey.txt")"
done
