# Shared by the queue's end-to-end shell tests and its benchmark (sourced):
# queries of the coordinator's database and the exactly-once check.  The
# sourcing script sets DIR (the state is DIR/st), and defines fail MESSAGE
# (which exits) or calls queue_harness.

# queue_harness NAME: the usual fail (NAME, the message, the tails of the
# logs in DIR and in the state DIR/st) and a cleanup at exit that kills
# every pid in PIDS and removes DIR.
queue_harness() {
    TEST_NAME="$1"
    PIDS=()
    cleanup() {
        for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$DIR"
    }
    trap cleanup EXIT
    fail() {
        echo "FAIL: $TEST_NAME: $*" >&2
        for f in "$DIR"/*.log "$DIR"/st/*.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
        done
        exit 1
    }
}

q() { sqlite3 -cmd ".timeout 5000" "$DIR/st/tfq.db" "$1"; }

# Waiting: for the event itself (a row, a state, a log line), never for a
# fixed time.  The deadlines are generous, for a machine many times slower
# than a developer's with every core busy: they only say when to give up,
# and the caller's fail says what did not happen.

# poll SECONDS CMD...: runs CMD every 0.05 s until it succeeds; 1 when it
# has not after SECONDS (of wall time, however long each try takes).
poll() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.05
    done
}
# is SQL VALUE: the query's answer is VALUE.
is() { [ "$(q "$1")" = "$2" ]; }
# gone PID: the process has ended (a child is reaped by bash as it exits).
gone() { ! kill -0 "$1" 2>/dev/null; }
# wait_exit SECONDS PID NAME: the exit status of child PID; fails when NAME
# is still running after SECONDS.
wait_exit() {
    poll "$1" gone "$2" || fail "$3 still running after $1 s"
    wait "$2"
}

# Every job succeeded exactly once (a reused job through the job it
# reuses), and none started before the jobs it waits on had succeeded.
check_once() {
    local n
    n=$(q "select count(*) from jobs where state != 'succeeded'")
    [ "$n" = 0 ] || fail "$n jobs not succeeded"
    n=$(q "select count(*) from (select job_id from attempts where state='succeeded' group by job_id having count(*) != 1)")
    [ "$n" = 0 ] || fail "$n jobs with other than one successful attempt"
    n=$(q "select count(*) from jobs j where not exists (select 1 from attempts a where a.job_id = coalesce(j.reused_from, j.id) and a.state = 'succeeded')")
    [ "$n" = 0 ] || fail "$n jobs without a successful attempt"
    n=$(q "select count(*) from deps d join attempts a on a.job_id = d.job_id join attempts b on b.job_id = d.depends_on and b.state = 'succeeded' where a.started_ms < b.finished_ms")
    [ "$n" = 0 ] || fail "$n attempts started before their dependency succeeded"
}
