#!/bin/bash
# The queue end to end: the real tfq coordinator and workers as processes on
# loopback, a real SQLite file, real signals.  Usage: test_queue.sh TFQ CASE
set -u
TFQ=$(realpath "$1")
CASE="$2"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-queue-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness "$CASE"

# Workers heartbeat every HB_MS and lose their leases after 4 silent
# heartbeats: 1 s, soon enough for the cases that wait for a killed
# worker's leases to expire, and far longer than a loaded machine keeps a
# live worker's heartbeat waiting.
HB_MS=250

# start_coord [BIND]: starts the coordinator; sets EP and COORD.
start_coord() {
    local bind="${1:-tcp://127.0.0.1:*}"
    rm -f "$DIR/st/endpoint"
    "$TFQ" coordinator --state "$DIR/st" --bind "$bind" --heartbeat-ms "$HB_MS" \
        2>>"$DIR/coord.log" &
    COORD=$!
    PIDS+=("$COORD")
    poll 60 test -s "$DIR/st/endpoint" || fail "coordinator did not start within 60 s"
    EP=$(cat "$DIR/st/endpoint")
}

# start_worker NAME [ARGS...]: sets WPID.
start_worker() {
    local name="$1"
    shift
    "$TFQ" worker --connect "$EP" --name "$name" "$@" 2>>"$DIR/$name.log" &
    WPID=$!
    PIDS+=("$WPID")
}

# drain_with_two [HOOK]: starts workers w1 and w2 (--exit-when-idle), runs
# HOOK while they work, and waits until both have exited cleanly.
drain_with_two() {
    start_worker w1 --exit-when-idle
    local w1=$WPID
    start_worker w2 --exit-when-idle
    local w2=$WPID
    [ -n "${1:-}" ] && "$1"
    wait_exit 300 "$w1" "worker 1" || fail "worker 1 exited $?"
    wait_exit 300 "$w2" "worker 2" || fail "worker 2 exited $?"
}


# grid FILE: a base job, six that wait on it, one that waits on two of them.
grid() {
    {
        printf 'name = base\nkind = sleep\nsleep_ms = %s\n' "$1"
        for i in 1 2 3 4 5 6; do
            printf -- '---\nname = t%d\nafter = base\nkind = sleep\nsleep_ms = %s\nseed = %d\n' "$i" "$1" "$i"
        done
        printf -- '---\nname = leaf\nafter = t1, t2\nkind = sleep\nsleep_ms = %s\n' "$1"
    } >"$DIR/grid.txt"
}

case "$CASE" in
two_workers)
    # Jobs of 500 ms, one at a time to each worker: w2 finds work as long
    # as it starts within 3 s of w1 (before the last of the six middle
    # jobs is leased).
    start_coord
    grid 500
    "$TFQ" submit "$DIR/grid.txt" --connect "$EP" >/dev/null || fail "submit"
    drain_with_two
    check_once
    [ "$(q "select count(distinct worker) from attempts")" = 2 ] || fail "one worker did everything"
    "$TFQ" status --connect "$EP" --json | grep -q '"done": 8' || fail "status"
    ;;
kill_worker)
    start_coord
    printf 'name = long\nkind = sleep\nsleep_ms = 5000\n---\nname = short\nkind = sleep\nsleep_ms = 100\n' >"$DIR/grid.txt"
    "$TFQ" submit "$DIR/grid.txt" --connect "$EP" >/dev/null || fail "submit"
    start_worker victim --max-jobs 1
    VICTIM=$WPID
    # Kill it once it has checkpointed three of the long job's ten epochs
    # (of 500 ms: 3.5 s before it would finish).
    poll 120 is "select ifnull(max(epoch), 0) >= 3 from checkpoints c join jobs j on j.id = c.job_id where j.name = 'long'" 1 ||
        fail "the victim checkpointed no third epoch of 'long' within 120 s"
    kill -9 "$VICTIM"
    wait "$VICTIM" 2>/dev/null
    # Once the lease is lost nothing of attempt 1 can be stored: a
    # checkpoint still in flight at the kill has landed or been refused.
    poll 120 is "select a.state from attempts a join jobs j on j.id = a.job_id where j.name = 'long' and a.attempt = 1" lost ||
        fail "the killed worker's attempt was not marked lost within 120 s"
    LAST=$(q "select max(epoch) from checkpoints c join jobs j on j.id = c.job_id where j.name = 'long' and c.attempt = 1")
    [ "$LAST" -ge 3 ] || fail "victim checkpointed only to epoch $LAST"
    start_worker rescuer --exit-when-idle
    wait_exit 300 "$WPID" rescuer || fail "rescuer exited $?"
    check_once
    [ "$(q "select count(*) from attempts where worker='victim' and state='lost'")" = 1 ] || fail "the killed worker's attempt is not marked lost"
    [ "$(q "select count(*) from attempts where worker='rescuer' and state='succeeded'")" = 2 ] || fail "rescuer did not finish both jobs"
    # The rescuer resumed the long job after the victim's last checkpoint,
    # not from epoch 0.
    FIRST=$(q "select min(epoch) from metrics m join jobs j on j.id = m.job_id where j.name = 'long' and m.attempt = 2")
    [ "$FIRST" = $((LAST + 1)) ] || fail "attempt 2 restarted at epoch $FIRST, not $((LAST + 1))"
    [ "$(q "select max(epoch) from metrics m join jobs j on j.id = m.job_id where j.name = 'long' and m.attempt = 2")" = 10 ] || fail "attempt 2 did not finish the epochs"
    grep -q "resumes from checkpoint" "$DIR/rescuer.log" || fail "rescuer did not say it resumed"
    ;;
kill_coordinator)
    # kill -9 the coordinator mid-grid (base done, jobs running), start it
    # again on the same endpoint
    kill_and_restart() {
        poll 120 is "select (select state from jobs where name = 'base') = 'succeeded' and (select count(*) from jobs where state = 'running') > 0" 1 ||
            fail "no job ran after base within 120 s: $(q "select name, state from jobs")"
        kill -9 "$COORD"
        sleep 0.5
        start_coord "$FIXED"
    }
    start_coord
    grid 500
    "$TFQ" submit "$DIR/grid.txt" --connect "$EP" >/dev/null || fail "submit"
    FIXED="$EP"
    drain_with_two kill_and_restart
    check_once
    ;;
transfer)
    # A base net on task A and two jobs that copy its first three layers:
    # the selffer A3A and the transfer A3B, as in the paper, on small data.
    [ -d /usr/share/datasets/fashion-mnist ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
    start_coord
    common='kind = train
limit_train = 3000
limit_test = 1000
seed = 5'
    {
        printf 'name = baseA\n%s\nclasses = 0,2,3,4,6\nepochs = 2\n' "$common"
        printf -- '---\nname = A3A\ninit_from = baseA\n%s\nclasses = 0,2,3,4,6\nepochs = 1\ncopy = 3\nfreeze = 3\n' "$common"
        printf -- '---\nname = A3B\ninit_from = baseA\n%s\nclasses = 1,5,7,8,9\nepochs = 1\ncopy = 3\nfreeze = 3\n' "$common"
    } >"$DIR/grid.txt"
    "$TFQ" submit "$DIR/grid.txt" --connect "$EP" >/dev/null || fail "submit"
    drain_with_two
    check_once
    [ "$(q "select count(*) from checkpoints c join jobs j on j.id = c.job_id where j.name = 'baseA'")" = 2 ] || fail "baseA did not checkpoint both epochs"
    [ "$(grep -c 'copies layers from checkpoint' "$DIR"/w*.log | awk -F: '{s += $2} END {print s}')" = 2 ] || fail "the transfer jobs did not get baseA's checkpoint"
    for j in baseA A3A A3B; do
        acc=$(q "select json_extract(result, '$.final_acc') from jobs where name = '$j'")
        awk -v a="$acc" 'BEGIN {exit !(a > 0.5)}' || fail "$j reached only $acc"
    done
    ;;
sigterm_worker)
    # SIGTERM in the middle of a training epoch: the worker finishes its
    # step, uploads a checkpoint, hands the job back and exits 130; the next
    # worker carries on from there.  Two small epochs (63 steps each); the
    # signal goes halfway through the second, timed from the first epoch's
    # own speed, so that it lands mid-epoch however fast this machine
    # trains.
    [ -d /usr/share/datasets/fashion-mnist ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
    start_coord
    N_TRAIN=4000
    printf 'name = t\nkind = train\nclasses = 0,1\nlimit_train = %d\nlimit_test = 200\nepochs = 2\n' "$N_TRAIN" >"$DIR/g.txt"
    "$TFQ" submit "$DIR/g.txt" --connect "$EP" >/dev/null || fail "submit"
    start_worker first
    FIRST=$WPID
    # After the first epoch the worker stores its checkpoint, then its
    # metrics row, and starts the second.
    poll 600 is "select count(*) from metrics where attempt = 1 and epoch = 1" 1 ||
        fail "no metrics of epoch 1 within 600 s"
    START_MS=$(q "select created_ms from checkpoints where attempt = 1 and epoch = 1")
    SPEED=$(q "select images_per_s from metrics where attempt = 1 and epoch = 1")
    DELAY=$(awk -v start="$START_MS" -v now="$(date +%s%3N)" -v speed="$SPEED" -v n="$N_TRAIN" \
        'BEGIN { d = (start + 0.5 * n / speed * 1000 - now) / 1000; printf "%.3f", (d > 0 ? d : 0) }')
    echo "# epoch 1 at $SPEED images/s; SIGTERM $DELAY s after its checkpoint"
    sleep "$DELAY"
    kill -TERM "$FIRST"
    wait_exit 300 "$FIRST" "the worker after SIGTERM"
    rc=$?
    [ "$rc" = 130 ] || fail "the worker exited $rc after SIGTERM, not 130"
    grep -q "stopped in epoch 2 after step [1-9][0-9]*; checkpoint kept" "$DIR/first.log" ||
        fail "no checkpoint from the middle of epoch 2"
    echo "# $(grep -o "stopped in epoch .*" "$DIR/first.log")"
    [ "$(q "select state from attempts where attempt = 1")" = released ] || fail "attempt 1 not released"
    [ "$(q "select state from jobs")" = ready ] || fail "the job is not ready again"
    start_worker second --exit-when-idle
    wait_exit 600 "$WPID" "the second worker" || fail "second worker exited $?"
    check_once
    [ "$(q "select min(epoch) from metrics where attempt = 2")" = 2 ] || fail "attempt 2 did not go on with epoch 2"
    grep -q "resumes from checkpoint" "$DIR/second.log" || fail "second worker did not resume"
    ;;
commands)
    # results, cancel, retry, workers, checkpoint get, status --watch, run.
    start_coord
    printf 'name = ok1\nkind = sleep\nsleep_ms = 10\n---\nname = bad\nkind = sleep\nsleep_ms = 10\nfail_prob = 1\n---\nname = after_bad\nafter = bad\nkind = sleep\nsleep_ms = 10\n---\nname = slow\nkind = sleep\nsleep_ms = 60000\n' >"$DIR/g.txt"
    "$TFQ" submit "$DIR/g.txt" --as g --connect "$EP" >/dev/null || fail "submit"
    # the same file again: every job is already in the grid, nothing runs twice
    "$TFQ" submit "$DIR/g.txt" --as g --connect "$EP" >"$DIR/again.txt" || fail "second submit"
    grep -q "0 jobs added, 0 reused, 4 already there" "$DIR/again.txt" || fail "second submit: $(cat "$DIR/again.txt")"
    [ "$(q "select count(*) from jobs")" = 4 ] || fail "the second submit added jobs"
    # the same names with other settings are refused, and nothing is stored
    sed 's/sleep_ms = 10$/sleep_ms = 11/' "$DIR/g.txt" >"$DIR/g2.txt"
    "$TFQ" submit "$DIR/g2.txt" --as g --connect "$EP" 2>"$DIR/dup.err" && fail "changed jobs were accepted under the same names"
    grep -q "another configuration" "$DIR/dup.err" || fail "changed jobs: $(cat "$DIR/dup.err")"
    [ "$(q "select count(*) from jobs")" = 4 ] || fail "the refused submit stored jobs"
    start_worker w1 --max-jobs 5
    # wait until bad has failed for good (3 attempts) and slow is running
    poll 120 is "select count(*) from jobs where (name = 'bad' and state = 'failed') or (name = 'slow' and state = 'running')" 2 ||
        fail "within 120 s, bad did not fail for good, or slow is not running: $(q "select name, state from jobs")"
    "$TFQ" results g --connect "$EP" >"$DIR/r.txt" || fail "results"
    grep -q "after_bad  blocked" "$DIR/r.txt" || fail "after_bad not blocked: $(cat "$DIR/r.txt")"
    grep -q "on purpose" "$DIR/r.txt" || fail "the failed job's error is not shown"
    "$TFQ" results g --csv --connect "$EP" | head -1 | grep -q '^job,grid,name,state' || fail "results --csv"
    "$TFQ" results g --json --connect "$EP" | grep -q '"name":"ok1"' || fail "results --json"
    "$TFQ" status --json --connect "$EP" | grep -q '"running_jobs": \[{' || fail "status lists no running job"
    "$TFQ" workers --connect "$EP" | grep -q '^w1 ' || fail "workers"
    "$TFQ" results nosuch --connect "$EP" 2>"$DIR/e.txt" && fail "an unknown grid gave results"
    grep -q "no grid named 'nosuch'" "$DIR/e.txt" || fail "unknown grid message"
    "$TFQ" cancel g --connect "$EP" | grep -q "^2 jobs cancelled" || fail "cancel (slow and the blocked after_bad)"
    "$TFQ" retry g --connect "$EP" | grep -q "jobs queued again" || fail "retry"
    [ "$(q "select state from jobs where name = 'bad'")" != failed ] || fail "retry left bad failed"
    JOB=$(q "select id from jobs where name = 'ok1'")
    "$TFQ" checkpoint get "$JOB" -o "$DIR/ok1.ckpt" --connect "$EP" >/dev/null || fail "checkpoint get"
    grep -q "tfq sleep checkpoint 1 epoch 10" "$DIR/ok1.ckpt" || fail "checkpoint content"
    "$TFQ" checkpoint get 99999 -o "$DIR/x.ckpt" --connect "$EP" 2>/dev/null && fail "checkpoint of no job"
    for c in coordinator worker submit status results cancel retry workers checkpoint run train bench; do
        "$TFQ" "$c" --help >/dev/null || fail "$c --help"
    done
    # the embedded mode, on its own: cancelled once ok1 is done (and slow
    # would keep it for a minute)
    (cd "$DIR" && "$TFQ" run g.txt --workers 2 --state "$DIR/run" >"$DIR/run.txt" 2>"$DIR/run.log") &
    RUN=$!
    PIDS+=("$RUN")
    poll 60 test -s "$DIR/run/endpoint" || fail "tfq run wrote no endpoint within 60 s"
    ok1_done() { [ "$(sqlite3 -cmd ".timeout 5000" "$DIR/run/tfq.db" "select state from jobs where name = 'ok1'")" = succeeded ]; }
    poll 120 ok1_done || fail "tfq run did not finish ok1 within 120 s: $(cat "$DIR/run.log")"
    "$TFQ" cancel g.txt --connect "$(cat "$DIR/run/endpoint")" >/dev/null || fail "cancel in tfq run"
    wait_exit 120 "$RUN" "tfq run after the cancel"
    grep -q "ok1.*succeeded" "$DIR/run.txt" || fail "tfq run printed no results: $(cat "$DIR/run.txt" "$DIR/run.log")"
    ;;
coord_stalled)
    # The coordinator stopped (SIGSTOP) for three liveness windows while a
    # worker runs a job: the heartbeats wait unread in its socket, and the
    # lease check that runs first on SIGCONT must not call the worker lost.
    start_coord
    printf 'name = long\nkind = sleep\nsleep_ms = 6000\n' >"$DIR/g.txt"
    "$TFQ" submit "$DIR/g.txt" --connect "$EP" >/dev/null || fail "submit"
    start_worker w1 --exit-when-idle
    W1=$WPID
    poll 120 is "select count(*) from metrics" 1 || fail "no progress of the job within 120 s"
    kill -STOP "$COORD"
    sleep 3
    kill -CONT "$COORD"
    wait_exit 300 "$W1" w1 || fail "w1 exited $?"
    [ "$(q "select count(*) from attempts where state <> 'succeeded'")" = 0 ] ||
        fail "the stall cost attempts: $(q "select attempt, state, error from attempts")"
    grep -q "did not run for" "$DIR/coord.log" || fail "the coordinator did not notice its stall"
    check_once
    ;;
batch_hold)
    # Short jobs go out in batches.  A worker holding a batch heartbeats for
    # every job it holds, so those queued behind a long one keep their
    # leases; on SIGTERM it hands back the running job and every job it had
    # not started, and exits 130.
    start_coord
    {
        for i in $(seq 0 29); do printf 'name = a%d\nkind = sleep\nsleep_ms = 0\n---\n' "$i"; done
        printf 'name = long\nkind = sleep\nsleep_ms = 10000\n'
        for i in $(seq 0 99); do printf -- '---\nname = b%d\nkind = sleep\nsleep_ms = 0\n' "$i"; done
    } >"$DIR/g.txt"
    "$TFQ" submit "$DIR/g.txt" --connect "$EP" >/dev/null || fail "submit"
    start_worker w1
    W1=$WPID
    poll 120 is "select state from jobs where name = 'long'" running || fail "long did not run within 120 s"
    HELD=$(q "select count(*) from attempts where worker = 'w1' and state = 'running'")
    [ "$HELD" -gt 1 ] || fail "w1 holds $HELD jobs, not a batch"
    # Four liveness windows (4 heartbeats of 250 ms each): leases kept only
    # by heartbeats.  The long job (10 s) is still running after them.
    sleep 4
    [ "$(q "select count(*) from attempts where state = 'lost'")" = 0 ] || fail "held jobs lost their leases"
    [ "$(q "select count(*) from attempts where worker = 'w1' and state = 'running'")" = "$HELD" ] || fail "the held batch changed"
    kill -TERM "$W1"
    wait_exit 120 "$W1" "w1 after SIGTERM"
    rc=$?
    [ "$rc" = 130 ] || fail "w1 exited $rc after SIGTERM, not 130"
    [ "$(q "select count(*) from attempts where worker = 'w1' and state = 'released'")" = "$HELD" ] || fail "not all $HELD held jobs were handed back: $(q "select state, count(*) from attempts group by 1")"
    [ "$(q "select count(*) from jobs where state = 'running'")" = 0 ] || fail "jobs still running after the hand-back"
    # the rest, and the long job from its checkpoint
    start_worker w2 --exit-when-idle
    wait_exit 300 "$WPID" w2 || fail "w2 exited $?"
    check_once
    grep -q "resumes from checkpoint" "$DIR/w2.log" || fail "w2 did not resume the long job"
    ;;
kill_batched)
    # kill -9 a worker in the middle of a drain of short jobs: the batch it
    # held is lost, requeued and run by another worker, each job once.
    start_coord
    awk 'BEGIN { for (i = 0; i < 5000; i++) { if (i) print "---"; printf "name = j%d\nkind = sleep\nsleep_ms = 0\n", i } }' >"$DIR/g.txt"
    "$TFQ" submit "$DIR/g.txt" --connect "$EP" >/dev/null || fail "submit"
    start_worker victim
    VICTIM=$WPID
    poll 120 is "select count(*) >= 200 from jobs where state = 'succeeded'" 1 ||
        fail "the victim did not finish 200 jobs within 120 s"
    KILL_MS=$(date +%s%3N)
    kill -9 "$VICTIM"
    wait "$VICTIM" 2>/dev/null
    # The victim's attempts settle once its leases expire: each one it held
    # is lost then, and none is running.  (A count of its running attempts
    # right after the kill races the expiry, and a result in flight at the
    # kill may still land.)  Its batch: the attempts lost after the kill.
    poll 120 is "select count(*) from attempts where worker = 'victim' and state = 'running'" 0 ||
        fail "the victim's batch was not marked lost within 120 s: $(q "select state, count(*) from attempts where worker = 'victim' group by 1")"
    HELD=$(q "select count(*) from attempts where worker = 'victim' and state = 'lost' and finished_ms >= $KILL_MS")
    [ "$HELD" -gt 1 ] || fail "the victim held $HELD jobs when killed, not a batch"
    start_worker rescuer --exit-when-idle
    wait_exit 300 "$WPID" rescuer || fail "rescuer exited $?"
    check_once
    [ "$(q "select count(*) from attempts a where a.worker = 'victim' and a.state = 'lost' and a.finished_ms >= $KILL_MS and exists (select 1 from attempts b where b.job_id = a.job_id and b.attempt = a.attempt + 1 and b.worker = 'rescuer' and b.state = 'succeeded')")" = "$HELD" ] ||
        fail "the lost batch was not run again by the rescuer"
    ;;
grid_reuse)
    # A grid file: its expansion, result reuse, growth, --force, the report.
    [ -d /usr/share/datasets/fashion-mnist ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
    start_coord
    cat >"$DIR/tiny.yaml" <<'YAML'
name: tiny
dataset: {kind: fashion-mnist, limit_train: 600, limit_test: 200}
train: {epochs: 1}
splits: {random: [0]}
directions: A->B
layers: 1-2
variants: [selffer, transfer]
finetune: frozen
seeds: [1]
YAML
    jobs() { q "select count(*) from jobs"; }
    attempts() { q "select count(*) from attempts"; }
    "$TFQ" submit "$DIR/tiny.yaml" --dry-run --connect "$EP" >"$DIR/dry.txt" || fail "dry run"
    grep -q "^6 jobs" "$DIR/dry.txt" || fail "dry run: $(cat "$DIR/dry.txt")"
    grep -q "^random0/1/A2B .* random0/1/baseA$" "$DIR/dry.txt" || fail "dry run shows no dependency: $(cat "$DIR/dry.txt")"
    [ "$(jobs)" = 0 ] || fail "the dry run stored jobs"
    # a bad file: the file, the line and the reason, and nothing stored
    sed 's/^layers: 1-2/layers: 1-9/' "$DIR/tiny.yaml" >"$DIR/bad.yaml"
    "$TFQ" submit "$DIR/bad.yaml" --connect "$EP" 2>"$DIR/bad.err" && fail "a bad grid file was accepted"
    grep -q "bad.yaml: line 6: layers: n = 8" "$DIR/bad.err" || fail "bad file message: $(cat "$DIR/bad.err")"
    [ "$(q "select count(*) from grids")" = 0 ] || fail "the bad file created a grid"

    "$TFQ" submit "$DIR/tiny.yaml" --connect "$EP" | grep -q "6 jobs added, 0 reused, 0 already there" || fail "first submit"
    start_worker w1 --exit-when-idle
    wait_exit 600 "$WPID" w1 || fail "worker exited $?"
    check_once
    [ "$(attempts)" = 6 ] || fail "$(attempts) attempts for 6 jobs"
    # again: nothing runs twice
    "$TFQ" submit "$DIR/tiny.yaml" --connect "$EP" | grep -q "0 jobs added, 0 reused, 6 already there" || fail "second submit"
    # under another name: every job reuses the finished one, nothing runs
    "$TFQ" submit "$DIR/tiny.yaml" --as copy --connect "$EP" | grep -q "0 jobs added, 6 reused" || fail "reuse"
    "$TFQ" status copy --connect "$EP" --json | grep -q '"done": 6' || fail "the reused grid is not done"
    [ "$(attempts)" = 6 ] || fail "reuse ran jobs"
    [ "$(q "select count(*) from jobs a join jobs b on b.id = a.reused_from where a.result = b.result and a.identity = b.identity")" = 6 ] || fail "reused jobs do not carry the original's result"
    "$TFQ" results copy --json --connect "$EP" | grep -q '"checkpoint":"[0-9a-f]\{64\}"' || fail "a reused job has no checkpoint"
    # grown: a second seed, and a third layer whose bases exist already
    sed 's/^seeds: \[1\]/seeds: [1, 2]/; s/^layers: 1-2/layers: 1-3/' "$DIR/tiny.yaml" >"$DIR/grown.yaml"
    "$TFQ" submit "$DIR/grown.yaml" --connect "$EP" | grep -q "10 jobs added, 0 reused, 6 already there" || fail "growth"
    start_worker w2 --exit-when-idle
    wait_exit 600 "$WPID" w2 || fail "worker exited $?"
    check_once
    [ "$(attempts)" = 16 ] || fail "$(attempts) attempts after growing to 16 jobs"
    grep -q "copies layers from checkpoint" "$DIR/w2.log" || fail "the new layer-3 jobs did not copy the kept bases"
    # the report of the grid (figures rendered by the report's own test)
    "$TFQ" report tiny -o "$DIR/rep" --connect "$EP" >"$DIR/rep.txt" || fail "report: $(cat "$DIR/rep.txt")"
    for f in figure2.svg figure3.svg table.md table.csv; do
        [ -s "$DIR/rep/$f" ] || fail "report wrote no $f"
    done
    grep -q "^random,transfer,0,3," "$DIR/rep/table.csv" || fail "no transfer n=3 point: $(cat "$DIR/rep/table.csv")"
    # --force: the file's jobs run again
    "$TFQ" submit "$DIR/tiny.yaml" --force --connect "$EP" | grep -q "6 jobs added" || fail "force"
    start_worker w3 --exit-when-idle
    wait_exit 600 "$WPID" w3 || fail "worker exited $?"
    [ "$(q "select count(*) from attempts a join jobs j on j.id = a.job_id where j.name = 'random0/1/baseA' and a.state = 'succeeded'")" = 2 ] || fail "--force did not run baseA again"
    [ "$(q "select count(*) from jobs where state != 'succeeded'")" = 0 ] || fail "jobs left unfinished after --force"
    ;;
heartbeat_fds)
    # A worker whose heartbeat connection cannot be opened (here: no file
    # descriptor left for its socket, under a lower and lower limit) stops
    # and says why; it never runs a job that nothing heartbeats, whose
    # lease the coordinator takes back while it runs (the job reports
    # progress every 3 s, far apart for a lease of 1 s).
    command -v prlimit >/dev/null || { echo "no prlimit: skipped"; exit 77; }
    start_coord
    printf 'name = s\nkind = sleep\nsleep_ms = 30000\n' >"$DIR/s.txt"
    "$TFQ" submit "$DIR/s.txt" --connect "$EP" >/dev/null || fail "submit"
    for n in $(seq 8 40); do
        prlimit --nofile="$n" "$TFQ" worker --connect "$EP" --name "f$n" \
            --max-jobs 1 2>"$DIR/f$n.err" &
        W=$!
        PIDS+=("$W")
        # Too few for its requests: it never says hello, and is stopped.
        if ! poll 10 eval 'gone $W || is "select count(*) from attempts" 1'; then
            kill "$W"
            wait "$W"
            continue
        fi
        if ! gone "$W"; then
            # It runs the job: with its heartbeats, to the end.
            poll 120 eval 'gone $W || ! is "select count(*) from attempts where state = '"'lost'"'" 0' ||
                fail "with $n file descriptors the job did not end within 120 s"
            is "select count(*) from attempts where state = 'lost'" 0 ||
                fail "with $n file descriptors a worker ran a job without heartbeats: $(cat "$DIR/f$n.err")"
            wait "$W" || fail "with $n file descriptors the worker exited $?: $(cat "$DIR/f$n.err")"
            break
        fi
        wait "$W"
        rc=$?
        # It stopped, naming why: its connection or its heartbeat one.
        [ "$rc" = 1 ] && grep -Eq "^tfq worker: .*(Too many open files|no reply from)" "$DIR/f$n.err" ||
            fail "with $n file descriptors the worker exited $rc: $(cat "$DIR/f$n.err")"
        grep -q "^tfq worker: the heartbeat connection: " "$DIR/f$n.err" && HB_REFUSED=$n
    done
    is "select state from jobs" succeeded || fail "no worker ran the job, up to $n file descriptors"
    echo "the heartbeat connection refused with ${HB_REFUSED:-no} file descriptor limit; the job ran with $n"
    ;;
*)
    echo "unknown case $CASE" >&2
    exit 2
    ;;
esac
echo "PASS: $CASE"
