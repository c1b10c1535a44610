#!/bin/bash
# CURVE authentication end to end: key files, a coordinator that serves only
# the keys of its allow-lists, and the refusals (an unknown key, a plaintext
# peer, the wrong coordinator key, a worker key that submits, a client key
# that takes jobs), each logged, while an allowed worker goes on working.
# Usage: test_auth.sh TFQ
set -u
TFQ=$(realpath "$1")
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-auth-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness "auth"
cd "$DIR" || exit 1

# Key files: a secret key readable by its owner only, a 40-character public
# key, and never an overwritten key.
for k in coord w c stranger other; do
    "$TFQ" keygen -o "$k" >/dev/null || fail "keygen $k"
done
[ "$(stat -c %a c.key)" = 600 ] || fail "the secret key is mode $(stat -c %a c.key)"
[ "$(tr -d '\n' <c.pub | wc -c)" = 40 ] || fail "the public key is not 40 characters"
"$TFQ" keygen -o c 2>keygen.err
rc=$?
[ "$rc" = 1 ] || fail "keygen over an existing key exited $rc, not 1"
grep -q "c.key: File exists" keygen.err || fail "keygen overwrite: $(cat keygen.err)"
{ echo "# the workers"; cat w.pub; } >workers.list
cp c.pub clients.list

# A bad allow-list stops the coordinator before it serves anyone.
printf '# ok\nnot-a-key\n' >bad.list
"$TFQ" coordinator --state st0 --bind 'tcp://127.0.0.1:*' --curve-key coord.key \
    --allow-workers bad.list 2>bad.err && fail "a bad allow-list was accepted"
grep -q "bad.list: line 2: not a CURVE public key" bad.err || fail "bad list: $(cat bad.err)"
"$TFQ" coordinator --state st0 --bind 'tcp://127.0.0.1:*' --allow-workers workers.list \
    2>nokey.err && fail "an allow-list without a coordinator key was accepted"

# Heartbeats of 1 s (liveness 4 s): no lease may be lost here, and a
# loaded machine must not make one look lost.
"$TFQ" coordinator --state st --bind 'tcp://127.0.0.1:*' --heartbeat-ms 1000 \
    --curve-key coord.key --allow-workers workers.list --allow-clients clients.list \
    2>coord.log &
PIDS+=("$!")
poll 60 test -s st/endpoint || fail "the coordinator did not start within 60 s"
EP=$(cat st/endpoint)
client() { "$TFQ" "$@" --connect "$EP" --server-key coord.pub; }

# The client key submits; the worker key works.
for i in $(seq 12); do printf 'name = j%d\nkind = sleep\nsleep_ms = 300\n---\n' "$i"; done | sed '$d' >g.txt
client submit g.txt --curve-key c.key >submit.txt || fail "the client key cannot submit: $(cat submit.txt)"
TFQ_CURVE_KEY=w.key TFQ_SERVER_KEY=coord.pub "$TFQ" worker --connect "$EP" --name good \
    --exit-when-idle 2>good.log &
GOOD=$!
PIDS+=("$GOOD")
poll 120 is "select count(*) > 0 from attempts" 1 || fail "the allowed worker took no job within 120 s"

# While it works, the refusals.
client status --curve-key stranger.key 2>stranger.err && fail "an unknown key was served"
grep -q "refused this key" stranger.err || fail "unknown key: $(cat stranger.err)"
# A plaintext client is told at once what it lacks (not a timeout: the
# client's monitor sees the coordinator end the handshake).
timeout 120 "$TFQ" status --connect "$EP" >plain.out 2>&1 && fail "a plaintext peer was served"
grep -q "the coordinator requires CURVE (it ended the handshake.*): set TFQ_SERVER_KEY and TFQ_CURVE_KEY" plain.out ||
    fail "plaintext client: $(cat plain.out)"
# So is a plaintext worker: it stops at once, saying why.
timeout 120 "$TFQ" worker --connect "$EP" --name plainw --exit-when-idle \
    >plainw.out 2>&1 && fail "a plaintext worker was served"
grep -q "the coordinator requires CURVE" plainw.out ||
    fail "plaintext worker: $(tail -3 plainw.out)"
"$TFQ" status --connect "$EP" --curve-key c.key --server-key other.pub 2>wrongserver.err &&
    fail "a client with the wrong coordinator key was served"
grep -q "handshake failed" wrongserver.err || fail "wrong server key: $(cat wrongserver.err)"
client submit g.txt --as sneaky --curve-key w.key 2>wsubmit.err && fail "a worker key submitted"
grep -q "may not send submit" wsubmit.err || fail "worker submit: $(cat wsubmit.err)"
client cancel g.txt --curve-key w.key 2>wcancel.err && fail "a worker key cancelled"
client retry g.txt --curve-key w.key 2>wretry.err && fail "a worker key retried"
TFQ_CURVE_KEY=c.key TFQ_SERVER_KEY=coord.pub "$TFQ" worker --connect "$EP" --name thief \
    --exit-when-idle 2>thief.log && fail "a client key ran a worker"
grep -q "may not send hello" thief.log || fail "client as worker: $(cat thief.log)"
[ "$(q "select count(*) from attempts where worker = 'thief'")" = 0 ] || fail "the client key took a job"
[ "$(q "select count(*) from grids")" = 1 ] || fail "a refused submit made a grid"

# Each refusal is in the coordinator's log, with the address and the key's
# fingerprint where there is a key.
grep -Eq "refused a peer at 127\.0\.0\.1 \(CURVE key [0-9a-f]{16}\): key not in the allow-lists" coord.log ||
    fail "no log of the unknown key"
grep -Eq "refused a peer at 127\.0\.0\.1 \(no CURVE key\): its handshake failed" coord.log ||
    fail "no log of the plaintext peer with its address"
grep -Eq "refused submit from .* at 127\.0\.0\.1 \(CURVE key worker [0-9a-f]{16}\)" coord.log ||
    fail "no log of the worker key's submit"
grep -Eq "refused cancel_grid from .*\(CURVE key worker" coord.log || fail "no log of the cancel"
grep -Eq "refused hello from thief at 127\.0\.0\.1 \(CURVE key client [0-9a-f]{16}\)" coord.log ||
    fail "no log of the client key's hello"

# The allowed worker was served throughout and finished the grid.
wait_exit 300 "$GOOD" "the allowed worker" || fail "the allowed worker exited $?"
[ "$(q "select count(*) from jobs where state = 'succeeded'")" = 12 ] || fail "the grid did not finish"
[ "$(q "select count(*) from attempts where state = 'lost'")" = 0 ] || fail "the refusals cost a lease"
[ "$(q "select count(distinct worker) from attempts")" = 1 ] || fail "another worker ran jobs"
client status --curve-key c.key | grep -q "done 12" || fail "the client key cannot read the status"
client results g.txt --curve-key w.key >/dev/null || fail "a worker key cannot read results"
echo "PASS: auth"
