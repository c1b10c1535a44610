#!/bin/bash
# Ctrl-C on tfq run, as a terminal sends it: SIGINT to run's whole process
# group (run is started as a job of its own with set -m).  The workers hand
# their jobs back, then the coordinator commits and stops, and run exits 130
# with one line that says how to go on; that command, run as printed,
# finishes the rest.  Usage: test_run_interrupt.sh TFQ CASE
#   sigint         one Ctrl-C while jobs run, then the printed command
#   second_sigint  a worker stopped (SIGSTOP) holds the stop up; a second
#                  Ctrl-C kills it, and its job runs again on resuming
#   sigterm        SIGTERM to run alone (a service manager, timeout(1))
#   ctrl_z         SIGTSTP to run's group stops run and every child; SIGCONT
#                  (fg) starts them again and the run finishes
set -u
set -m
TFQ=$(realpath "$1")
CASE="$2"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-run-int-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness "run_$CASE"
NJOBS=8
for i in $(seq "$NJOBS"); do
    [ "$i" -gt 1 ] && echo ---
    printf 'name = s%d\nkind = sleep\nsleep_ms = 2000\n' "$i"
done >"$DIR/g.txt"

# start_run: tfq run g.txt in the background, in a process group of its
# own as a shell job is; sets RUN (also the group's id).
start_run() {
    (cd "$DIR" && exec "$TFQ" run g.txt --workers 2 --state "$DIR/st") \
        >"$DIR/run.out.log" 2>"$DIR/run.err.log" &
    RUN=$!
    PIDS+=("$RUN")
    [ "$(ps -o pgid= -p "$RUN" | tr -d ' ')" = "$RUN" ] ||
        fail "tfq run is not the leader of its own process group"
}

# ms_now: wall clock, milliseconds.
ms_now() { local t=$EPOCHREALTIME; echo $(( ${t/./} / 1000 )); }

# stopped_run SECONDS: waits for run's exit (it must be 130 within
# SECONDS) and checks what it printed and left in the store; sets LINE (the
# resume line) and TOOK_MS (the last signal, at T0, to the exit).
stopped_run() {
    poll "$1" gone "$RUN" || fail "tfq run still running $1 s after the signal"
    TOOK_MS=$(( $(ms_now) - T0 ))
    wait "$RUN"
    local rc=$?
    echo "tfq run exited $rc, $TOOK_MS ms after the signal"
    [ "$rc" = 130 ] || fail "tfq run exited $rc, expected 130"
    [ "$(grep -c '^tfq run: interrupted' "$DIR/run.err.log")" = 1 ] ||
        fail "not one 'interrupted' line"
    LINE=$(tail -n 1 "$DIR/run.err.log")
    echo "its line: $LINE"
    [[ "$LINE" == "tfq run: interrupted; "*" of $NJOBS jobs done, "*"; 'tfq run g.txt --state $DIR/st' goes on" ]] ||
        fail "the last line is not the resume line: $LINE"
    if grep -i "no answer\|not confirmed" "$DIR"/*.log "$DIR"/st/*.log; then
        fail "a client or worker did not reach the coordinator"
    fi
    grep -v "^tfq run: 2 workers, state in \|^tfq run: interrupted; \|^tfq run: dashboard at http://127\.0\.0\.1:[0-9]*/$" "$DIR/run.err.log" &&
        fail "tfq run printed more than its start, dashboard and resume lines"
    [ "$(grep -c '^tfq run: dashboard at ' "$DIR/run.err.log")" = 1 ] ||
        fail "not one dashboard line"
    grep -q "^job  *grid  *name  *state" "$DIR/run.out.log" && fail "results were printed after the stop"
    # the coordinator was stopped by run (SIGTERM), not by the terminal
    grep -q "signal 15: stopping" "$DIR/st/coordinator.log" ||
        fail "the coordinator was not stopped by run's SIGTERM"
    grep -q "signal 2:" "$DIR/st/coordinator.log" &&
        fail "the coordinator got the terminal's SIGINT"
    # the store: no job lost, every job finished or queued again
    is "select count(*) from jobs" "$NJOBS" || fail "jobs: $(q "select count(*) from jobs")"
    is "select count(*) from jobs where state not in ('succeeded', 'ready', 'pending', 'running')" 0 ||
        fail "jobs in other states: $(q "select name, state from jobs")"
    is "select count(*) from jobs j where j.state in ('ready', 'pending') and exists (select 1 from attempts a where a.job_id = j.id and a.state = 'running')" 0 ||
        fail "a queued job has a running attempt"
    local ok
    ok=$(q "select count(*) from jobs where state = 'succeeded'")
    [[ "$LINE" == *"; $ok of $NJOBS jobs done"* ]] ||
        fail "the line's done count is not the store's $ok"
    echo "store: jobs $(q "select group_concat(state || ' ' || n, ', ') from (select state, count(*) n from jobs group by state)");" \
        "attempts $(q "select group_concat(state || ' ' || n, ', ') from (select state, count(*) n from attempts group by state)")"
}

# handed_back: the store's released attempts match the line, and each came
# before the coordinator stopped.
handed_back() {
    local back stop_ms
    back=$(q "select count(*) from attempts where state = 'released'")
    [ "$back" -ge 1 ] || fail "no job was handed back"
    [[ "$LINE" == *", $back handed back"* ]] ||
        fail "the line does not say the store's $back jobs handed back"
    is "select count(*) from jobs j join attempts a on a.job_id = j.id where a.state = 'released' and j.state != 'ready'" 0 ||
        fail "a handed-back job is not ready"
    stop_ms=$(date -d "$(grep -m1 "signal 15: stopping" "$DIR/st/coordinator.log" | cut -d' ' -f1)" +%s%3N)
    is "select count(*) from events where kind = 'released' and at_ms > $stop_ms" 0 ||
        fail "a job was handed back after the coordinator began to stop"
}

# resume: runs the command the line printed, which must finish every job
# without running again what finished.
resume() {
    local cmd
    cmd=$(sed -n "s/.*'tfq run \(.*\)' goes on$/\1/p" <<<"$LINE")
    q "select job_id || ' ' || attempt from attempts where state = 'succeeded' order by 1" >"$DIR/done_before"
    local t=$SECONDS
    # shellcheck disable=SC2086 # the printed command's words
    (cd "$DIR" && exec "$TFQ" run $cmd) >"$DIR/run.out.log" 2>"$DIR/run.err.log" &
    RUN=$!
    PIDS+=("$RUN")
    poll 300 gone "$RUN" || fail "the resumed run did not finish within 300 s"
    wait "$RUN"
    local rc=$?
    echo "resumed run exited $rc after $((SECONDS - t)) s"
    [ "$rc" = 0 ] || fail "the resumed run exited $rc, expected 0"
    grep -q "0 jobs added, 0 reused, $NJOBS already there" "$DIR/run.out.log" ||
        fail "the resumed run's submit changed the grid"
    is "select count(*) from grids" 1 || fail "grids: $(q "select name from grids")"
    check_once
    q "select job_id || ' ' || attempt from attempts where state = 'succeeded' order by 1" >"$DIR/done_after"
    LC_ALL=C comm -23 "$DIR/done_before" "$DIR/done_after" | grep -q . &&
        fail "a job that had finished ran again"
    is "select count(*) from attempts where state = 'running'" 0 || fail "attempts still running"
    is "select count(*) from jobs j join attempts a on a.job_id = j.id where a.state in ('released', 'lost') and not exists (select 1 from attempts b where b.job_id = j.id and b.attempt > a.attempt and b.state = 'succeeded')" 0 ||
        fail "a handed-back or lost job did not run again"
}

# Before the coordinator has made its tables, the queries fail quietly.
# running_on NAME: a job runs on worker NAME.
running_on() {
    [ "$(q "select count(*) > 0 from attempts where state = 'running' and worker = '$1'" 2>/dev/null)" = 1 ]
}
# some_done_some_running: a job has succeeded and another started less than
# a second ago, so that it still runs (2 s) when the signal comes.
some_done_some_running() {
    [ "$(q "select (select count(*) from jobs where state = 'succeeded') >= 1 and (select count(*) from attempts where state = 'running' and started_ms > cast((julianday('now') - 2440587.5) * 86400000 as integer) - 1000) >= 1" 2>/dev/null)" = 1 ]
}

case "$CASE" in
sigint)
    start_run
    poll 120 some_done_some_running ||
        fail "within 120 s, no job finished while another had just started: $(q "select name, state from jobs")"
    T0=$(ms_now)
    kill -INT -- "-$RUN"
    stopped_run 60
    is "select count(*) from attempts where state = 'running'" 0 ||
        fail "attempts left running: $(q "select job_id, worker from attempts where state = 'running'")"
    [[ "$LINE" != *"killed workers"* ]] || fail "no worker was killed: $LINE"
    handed_back
    resume
    ;;
second_sigint)
    start_run
    poll 120 running_on run-1 || fail "within 120 s, worker run-1 ran no job"
    W1=$(pgrep -P "$RUN" -f -- "--name run-1 ")
    W2=$(pgrep -P "$RUN" -f -- "--name run-2 ")
    [ -n "$W1" ] || fail "worker run-1's pid"
    [ -n "$W2" ] || fail "worker run-2's pid"
    kill -STOP "$W1"
    T0=$(ms_now)
    kill -INT -- "-$RUN"
    # run waits: run-2 hands back and exits, run-1 cannot
    poll 60 gone "$W2" || fail "worker run-2 did not exit within 60 s of the Ctrl-C"
    gone "$RUN" && fail "tfq run did not wait for the stopped worker"
    T0=$(ms_now)
    kill -INT -- "-$RUN"
    stopped_run 60
    gone "$W1" || fail "the stopped worker was not killed"
    # run-1's job is left running, or lost when its lease expired first
    held=$(q "select count(*) from attempts where state = 'running'")
    [ "$held" -le 1 ] || fail "$held attempts left running"
    if [ "$held" = 1 ]; then
        [[ "$LINE" == *", 1 on killed workers"* ]] || fail "the line does not say the killed worker's job: $LINE"
        is "select worker from attempts where state = 'running'" run-1 || fail "the attempt left running is not run-1's"
    fi
    resume
    ;;
sigterm)
    start_run
    poll 120 some_done_some_running ||
        fail "within 120 s, no job finished while another had just started: $(q "select name, state from jobs")"
    T0=$(ms_now)
    kill -TERM "$RUN"
    stopped_run 60
    is "select count(*) from attempts where state = 'running'" 0 || fail "attempts left running"
    handed_back
    resume
    ;;
ctrl_z)
    start_run
    poll 120 running_on run-1 || fail "within 120 s, worker run-1 ran no job"
    kids=$(pgrep -P "$RUN" | tr '\n' ' ')
    [ "$(wc -w <<<"$kids")" -ge 3 ] || fail "run's children: $kids"
    kill -TSTP -- "-$RUN"
    all_stopped() {
        local p
        for p in "$RUN" $kids; do
            [[ "$(ps -o stat= -p "$p")" == T* ]] || return 1
        done
    }
    poll 60 all_stopped && echo "ok: Ctrl-Z stopped run and its children" ||
        fail "after Ctrl-Z: $(ps -o pid,stat,args -p "$RUN" $kids)"
    kill -CONT -- "-$RUN"
    poll 300 gone "$RUN" || fail "the run did not finish within 300 s of fg"
    wait "$RUN"
    rc=$?
    [ "$rc" = 0 ] || fail "the run exited $rc after Ctrl-Z and fg, expected 0"
    check_once
    ;;
*)
    echo "unknown case $CASE" >&2
    exit 2
    ;;
esac
echo "ok: run_$CASE"
