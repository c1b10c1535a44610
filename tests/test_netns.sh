#!/bin/bash
# The queue across a real network: the coordinator and two workers each in
# a network namespace of their own, joined by veth pairs.  One worker's link
# is cut in the middle of a job: its attempt is lost and the job resumes on
# the other worker from its checkpoint; once the link is back, the cut-off
# worker's late result is refused, and every job ends with one result.
# Needs root (ip netns); skips (77) without.  Usage: test_netns.sh TFQ
set -u
TFQ=$(realpath "$1")

[ "$(id -u)" = 0 ] || { echo "SKIP: not root (ip netns needs it)"; exit 77; }
for c in ip sqlite3; do
    command -v "$c" >/dev/null || { echo "SKIP: no $c"; exit 77; }
done

# Unique per run, so that runs side by side do not clash; interface names
# stay within the kernel's 15 characters ("tq" + pid of at most 7 digits
# + 3).
NSC=tfq$$c
NSW1=tfq$$w1
NSW2=tfq$$w2
V1C=tq$$c1 V1W=tq$$w1
V2C=tq$$c2 V2W=tq$$w2
PORT=$((5700 + $$ % 1000))
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-netns-XXXXXX")
NSS=()
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # anything else left in our namespaces was started by us too
    for ns in "${NSS[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    wait 2>/dev/null
    # deleting a namespace deletes the veth ends in it, and so their peers
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
fail() {
    echo "FAIL: netns: $*" >&2
    for f in "$DIR"/*.log; do echo "--- $f" >&2; tail -30 "$f" >&2; done
    echo "--- attempts" >&2
    q "select j.name, a.attempt, a.worker, a.state from attempts a join jobs j on j.id = a.job_id" >&2
    exit 1
}
# q, poll, is, gone and check_once
. "$(dirname "$0")/lib_queue.sh"

# ---- topology: C <-> W1 on 10.77.1.0/30, C <-> W2 on 10.77.2.0/30 ----
ip netns add "$NSC" 2>"$DIR/netns.err" || { echo "SKIP: ip netns add failed: $(head -1 "$DIR/netns.err")"; exit 77; }
NSS+=("$NSC")
for ns in "$NSW1" "$NSW2"; do
    ip netns add "$ns" || fail "ip netns add $ns"
    NSS+=("$ns")
done
# link C_END W_END WNS SUBNET: a veth pair from C to WNS, C at .1, WNS at .2.
link() {
    ip -n "$NSC" link add "$1" type veth peer name "$2" netns "$3" &&
        ip -n "$NSC" addr add "$4.1/30" dev "$1" &&
        ip -n "$3" addr add "$4.2/30" dev "$2" &&
        ip -n "$NSC" link set "$1" up &&
        ip -n "$3" link set "$2" up &&
        ip -n "$3" link set lo up
}
ip -n "$NSC" link set lo up || fail "lo up in $NSC"
link "$V1C" "$V1W" "$NSW1" 10.77.1 || fail "veth to $NSW1"
link "$V2C" "$V2W" "$NSW2" 10.77.2 || fail "veth to $NSW2"
if command -v ping >/dev/null; then
    ip netns exec "$NSW1" ping -c 1 -W 5 10.77.1.1 >/dev/null || fail "$NSW1 cannot reach $NSC"
    ip netns exec "$NSW2" ping -c 1 -W 5 10.77.2.1 >/dev/null || fail "$NSW2 cannot reach $NSC"
fi
# set_w1_link up|down: both ends of w1's pair.
set_w1_link() {
    ip -n "$NSC" link set "$V1C" "$1" && ip -n "$NSW1" link set "$V1W" "$1"
}

# ---- the coordinator in C; liveness is 4 heartbeats, 1 s ----
# 'ip netns exec' execs the command, so $! is tfq's own PID (not so through
# a shell function, which would put a subshell in between).
ip netns exec "$NSC" "$TFQ" coordinator --state "$DIR/st" --bind "tcp://0.0.0.0:$PORT" \
    --heartbeat-ms 250 2>>"$DIR/coord.log" &
COORD=$!
PIDS+=("$COORD")
poll 60 test -s "$DIR/st/endpoint" || fail "coordinator did not start"

# 'long' runs 10 epochs of 600 ms and checkpoints after epochs 5 and 10:
# the cut must come between the two, 3 s to notice the first.
# Every checkpoint that w1 uploads while cut off costs it a reply timeout
# (AGENT_REPLY_TIMEOUT_MS, 5 s), and its result can only come late if it
# finishes before the link is back (else the coordinator's cancel stops it
# first): so one checkpoint before the cut and one after.  'tail' waits on
# 'long', which puts 'long' first in the queue.
{
    printf 'name = long\nkind = sleep\nsleep_ms = 6000\nckpt_every = 5\n'
    for i in 1 2 3; do
        printf -- '---\nname = s%d\nkind = sleep\nsleep_ms = 500\nseed = %d\n' "$i" "$i"
    done
    printf -- '---\nname = tail\nafter = long, s1\nkind = sleep\nsleep_ms = 500\n'
} >"$DIR/grid.txt"
ip netns exec "$NSC" "$TFQ" submit "$DIR/grid.txt" --connect "tcp://127.0.0.1:$PORT" \
    >/dev/null 2>>"$DIR/submit.log" || fail "submit"
LONG=$(q "select id from jobs where name = 'long'")

# ---- w1 alone takes 'long' (and only it), then w2 joins ----
ip netns exec "$NSW1" "$TFQ" worker --connect "tcp://10.77.1.1:$PORT" --name w1 \
    --max-jobs 1 2>>"$DIR/w1.log" &
W1=$!
PIDS+=("$W1")
poll 120 is "select worker || ' ' || state from attempts where job_id = $LONG and attempt = 1" "w1 running" ||
    fail "w1 did not start 'long'"
ip netns exec "$NSW2" "$TFQ" worker --connect "tcp://10.77.2.1:$PORT" --name w2 \
    --exit-when-idle 2>>"$DIR/w2.log" &
W2=$!
PIDS+=("$W2")

# ---- cut w1 off once 'long' has a checkpoint ----
poll 120 is "select ifnull(max(epoch), 0) >= 5 from checkpoints where job_id = $LONG and attempt = 1" 1 ||
    fail "w1 did not checkpoint 'long'"
set_w1_link down || fail "cutting w1's link"
echo "# w1 cut off"
poll 120 is "select state from attempts where job_id = $LONG and attempt = 1" lost ||
    fail "w1's attempt was not marked lost"
# Nothing of attempt 1 can be stored from now on.
LAST=$(q "select max(epoch) from checkpoints where job_id = $LONG and attempt = 1")
[ "$LAST" -ge 3 ] || fail "w1 checkpointed only to epoch $LAST"
poll 120 is "select worker from attempts where job_id = $LONG and attempt = 2" w2 ||
    fail "'long' was not leased again to w2"
poll 120 is "select count(*) > 0 from metrics where job_id = $LONG and attempt = 2" 1 ||
    fail "attempt 2 reported no epoch"
FIRST=$(q "select min(epoch) from metrics where job_id = $LONG and attempt = 2")
[ "$FIRST" = $((LAST + 1)) ] || fail "attempt 2 started at epoch $FIRST, not $((LAST + 1))"
echo "# attempt 2 on w2 resumed at epoch $FIRST"

# ---- w1 finishes its stale attempt cut off; then the link comes back ----
# Its last checkpoint upload times out just before it sends the result.
poll 180 grep -q "checkpoint of epoch 10 not stored" "$DIR/w1.log" ||
    fail "w1 did not finish its stale attempt"
set_w1_link up || fail "restoring w1's link"
echo "# w1's link restored"
poll 120 grep -q "result of job $LONG attempt 1 from w1 refused" "$DIR/coord.log" ||
    fail "the coordinator did not refuse w1's late result"
poll 120 grep -q "refused a result" "$DIR/w1.log" ||
    fail "w1 was not told its result was refused"
is "select state from attempts where job_id = $LONG and attempt = 1" lost ||
    fail "attempt 1 is no longer lost"
is "select max(epoch) from checkpoints where job_id = $LONG and attempt = 1" "$LAST" ||
    fail "a checkpoint of the lost attempt was stored"

# ---- the grid finishes, each job once ----
poll 300 is "select count(*) from jobs where state != 'succeeded'" 0 ||
    fail "the grid did not finish"
poll 120 gone "$W2" || fail "w2 did not exit when idle"
wait "$W2" || fail "w2 exited $?"
# w1 ran its one job: it goes once its outcome is answered
poll 120 gone "$W1" || kill -TERM "$W1"
wait "$W1"

check_once
[ "$(q "select count(*) from jobs")" = 5 ] || fail "not 5 jobs"
is "select worker from attempts where job_id = $LONG and state = 'succeeded'" w2 ||
    fail "'long' did not succeed on w2"
is "select max(epoch) from metrics where job_id = $LONG and attempt = 2" 10 ||
    fail "attempt 2 did not finish the epochs"
grep -q "resumes from checkpoint" "$DIR/w2.log" || fail "w2 did not say it resumed"
kill -TERM "$COORD"
wait "$COORD" || fail "the coordinator exited $? on SIGTERM"
echo "PASS: netns"
