#!/bin/bash
# Beside bench_queue.sh's drain (BENCH_BESIDE): a tfq dashboard on the
# benchmark's coordinator ($EP) and BROWSERS pollers, each doing what the
# page does every POLL_S seconds (status, grids, the first page of jobs,
# workers, events) plus a Prometheus scrape of /metrics.  Prints "ready"
# once the dashboard answers; each poller keeps its count of answered
# requests in DIR/poller-N.count.  bench_queue.sh kills its session at the end.
# Usage: dashboard_poller.sh TFQ [BROWSERS] [POLL_S]
set -u
TFQ="${1:?usage: dashboard_poller.sh TFQ [BROWSERS] [POLL_S]}"
BROWSERS="${2:-4}"
POLL_S="${3:-1}"
: "${EP:?EP: the coordinator}" "${DIR:?DIR: a work directory}"
"$TFQ" dashboard --connect "$EP" --listen 127.0.0.1:0 \
    --url-file "$DIR/dashboard.url" 2>>"$DIR/dashboard.log" &
DASH=$!
PIDS=("$DASH")
trap 'kill "${PIDS[@]}" 2>/dev/null' EXIT
for _ in $(seq 600); do
    [ -s "$DIR/dashboard.url" ] && curl -sf "$(cat "$DIR/dashboard.url")api/status" >/dev/null && break
    sleep 0.05
done
URL=$(cat "$DIR/dashboard.url") || exit 1
echo ready
poll() {
    local n=0
    while :; do
        for r in api/status api/grids "api/jobs?grid=bench&page=1" \
                 api/workers api/events metrics; do
            curl -sf -o /dev/null "$URL$r" && n=$((n + 1))
        done
        echo "$n" >"$DIR/poller-$1.count"
        sleep "$POLL_S"
    done
}
for b in $(seq "$BROWSERS"); do
    poll "$b" &
    PIDS+=("$!")
done
wait "$DASH"
