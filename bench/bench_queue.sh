#!/bin/bash
# The queue's throughput benchmark: N sleep jobs (sleep_ms = 0, no deps)
# drained by W workers on loopback through the real coordinator and its
# SQLite store, every state change committed before it is acknowledged.
#
# Usage: bench_queue.sh [--kill-check] TFQ [N_JOBS] [N_WORKERS]
#   N_JOBS     jobs (default 100000)
#   N_WORKERS  `tfq worker --exit-when-idle` processes (default 4)
#   --kill-check  kill -9 the coordinator once during the drain, restart it
#                 on the same endpoint, and check every job still succeeds
#                 exactly once.
# Environment:
#   BENCH_CHUNK      jobs per submitted file (default 10000): one `submit`
#                    carries at most 1 MiB of job text (PROTOCOL.md, `spec`),
#                    about 23,000 of these jobs, so the grid "bench" is
#                    submitted in chunks of BENCH_CHUNK jobs, each growing it
#   BENCH_TIMEOUT_S  give up on the drain after this long (default 900): the
#                    workers are stopped and the rate so far is reported
#   BENCH_KEEP=1     keep the state directory (for perf or sqlite3 after)
#   BENCH_DIR        state/work directory (default: a new one under TMPDIR)
#   BENCH_BESIDE     a command run beside the drain, from its start to the
#                    end of the run, with EP (the coordinator) and DIR in its
#                    environment: e.g. a dashboard and its pollers
#                    (bench_dashboard.sh)
#
# Prints one "key: value" line per figure, then "PASS" when every job
# succeeded exactly once, or "FAIL: why" (exit status 1).
set -u

KILL_CHECK=0
if [ "${1:-}" = "--kill-check" ]; then
    KILL_CHECK=1
    shift
fi
TFQ="${1:?usage: bench_queue.sh [--kill-check] TFQ [N_JOBS] [N_WORKERS]}"
N="${2:-100000}"
W="${3:-4}"
CHUNK="${BENCH_CHUNK:-10000}"
TIMEOUT_S="${BENCH_TIMEOUT_S:-900}"
TFQ=$(readlink -f "$TFQ")
DIR="${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tfq-bench-XXXXXX")}"
mkdir -p "$DIR"
ST="$DIR/st"
TCK=$(getconf CLK_TCK)
PIDS=()
WPIDS=()

BESIDE=
cleanup() {
    [ -n "$BESIDE" ] && kill -9 -- "-$BESIDE" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$DIR"/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -5 "$f"; }
    done
    exit 1
}
. "$(dirname "$0")/../tests/lib_queue.sh" # q, check_once
now_ns() { date +%s%N; }
# CPU time of a live process in clock ticks (utime + stime), 0 when gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# User and system seconds of the waited-for children (second line of times).
# (times must run in this shell: a subshell has no children of its own.)
children_cpu() {
    times >"$DIR/times"
    sed -n 2p "$DIR/times" | tr 'ms' '  ' | awk '{print $1 * 60 + $2, $3 * 60 + $4}'
}
# Busy and total clock ticks of the whole machine (every CPU), from /proc/stat.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# Seconds between two nanosecond stamps, 3 decimals.
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }

# start_coord [BIND]: sets COORD and EP.
start_coord() {
    local bind="${1:-tcp://127.0.0.1:*}"
    rm -f "$ST/endpoint"
    "$TFQ" coordinator --state "$ST" --bind "$bind" 2>>"$DIR/coord.log" &
    COORD=$!
    PIDS+=("$COORD")
    for _ in $(seq 200); do
        [ -s "$ST/endpoint" ] && break
        sleep 0.05
    done
    [ -s "$ST/endpoint" ] || fail "coordinator did not start"
    EP=$(cat "$ST/endpoint")
}

# The job files: CHUNK jobs each, names distinct across all of them.
rm -f "$DIR"/jobs-*.txt
awk -v n="$N" -v c="$CHUNK" -v d="$DIR" 'BEGIN {
    for (i = 0; i < n; i++) {
        f = sprintf("%s/jobs-%04d.txt", d, int(i / c))
        if (i % c) print "---" > f
        printf "name = j%d\nkind = sleep\nsleep_ms = 0\n", i > f
        if (i % c == c - 1) close(f)
    }
}'

start_coord
COORD_CPU=0 # ticks of coordinators that are gone (kill check)

t0=$(now_ns)
for f in "$DIR"/jobs-*.txt; do
    "$TFQ" submit "$f" --as bench --connect "$EP" >/dev/null 2>>"$DIR/submit.log" ||
        fail "submit $f"
done
t1=$(now_ns)
SUBMIT_S=$(secs "$t0" "$t1")
[ "$(q "select count(*) from jobs where state = 'ready'")" = "$N" ] ||
    fail "not $N jobs ready after submit"

# status --json of the grid (all N jobs), median of 9.
status_median_ms() {
    local runs=()
    for _ in $(seq 9); do
        local a b
        a=$(now_ns)
        "$TFQ" status bench --connect "$EP" --json >/dev/null || fail "status"
        b=$(now_ns)
        runs+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f", (b - a) / 1e6}')")
    done
    printf '%s\n' "${runs[@]}" | sort -g | sed -n 5p
}
STATUS_MS=$(status_median_ms)

# The drain.
c0=$(cpu_ticks "$COORD")
children_cpu >"$DIR/cpu0"
read -r mb0 mt0 < <(machine_ticks)
read -r wu0 ws0 <"$DIR/cpu0"
if [ -n "${BENCH_BESIDE:-}" ]; then
    # in a session of its own, so that its children go with it at the end
    EP=$EP DIR=$DIR setsid bash -c "$BENCH_BESIDE" >>"$DIR/beside.log" 2>&1 &
    BESIDE=$!
    for _ in $(seq 600); do # it says "ready" when it polls
        grep -q '^ready' "$DIR/beside.log" 2>/dev/null && break
        sleep 0.05
    done
    grep -q '^ready' "$DIR/beside.log" || fail "BENCH_BESIDE did not get ready"
fi
t2=$(now_ns)
for i in $(seq "$W"); do
    "$TFQ" worker --connect "$EP" --name "bench-w$i" --exit-when-idle \
        2>>"$DIR/w$i.log" &
    WPIDS+=("$!")
    PIDS+=("$!")
done

KILLED=0
last_report=$t2
while :; do
    alive=0
    for p in "${WPIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    t=$(now_ns)
    if [ $KILL_CHECK = 1 ] && [ $KILLED = 0 ] &&
        [ "$(q "select count(*) >= $N / 3 from jobs where state = 'succeeded'")" = 1 ]; then
        done_before=$(q "select count(*) from jobs where state = 'succeeded'")
        COORD_CPU=$((COORD_CPU + $(cpu_ticks "$COORD")))
        kill -9 "$COORD"
        wait "$COORD" 2>/dev/null
        echo "kill -9 coordinator at $done_before jobs done, $(secs "$t2" "$t") s into the drain"
        FIXED="$EP"
        start_coord "$FIXED"
        [ "$EP" = "$FIXED" ] || fail "restarted coordinator on $EP, not $FIXED"
        KILLED=1
    fi
    if [ $(((t - last_report) / 1000000000)) -ge 10 ]; then
        d=$(q "select count(*) from jobs where state = 'succeeded'")
        echo "  ... $(secs "$t2" "$t") s: $d jobs done"
        last_report=$t
    fi
    if [ $(((t - t2) / 1000000000)) -ge "$TIMEOUT_S" ]; then
        echo "drain timeout after $TIMEOUT_S s: stopping the workers"
        TIMED_OUT=1
        for p in "${WPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
        break
    fi
    sleep 0.2
done
t3=$(now_ns)
for p in "${WPIDS[@]}"; do wait "$p" 2>/dev/null; done
COORD_CPU=$((COORD_CPU + $(cpu_ticks "$COORD") - c0))
# Children's CPU: the workers (and the few sqlite3/sleep probes above).
children_cpu >"$DIR/cpu1"
read -r mb1 mt1 < <(machine_ticks)
read -r wu1 ws1 <"$DIR/cpu1"
DRAIN_S=$(secs "$t2" "$t3")
DONE=$(q "select count(*) from jobs where state = 'succeeded'")

echo "jobs: $N"
echo "workers: $W"
echo "submit_s: $SUBMIT_S (one grid of $N jobs, in $(( (N + CHUNK - 1) / CHUNK )) submits of <= $CHUNK)"
# The drain ends with the last result committed (the workers then take up
# to a poll interval, COORD_RETRY_MS, to see that nothing is left and go).
LAST_MS=$(q "select max(finished_ms) from attempts where state = 'succeeded'")
LAST_S=$(awk -v a="$t2" -v b="$LAST_MS" 'BEGIN {printf "%.3f", b / 1e3 - a / 1e9}')
echo "drain_s: $LAST_S to the last result, $DRAIN_S until the workers exited"
echo "jobs_done: $DONE"
awk -v n="$DONE" -v s="$LAST_S" -v w="$DRAIN_S" 'BEGIN {printf "jobs_per_s: %.1f (%.1f counting the workers\x27 exit)\n", n / s, n / w}'
awk -v c="$COORD_CPU" -v t="$TCK" -v n="$DONE" -v s="$DRAIN_S" 'BEGIN {
    printf "coord_cpu_s: %.2f (%.0f%% of one core)\n", c / t, 100 * c / t / s
    if (n > 0) printf "coord_cpu_us_per_job: %.0f\n", 1e6 * c / t / n }'
awk -v u0="${wu0:-0}" -v s0="${ws0:-0}" -v u1="$wu1" -v s1="$ws1" -v n="$DONE" 'BEGIN {
    printf "workers_cpu_s: %.2f user + %.2f sys\n", u1 - u0, s1 - s0
    if (n > 0) printf "workers_cpu_us_per_job: %.0f\n", 1e6 * (u1 - u0 + s1 - s0) / n }'
# The machine may be shared: what everything on it used during the drain.
awk -v b="$((mb1 - mb0))" -v t="$((mt1 - mt0))" -v c="$COORD_CPU" -v u0="${wu0:-0}" -v s0="${ws0:-0}" -v u1="$wu1" -v s1="$ws1" -v tck="$TCK" -v ncpu="$(nproc)" 'BEGIN {
    if (t > 0) printf "machine_busy: %.0f%% of %d CPUs during the drain (%.0f%% by other processes)\n", 100 * b / t, ncpu, 100 * (b - c - (u1 - u0 + s1 - s0) * tck) / t }'
echo "status_json_ms_median_of_9 (tfq status bench --json, before drain, $N queued): $STATUS_MS"
echo "status_json_ms_median_of_9 (after drain): $(status_median_ms)"
echo "db_bytes: $(du -cb "$ST"/tfq.db* | tail -1 | cut -f1)"
echo "events: $(q "select count(*) from events")"
if [ -n "$BESIDE" ]; then
    echo "beside_requests_answered: $(cat "$DIR"/poller-*.count 2>/dev/null | awk '{s += $1} END {print s + 0}')"
fi
[ "${TIMED_OUT:-0}" = 1 ] && fail "drain did not finish in $TIMEOUT_S s"
[ $KILL_CHECK = 1 ] && [ $KILLED = 0 ] && fail "the coordinator was never killed"

# Every job succeeded exactly once.
check_once
echo "attempts_not_succeeded: $(q "select group_concat(state || '=' || c) from (select state, count(*) c from attempts where state != 'succeeded' group by state)")"
echo PASS
