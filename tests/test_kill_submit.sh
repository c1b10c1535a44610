#!/bin/bash
# kill -9 of the coordinator while it takes a 20,000-job submit: at each
# moment (before the request arrives; early, halfway and late in the
# transaction; once it has logged the submit, before its batch commits;
# while the commit writes the WAL; while the checkpoint copies the WAL into
# the database; once the client has its answer), restarted, the grid is
# there whole or not at all and the database passes integrity_check;
# submitting again completes it, each job once, and a worker runs them.
# Usage: test_kill_submit.sh TFQ
set -u
TFQ=$(realpath "$1")
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-kill-submit-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness kill_submit

N=20000
ST="$DIR/st"
WAL="$ST/tfq.db-wal"

# start_coord: starts the coordinator on $ST; sets EP and COORD.
start_coord() {
    rm -f "$ST/endpoint"
    "$TFQ" coordinator --state "$ST" --bind "tcp://127.0.0.1:*" \
        2>>"$DIR/coord.log" &
    COORD=$!
    PIDS+=("$COORD")
    poll 60 test -s "$ST/endpoint" || fail "coordinator did not start within 60 s"
    EP=$(cat "$ST/endpoint")
}

# cpu_ticks PID: the process's CPU time so far (user + system, in clock
# ticks), read without forking.
cpu_ticks() {
    local f
    read -r -a f <"/proc/$1/stat" || return 1
    echo $((f[13] + f[14]))
}

size() { stat -c %s "$1" 2>/dev/null || echo 0; }

awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) { if (i) print "---"; printf "name = j%d\nkind = sleep\nsleep_ms = 0\n", i } }' >"$DIR/g.txt"

# The whole submit once, undisturbed: the coordinator's CPU time for it
# places the moments inside its transaction, however fast this machine is.
# submit_all OUT: submits the grid, its output in OUT.  tfq submit waits
# 10 s for its answer: a machine slow enough to take longer still stores
# the grid, which is then awaited in the store.
submit_all() {
    "$TFQ" submit "$DIR/g.txt" --as g --connect "$EP" >"$1" 2>&1 && return 0
    grep -q "no answer from the coordinator" "$1" || fail "submit: $(cat "$1")"
    poll 300 is "select count(*) from jobs" "$N" || fail "the submit, unanswered within 10 s, stored $(q "select count(*) from jobs") jobs within 300 s"
    echo "# (the submit was not answered within tfq submit's 10 s; the store has the grid)"
}

start_coord
T0=$(cpu_ticks "$COORD")
submit_all "$DIR/first.out"
TICKS=$(($(cpu_ticks "$COORD") - T0))
[ "$(q "select count(*) from jobs")" = "$N" ] || fail "the undisturbed submit stored $(q "select count(*) from jobs") jobs"
kill -9 "$COORD"
wait "$COORD" 2>/dev/null
echo "# the undisturbed submit took $TICKS ticks of the coordinator's CPU"
[ "$TICKS" -ge 10 ] || TICKS=10

# Conditions for the kill, tried every few milliseconds while the submit
# runs.  C0, W0, D0: the coordinator's CPU ticks, the WAL's and the
# database's sizes when the submit started.
at_start() { true; }
cpu_at() { [ $(($(cpu_ticks "$COORD") - C0)) -ge $((TICKS * $1 / 100)) ]; }
early() { cpu_at 10; }
halfway() { cpu_at 50; }
late() { cpu_at 90; }
wal_grows() { [ "$(size "$WAL")" -gt "$W0" ]; }
db_grows() { [ "$(size "$ST/tfq.db")" -gt "$D0" ]; }
logged() { grep -q "grid 'g' submitted" "$DIR/coord.log"; }
answered() { grep -q "jobs added" "$DIR/submit.out"; }

# kill_during MOMENT: a fresh store, the submit started, the coordinator
# killed once MOMENT holds (or the submit has ended), restarted; checks
# the store and submits again.  Prints what it saw.
kill_during() {
    local moment="$1"
    rm -rf "$ST"
    : >"$DIR/coord.log"
    start_coord
    C0=$(cpu_ticks "$COORD")
    W0=$(size "$WAL")
    D0=$(size "$ST/tfq.db")
    "$TFQ" submit "$DIR/g.txt" --as g --connect "$EP" >"$DIR/submit.out" 2>&1 &
    local sub=$!
    PIDS+=("$sub")
    local end=$((SECONDS + 300))
    until "$moment"; do
        gone "$sub" && break
        [ "$SECONDS" -lt "$end" ] || fail "$moment: neither the moment nor the submit's end within 300 s"
    done
    local cpu=$(($(cpu_ticks "$COORD") - C0))
    kill -9 "$COORD"
    wait "$COORD" 2>/dev/null
    # What the kill found: the WAL and the database file, whether the
    # coordinator had logged the submit and the client had its answer.
    local seen
    seen="$(size "$WAL") bytes of WAL (from $W0), $(size "$ST/tfq.db") of database (from $D0)"
    logged && seen="$seen, submit logged" || seen="$seen, submit not logged"
    answered && seen="$seen, answered" || seen="$seen, not answered"
    # The client's request must not reach the restarted coordinator.
    kill -9 "$sub" 2>/dev/null
    wait "$sub" 2>/dev/null
    start_coord
    local jobs grids integrity
    integrity=$(q "pragma integrity_check")
    [ "$integrity" = ok ] || fail "$moment: integrity_check after the kill: $integrity"
    jobs=$(q "select count(*) from jobs")
    grids=$(q "select count(*) from grids")
    case "$jobs/$grids" in
    0/0 | "$N/1") ;;
    *) fail "$moment: after the kill the store holds $jobs jobs in $grids grids, not all $N or none" ;;
    esac
    [ "$(q "select count(*) from deps")" = 0 ] || fail "$moment: dependencies stored for a grid without any"
    echo "# $moment: killed at $cpu ticks, $seen: $jobs jobs after the restart"
    submit_all "$DIR/again.out"
    local want="$N jobs added, 0 reused, 0 already there"
    [ "$jobs" = 0 ] || want="0 jobs added, 0 reused, $N already there"
    grep -q "no answer" "$DIR/again.out" || grep -q "$want" "$DIR/again.out" ||
        fail "$moment: the second submit: $(cat "$DIR/again.out"), expected $want"
    [ "$(q "select count(*) from jobs")" = "$N" ] || fail "$moment: $(q "select count(*) from jobs") jobs after submitting again"
    [ "$(q "select count(distinct name) from jobs")" = "$N" ] || fail "$moment: jobs stored twice"
    [ "$(q "pragma integrity_check")" = ok ] || fail "$moment: integrity_check after submitting again"
    "$TFQ" status g --connect "$EP" --json | grep -q "\"queued\": $N" || fail "$moment: status does not show $N queued"
}

# drain: one worker runs the grid; every job succeeds once.
drain() {
    "$TFQ" worker --connect "$EP" --name "w-$1" --exit-when-idle 2>>"$DIR/w.log" &
    local w=$!
    PIDS+=("$w")
    wait_exit 600 "$w" "the worker after $1" || fail "the worker after $1 exited $?"
    check_once
}

for moment in at_start early halfway late logged wal_grows db_grows answered; do
    kill_during "$moment"
    case "$moment" in
    at_start | answered) drain "$moment" ;;
    esac
    kill -9 "$COORD"
    wait "$COORD" 2>/dev/null
done
echo "PASS: kill_submit"
